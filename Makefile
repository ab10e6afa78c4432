# Two entry points (see README): `make report` regenerates everything (notebooks, figures,
# tables, report/index.html), `make test` lints and tests.
PYTHON ?= python3
VENV ?= $(HOME)/.venvs/dc-robustness
PY := $(VENV)/bin/python
PROFILE ?= default

.PHONY: setup report test lint

# The virtual environment lives outside the clone so that clones and CI runs reuse it.
$(VENV)/.requirements-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.requirements-installed
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

report: setup
	$(PY) -m helpers.regenerate --profile $(PROFILE)
	$(PY) -m helpers.report

lint: setup
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

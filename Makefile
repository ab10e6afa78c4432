# Two entry points (see README): `make report` regenerates everything (notebooks, figures,
# tables, report/index.html), `make test` lints and tests.
PYTHON ?= python3
VENV ?= $(HOME)/.venvs/dc-robustness
PY := $(VENV)/bin/python
PROFILE ?= default

# A relative data root means the folder it names from where make was run; every command
# and notebook kernel gets it absolute.
ifdef DC_DATA_ROOT
export DC_DATA_ROOT := $(abspath $(DC_DATA_ROOT))
endif

.PHONY: setup report test lint

# The virtual environment lives outside the clone so that clones and CI runs reuse it. It
# holds third-party packages only: each clone's own `helpers` is imported from the clone
# (commands run as `python -m` from its root, kernels find it through notebooks/helpers),
# so an editable install, which would point every clone at one of them, is removed.
$(VENV)/.requirements-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip uninstall --quiet --yes dc-robustness
	touch $@

setup: $(VENV)/.requirements-installed

report: setup
	$(PY) -m helpers.regenerate --profile $(PROFILE)
	$(PY) -m helpers.report --profile $(PROFILE)

lint: setup
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

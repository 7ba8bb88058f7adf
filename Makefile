# Two entry points a fresh machine needs: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-all lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# The Slicer extension's tests also need slicer-core and PySide6 (the slicer-test extra); demo does not.
$(VENV)/.installed-slicer-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test,slicer-test]"
	touch $@

demo: install
	$(BIN)/mrsynth demo --out-dir mrsynth_demo

test: install $(VENV)/.installed-slicer-test
	$(BIN)/python -m pytest -q

test-all: install $(VENV)/.installed-slicer-test
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: install
	$(BIN)/ruff check .

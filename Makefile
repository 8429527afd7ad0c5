# One dev loop for people and CI. Every target creates .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m loader.demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check loader tests bench
	$(BIN)/ruff format --check loader tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/dry_run.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) runs build *.egg-info

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

# The sample migration: a dry run, then the real run against the embedded sandbox, then the
# ledger's status. The sample workbook has rows that are wrong on purpose, so `validate` and
# `run` exit 1 (some rows rejected); any other exit code stops the demo.
DEMO_SPEC := mappings/createcase.yaml
DEMO_RUNS := runs/legacy-complaints
demo: $(STAMP)
	@echo '$$ loader validate $(DEMO_SPEC)'
	@$(BIN)/loader validate $(DEMO_SPEC) || [ $$? -eq 1 ]
	@echo
	@echo '$$ loader run $(DEMO_SPEC)'
	@$(BIN)/loader run $(DEMO_SPEC) || [ $$? -eq 1 ]
	@echo
	@echo '$$ loader status $(DEMO_RUNS)/ledger.sqlite'
	@$(BIN)/loader status $(DEMO_RUNS)/ledger.sqlite
	@echo
	@echo 'Open $(DEMO_RUNS)/report.html for the dry-run report; $(DEMO_RUNS)/results.csv maps each LegacyRef to its new case id.'

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

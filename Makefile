# Set-up and everyday commands. Everything the project needs is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/nla-workbench demo --db workbench.db

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check nla audits workbench tests benchmarks

bench: setup
	$(BIN)/python benchmarks/verbalize.py

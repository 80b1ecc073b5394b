# Set-up and everyday commands. Everything the project needs is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo dashboard test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests need: Chromium prints the HTML report and runs the dashboard's real-browser
# test (driven by playwright), poppler-utils (pdftoppm, pdftotext) checks PDF pages, and the PostgreSQL
# server hosts a throwaway cluster on loopback for the store suite. Needs root (CI runs it; on a
# workstation use sudo).
system-deps:
	@command -v chromium >/dev/null && command -v pdftoppm >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils postgresql >/dev/null)

# The starter audit into ./workbench.db, then the dashboard over it (prints its URL; Ctrl-C stops it).
demo: setup
	$(BIN)/nla-workbench demo --db workbench.db
	$(BIN)/nla-workbench dashboard --db workbench.db

dashboard: setup
	$(BIN)/nla-workbench dashboard --db workbench.db

test: setup system-deps
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check nla audits workbench tests benchmarks

bench: setup
	$(BIN)/python benchmarks/verbalize.py

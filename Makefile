# Set-up and everyday commands. Everything the project needs is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps corpus bundled-nla organism-nla organisms demo dashboard test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests need: Chromium prints the HTML report and runs the dashboard's real-browser
# test (driven by playwright), poppler-utils (pdftoppm, pdftotext) checks PDF pages, and the PostgreSQL
# server hosts a throwaway cluster on loopback for the store suite; fortunes is the training prose
# corpus. Installed with apt-get as root (CI); otherwise it names what is missing and how to install it.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -d /usr/share/games/fortunes || missing="$$missing fortunes"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make system-deps: missing Debian packages:$$missing" >&2; \
	  echo "install them as root, then run make again:  sudo apt-get install$$missing" >&2; exit 2; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

# The built-in prose corpus for `nla-workbench train datagen` (Debian's fortune-mod data files).
corpus:
	@test -d /usr/share/games/fortunes || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null)

# Retrain the bundled SmolLM2 layer-20 NLA from scratch on this CPU (every stage resumes when re-run), then
# export it with its model card into the package. The defaults are v2's recipe (the heuristic-lens teacher,
# 120 GRPO steps; its card records the wall time of each stage). v1, still shipped as `default@v1`:
#   make bundled-nla TEACHER=heuristic RL_STEPS=60 NLA_OUT=nla/data/nla/smollm2-135m-instruct-L20
# DATAGEN_OPTS="--audit-docs 300 ..." selects the data levers README's "Toward NLA v2" measures.
RUN ?= runs/smol
TEACHER ?= heuristic-lens
DATAGEN_OPTS ?=
RL_STEPS ?= 120
NLA_OUT ?= nla/data/nla/smollm2-135m-instruct-L20-v2

bundled-nla: setup corpus
	$(BIN)/nla-workbench train datagen --out $(RUN) --target embedded:smollm2-135m-instruct --layer 20 $(DATAGEN_OPTS)
	$(BIN)/nla-workbench train explain $(RUN) --teacher $(TEACHER)
	$(BIN)/nla-workbench train ar-sft $(RUN)
	$(BIN)/nla-workbench train av-sft $(RUN)
	$(BIN)/nla-workbench train eval $(RUN) --stage sft
	$(BIN)/nla-workbench train rl $(RUN) --steps $(RL_STEPS)
	$(BIN)/nla-workbench train eval $(RUN) --stage rl
	$(BIN)/nla-workbench train export $(RUN) --out $(NLA_OUT) --half --force

# An NLA trained on a model organism (channel 1b of benchmarks/audit_game.py): v2's recipe with the organism's
# activations (its adapter merged into the base) on the base model's corpus text; nothing the organism wrote,
# and none of its training data, is trained on. The compact NLA in runs/nla-<organism>/nla names the merged
# fine-tune inside the run directory. SFT only: make organism-nla RL_STEPS=0 (a later run without it adds GRPO)
ORGANISM ?= taboo-a
ORGANISM_RUN ?= runs/nla-$(ORGANISM)

organism-nla: setup corpus
	$(BIN)/nla-workbench train datagen --out $(ORGANISM_RUN) --target organism:$(ORGANISM) --layer 20 $(DATAGEN_OPTS)
	$(BIN)/nla-workbench train explain $(ORGANISM_RUN) --teacher $(TEACHER)
	$(BIN)/nla-workbench train ar-sft $(ORGANISM_RUN)
	$(BIN)/nla-workbench train av-sft $(ORGANISM_RUN)
	$(BIN)/nla-workbench train eval $(ORGANISM_RUN) --stage sft
	if [ "$(RL_STEPS)" -gt 0 ]; then \
	  $(BIN)/nla-workbench train rl $(ORGANISM_RUN) --steps $(RL_STEPS) && \
	  $(BIN)/nla-workbench train eval $(ORGANISM_RUN) --stage rl; fi
	$(BIN)/nla-workbench train export $(ORGANISM_RUN) --out $(ORGANISM_RUN)/nla --force

# Rebuild every shipped model organism on this CPU (data from templates and the base model's own replies,
# then a LoRA fine-tune; each stage resumes when re-run), install its adapter and training record into the
# package, then measure its behaviour on held-out prompts and regenerate its card from the records.
ORGANISMS ?= taboo-a taboo-b quirk-a framing-a
organisms: setup
	for o in $(ORGANISMS); do $(BIN)/nla-workbench organism train $$o --out runs/organisms/$$o --install || exit 1; done
	$(BIN)/python benchmarks/organisms.py $(ORGANISMS) --write --speed

# The starter audit into ./workbench.db, then the dashboard over it (prints its URL; Ctrl-C stops it).
demo: setup
	$(BIN)/nla-workbench demo --db workbench.db
	$(BIN)/nla-workbench dashboard --db workbench.db

dashboard: setup
	$(BIN)/nla-workbench dashboard --db workbench.db

# The wheel check first (tests/wheel_install.sh: build, install non-editable into a fresh venv, use it
# from outside the checkout), then the suite.
test: setup system-deps wheel-check
	$(BIN)/pytest -q

wheel-check: setup
	tests/wheel_install.sh $(BIN)/python

lint: setup
	$(BIN)/ruff check nla audits workbench tests benchmarks

bench: setup
	$(BIN)/python benchmarks/verbalize.py

# lth — `make help` lists the targets. The environment (.venv) is created on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := requirements/ci.txt

.DEFAULT_GOAL := help
.PHONY: help install train sweep report test bench claims lint docs docs-serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The exact versions of $(LOCK) as constraints. torch comes from the lock only when the environment
# has none importable: an existing torch (e.g. a cluster's CUDA build in VENV=<its env>) is kept,
# and so are the packages it requires (requirements/constraints.py leaves them out of the pins).
$(STAMP): pyproject.toml $(LOCK) requirements/constraints.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet -c $(LOCK) torch
	$(PY) requirements/constraints.py $(LOCK) > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv (PYTHON=python3.13, VENV=<dir> to choose) and install lth, its dev tools and CI's versions

train: $(STAMP)  ## run the default lottery (MNIST-1D, MLP, IMP); extra overrides: make train ARGS="optim.lr=0.01"
	$(PY) -m lth.train $(ARGS)

sweep: $(STAMP)  ## the flagship sweep: init strategy x learning rate (4 x 2 jobs) into multirun/
	$(PY) -m lth.train -m init=winning_ticket,rewind,reinit,random_prune optim.lr=0.01,0.1 $(ARGS)

SWEEP ?= $(lastword $(sort $(wildcard multirun/*/*)))
report: $(STAMP)  ## tables and plots of the newest sweep under multirun/ (or SWEEP=<dir>) into <dir>/report/
	@test -n "$(SWEEP)" || { echo "make report: no sweep under multirun/; run make sweep first or set SWEEP=<dir>"; exit 2; }
	$(PY) -m lth.report $(SWEEP)

# the suite in worker processes of one torch thread each, one per core up to 4 (TEST_WORKERS=0: in this
# process): more threads than cores make OpenMP spin-wait, many times slower
TEST_WORKERS ?= $(shell nproc | awk '{print ($$1 < 4) ? $$1 : 4}')
test: $(STAMP)  ## run the test suite (TEST_WORKERS=N worker processes; default: the cores, at most 4)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) $(ARGS)

bench: $(STAMP)  ## lth's step against a hand-written loop (1 thread; ARGS="--threads 2"; ARGS="--compare-threads 1 2": the default job at 1 and 2 threads), then the replicate table, the stacked-sweep time and, with a GPU, the CUDA table
	$(PY) -m lth.bench $(ARGS)
	$(PY) -m lth.bench --replicates --threads 1 2
	$(PY) -m lth.bench --sweep
	$(PY) -m lth.bench --cuda

claims: $(STAMP)  ## recheck the papers' findings on this code (python -m lth.claims; ARGS="--quick", ARGS="--only frankle")
	$(PY) -m lth.claims $(ARGS)

lint: $(STAMP)  ## ruff check and format check
	$(VENV)/bin/ruff check lth tests docs/examples docs/gen_config_reference.py
	$(VENV)/bin/ruff format --check lth tests docs/examples docs/gen_config_reference.py

docs: $(STAMP)  ## build the documentation site into site/ (mkdocs build --strict: a broken link or page fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)  ## serve the documentation at http://127.0.0.1:8000, rebuilt on every edit
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:  ## remove outputs, sweeps, claims runs, the built site and caches (keeps .venv)
	rm -rf outputs multirun claims wandb site .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

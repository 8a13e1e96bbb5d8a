# dlperf — two commands: `make run` (set up, then run the whole workflow on the embedded default) and
# `make test` (set up, then run the tests). Both are idempotent: a second call with nothing changed does no work.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=

ESTIMATE_CONFIG ?= config/full.yaml
ESTIMATE_ARGS ?=

.PHONY: help setup system run test rehearse bench estimate dryrun-full clean

help:
	@echo "make run    set up and run the workflow on the embedded default (results/)"
	@echo "make test   set up and run the test suite"
	@echo "make rehearse  the full config at real model sizes on a loopback mirror of its downloads (CPU)"
	@echo "make bench  training-engine throughput vs a plain PyTorch loop"
	@echo "make estimate  the full config's cost on this machine, from a short calibration (ESTIMATE_CONFIG=...)"

## Python environment: rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing dlperf and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/install.log 2>&1 \
	  && $(BIN)/python -m pip install -e '.[dev]' >> $(VENV)/install.log 2>&1 \
	  || { grep -v '^WARNING: Location' $(VENV)/install.log | tail -30; echo "setup: pip install failed"; exit 1; }
	@touch $(STAMP)
	@echo "setup: python environment ready"

## System packages (graphviz, a TeX subset): installed with apt-get as root, else listed for you to install.
system:
	@bin/install-system-packages

setup: $(STAMP) system
	@echo "setup: up to date"

run: setup
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The full-scale rehearsal: config/full.yaml's path (real archive formats, real model sizes) on a mirror of its
## downloads served on 127.0.0.1, counts shrunk (config/rehearsal.yaml); results in .rehearsal/work/results.
rehearse: setup
	$(BIN)/python -m dlperf.data.mirror rehearse --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)

bench: setup
	$(BIN)/python -m dlperf.train.bench

## What a run of ESTIMATE_CONFIG would cost here: device-hours per study, from a few timed steps of each model.
## ESTIMATE_ARGS="--devices 4" for 4 GPUs; "--compare benchmarks" beside a finished run's measured times.
estimate: setup
	$(BIN)/python -m dlperf.estimate --configfile $(ESTIMATE_CONFIG) $(ESTIMATE_ARGS)

dryrun-full: setup
	$(BIN)/snakemake -n --configfile config/full.yaml

clean:
	rm -rf results .snakemake logs benchmarks .rehearsal

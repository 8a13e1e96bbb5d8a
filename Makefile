# dlperf — two commands: `make run` (set up, then run the whole workflow on the embedded default) and
# `make test` (set up, then run the tests). Both are idempotent: a second call with nothing changed does no work.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=

ESTIMATE_CONFIG ?= config/full.yaml
ESTIMATE_ARGS ?=

.PHONY: help setup setup-dev system run test bundle figures rehearse bench estimate dryrun-full clean

help:
	@echo "make run    set up and run the workflow on the embedded default (results/)"
	@echo "make test   set up (with the development extras) and run the test suite"
	@echo "make bundle    pack a finished run's results (BUNDLE=path, BUNDLE_ARGS=--with-checkpoints)"
	@echo "make figures BUNDLE=path  rebuild every figure, table and the report from a bundle"
	@echo "make rehearse  the full config at real model sizes on a loopback mirror of its downloads (CPU)"
	@echo "make bench  training-engine throughput vs a plain PyTorch loop"
	@echo "make estimate  the full config's cost on this machine, from a short calibration (ESTIMATE_CONFIG=...)"

## Python environment: rebuilt only when pyproject.toml changes. `make run` installs what the workflow needs;
## `make test` adds the development extras (pytest, tritonclient, schemathesis, the Kubernetes plugin, snakefmt).
## One progress line per step; pip's own output goes to the log, whose last lines are shown on failure.
$(STAMP): pyproject.toml
	@bin/setup-python $(VENV) $(PYTHON) runtime
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	@bin/setup-python $(VENV) $(PYTHON) dev
	@touch $(DEV_STAMP)

## System packages (graphviz, a TeX subset): installed with apt-get as root, else listed for you to install.
system:
	@bin/install-system-packages

setup: $(STAMP) system
	@echo "setup: up to date"

setup-dev: $(DEV_STAMP) system
	@echo "setup: up to date, with the development extras"

run: setup
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## A finished run's results in one archive (dlperf.bundle): what every figure, table and the report read, the config
## files and commit that made them, SHA-256 sums. BUNDLE_ARGS="--with-checkpoints" adds every .pt, .onnx and .dlpf;
## BUNDLE_ARGS="--configfile config/full.yaml" for a run made with another config.
bundle: setup
	$(BIN)/python -m dlperf.bundle pack --output $(or $(BUNDLE),dlperf-bundle.tar.gz) $(BUNDLE_ARGS)

## Every figure, table and the report rebuilt here from a bundle, with no download, training or timing job.
figures: setup
	@test -n "$(BUNDLE)" || { echo "make figures: name the bundle, e.g. make figures BUNDLE=dlperf-bundle.tar.gz"; exit 2; }
	$(BIN)/python -m dlperf.bundle figures $(BUNDLE) --cores $(CORES) $(FIGURES_ARGS)

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
	rm -rf results .snakemake logs benchmarks .rehearsal .bundle

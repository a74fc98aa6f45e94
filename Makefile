# podtarget: every target that needs Python depends on `setup`, which builds .venv once (a stamp file keeps
# it quick afterwards) and again only when pyproject.toml changes.
#
#   make demo                      simulate the demo world into $(DATA_ROOT) and print its summary
#   make test                      the test suite (what CI runs)
#   make data WORLD=bench          (re)simulate a world preset into DATA_ROOT (replacing the previous one);
#                                  DATA_ROOT may be gs://bucket/prefix
#   make bench                     benchmarks; figures land in reports/bench/*.json
#
# Pipeline variables: RUNNER (DirectRunner = in-process, the default; DataflowRunner; PortableRunner for Flink),
# DIRECT_MODE (in_memory | multi_processing), WORKERS, and PIPELINE_ARGS for anything else
# (e.g. PIPELINE_ARGS="--project=p --region=r --temp_location=gs://b/tmp").

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

DATA_ROOT   ?= ./data
WORLD       ?= demo
SEED        ?= 7
DIRTY_RATE  ?= 0.0
DATE        ?=
START       ?=
END         ?=
RUNNER      ?= DirectRunner
DIRECT_MODE ?= in_memory
WORKERS     ?= 1
PIPELINE_ARGS ?=

BEAM_ARGS = --runner=$(RUNNER) --direct_running_mode=$(DIRECT_MODE) --direct_num_workers=$(WORKERS) $(PIPELINE_ARGS)

# The CPU torch wheel lies on disk here; pointing pip at it keeps `torch==2.13.0` from fetching a CUDA build.
WHEELS_DIR  ?= /opt/wheels
PIP_EXTRA   := $(if $(wildcard $(WHEELS_DIR)),--find-links $(WHEELS_DIR))

.PHONY: help setup demo data test lint bench clean

help:  ## print the comment block at the top of this file
	@awk '/^#/ { sub(/^# ?/, ""); print; next } { exit }' Makefile

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" $(PIP_EXTRA)
	$(PY) -m pip install --quiet $(PIP_EXTRA) -e ".[dev]"
	@touch $(STAMP)

data: setup
	$(PY) -m pipelines.simulate_world --data_root=$(DATA_ROOT) --world=$(WORLD) --seed=$(SEED) \
	    --dirty_rate=$(DIRTY_RATE) --overwrite $(BEAM_ARGS)

demo: setup
	$(MAKE) --no-print-directory data WORLD=demo

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Benchmarks use both cores by default (SDK worker processes); figures land in reports/bench/<name>.json.
BENCH_MODE    ?= multi_processing
BENCH_WORKERS ?= 2
BENCH_ROOT    ?= ./data/bench

bench: setup
	$(PY) -m benchmarks.run --out=reports/bench --bench_root=$(BENCH_ROOT) --runner=$(RUNNER) \
	    --direct_running_mode=$(BENCH_MODE) --direct_num_workers=$(BENCH_WORKERS) $(PIPELINE_ARGS)

clean:
	rm -rf build dist *.egg-info reports/bench

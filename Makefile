# podtarget: every target that needs Python depends on `setup`, which builds .venv once (a stamp file keeps
# it quick afterwards) and again only when pyproject.toml changes.
#
#   make demo                      simulate the demo world into $(DATA_ROOT), print its summary, build, train, score
#                                  and write a small evaluation report to reports/demo/
#   make test                      the test suite (what CI runs)
#   make test-fast                 the suite without the end-to-end tests marked slow (while editing)
#   make lint                      ruff (style, complexity) and mypy (make typecheck)
#   make data WORLD=bench          (re)simulate a world preset into DATA_ROOT (replacing the previous one and its derived data);
#                                  DATA_ROOT may be gs://bucket/prefix
#   make features DATE=2026-03-05  point-in-time feature snapshots of one day
#   make examples DATE=2026-03-05  labeled multi-task examples of one day (UNOBSERVED=1: allow immature labels)
#   make backfill START=... END=... features and examples for every day in the range (FORCE=1 rebuilds)
#   make train                     train the multi-task model on $(DATA_ROOT)/examples into models/$(RUN)
#                                  (TRAIN_ARGS for any other option, e.g. TRAIN_ARGS="--architecture=mmoe")
#   make score DATE=2026-03-15 MODEL=models/demo  audiences and user rankings of one day (defaults: the last day
#                                  with user features under DATA_ROOT, the latest model under models/;
#                                  SCORE_ARGS for any other option, e.g. SCORE_ARGS="--audience_cut=budget")
#   make eval-world                simulate the eval world into DATA_ROOT, build its examples and the A/B days' features
#   make evaluate                  the paper's offline ablations over SEEDS (default 1,2,3) on $(DATA_ROOT)/examples,
#                                  with bootstrap intervals: runs cached under $(EVAL_MODELS), ablations.json + report
#                                  under $(EVAL_OUT) (SETUPS=baseline,joint,... for a subset; EVAL_ARGS for any other
#                                  option; WORLD=eval: the eval world's recipe, see below)
#   make abtest                    the simulated A/B test on held-out days: the models and reference arms (oracle, ground
#                                  truth without ad terms, random) on the same ad slots, auction and audience designs
#                                  (AB_DAYS=2026-03-11..2026-03-15; default: every day after the test days), for every
#                                  seed of SEEDS, reusing evaluate's baseline and joint runs
#   make coldstart                 Ads AP against days of ad history (1, 3, 7, all) for the baseline, the ads-only
#                                  models and the joint model, 3 seeds, in the world under DATA_ROOT and in a second
#                                  one with COLDSTART_CORRELATION (simulated into COLDSTART_ROOT when missing)
#   make report                    rebuild report.md and its plots from the JSON (no training): EVAL_OUT's, or
#                                  without it the newest of reports/local/eval (make evaluate) and reports/demo
#   make bench                     benchmarks; figures land in $(BENCH_OUT)/*.json (default reports/local/bench)
#   make bench-tabular             the trainer's documented tabular configuration against a per-task LightGBM on the
#                                  generated tabular table (TABULAR_ROOT), test AUC over 3 seeds -> $(BENCH_OUT)/tabular.json
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

# glibc gives each thread a malloc arena of its own, and memory freed in one is not reused by the others: the
# daily pipelines' reader, bucket and writer threads free large Arrow buffers, and with 2 arenas a one-process
# backfill day peaked 10-15% lower at the same speed (transforms/runtime/storage.py also asks for this at run time, which
# helps less: arenas made before it are kept). An explicit MALLOC_ARENA_MAX wins.
export MALLOC_ARENA_MAX ?= 2
# OpenMP threads wait passively: with the default (spinning) policy, torch's two threads on this 2-core machine slowed
# a tiny model's training sevenfold whenever another process held a core (39 s instead of 5.5 s for the movie toy
# table), and the bench-day training collapsed to 16k examples/s in one such run. The runtime reads it once, when
# torch loads, so it must be in the environment before the command starts (the training commands warn when it is
# not; common/cli.py). An explicit OMP_WAIT_POLICY wins.
export OMP_WAIT_POLICY ?= PASSIVE

BEAM_ARGS = --runner=$(RUNNER) --direct_running_mode=$(DIRECT_MODE) --direct_num_workers=$(WORKERS) $(PIPELINE_ARGS)

# The CPU torch wheel lies on disk here; pointing pip at it keeps `torch==2.13.0` from fetching a CUDA build.
WHEELS_DIR  ?= /opt/wheels
PIP_EXTRA   := $(if $(wildcard $(WHEELS_DIR)),--find-links $(WHEELS_DIR))

.PHONY: help setup demo data features examples backfill train score eval-world evaluate abtest coldstart report test test-fast \
        lint typecheck bench bench-tabular \
        wheel clean

help:  ## print the comment block at the top of this file
	@awk '/^#/ { sub(/^# ?/, ""); print; next } { exit }' Makefile

# setuptools notes on every editable install of mapped folders (ours: podtarget.<folder> = <folder>) that a folder
# named like the package could shadow it: this repository has no podtarget/ folder, so the note (10 lines) is
# silenced, and only it: every other warning still shows.
QUIET_EDITABLE_NOTE = PYTHONWARNINGS="ignore:Editable installation"

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" $(PIP_EXTRA)
	$(QUIET_EDITABLE_NOTE) $(PY) -m pip install --quiet $(PIP_EXTRA) -e ".[dev]"
	@touch $(STAMP)

data: setup
	$(PY) -m podtarget.pipelines.simulate_world --data_root=$(DATA_ROOT) --world=$(WORLD) --seed=$(SEED) \
	    --dirty_rate=$(DIRTY_RATE) --overwrite $(BEAM_ARGS)

require = $(if $($(1)),,$(error $(1)=YYYY-MM-DD is required, e.g. make $@ $(1)=2026-03-05))
# A data root that is empty or not there is said to be so, before a command reports some input missing under it
# (or make score advises DATE=). gs:// roots are checked by the commands, which name what they look for.
check_root = @case "$(DATA_ROOT)" in \
    "") echo "error: DATA_ROOT is empty: give the folder (or gs://bucket/prefix) that holds raw/, e.g. DATA_ROOT=./data" >&2; exit 2;; \
    gs://*) ;; \
    *) test -d "$(DATA_ROOT)" || { echo "error: DATA_ROOT=$(DATA_ROOT) does not exist: point it at the folder that holds raw/ (make data simulates one into ./data)" >&2; exit 2; };; \
  esac
# The same for commands that read $(EXAMPLES) under the data root, unless EXAMPLES was given.
check_examples_root = $(if $(filter command line environment,$(origin EXAMPLES)),,$(check_root))
DAILY_FLAGS = $(if $(UNOBSERVED),--allow_unobserved) $(if $(FORCE),--force)

features: setup
	$(call require,DATE)
	$(check_root)
	$(PY) -m podtarget.pipelines.build_features --data_root=$(DATA_ROOT) --date=$(DATE) $(BEAM_ARGS)

examples: setup
	$(call require,DATE)
	$(check_root)
	$(PY) -m podtarget.pipelines.build_examples --data_root=$(DATA_ROOT) --date=$(DATE) $(if $(UNOBSERVED),--allow_unobserved) \
	    $(BEAM_ARGS)

backfill: setup
	$(call require,START)
	$(call require,END)
	$(check_root)
	$(PY) -m podtarget.pipelines.backfill --data_root=$(DATA_ROOT) --start=$(START) --end=$(END) $(DAILY_FLAGS) $(BEAM_ARGS)

# The demo world spans 2026-03-02..15; the last days' labels are immature, so they are built as unobserved.
DEMO_START ?= 2026-03-02
DEMO_END   ?= 2026-03-15

demo: setup
	$(MAKE) --no-print-directory data WORLD=demo
	$(MAKE) --no-print-directory backfill START=$(DEMO_START) END=$(DEMO_END) UNOBSERVED=1 FORCE=1
	$(MAKE) --no-print-directory train TRAIN_ARGS="--overwrite $(TRAIN_ARGS)"
	$(MAKE) --no-print-directory score DATE=$(DEMO_END) MODEL=$(MODELS)/$(RUN)
	$(MAKE) --no-print-directory evaluate EVAL_OUT=$(DEMO_EVAL_OUT) EVAL_MODELS=$(DEMO_EVAL_MODELS) SEEDS=1,2 \
	    SETUPS=baseline,joint
	$(MAKE) --no-print-directory abtest EVAL_OUT=$(DEMO_EVAL_OUT) EVAL_MODELS=$(DEMO_EVAL_MODELS) SEEDS=1 \
	    AB_DAYS=2026-03-11

# Training reads the example table (local or gs://) and writes models/<run>/ (see README, "Training").
EXAMPLES   ?= $(DATA_ROOT)/examples
MODELS     ?= models
RUN        ?= demo
TRAIN_ARGS ?=

train: setup
	$(check_examples_root)
	$(PY) -m podtarget.model.train --examples=$(EXAMPLES) --out=$(MODELS) --run=$(RUN) $(TRAIN_ARGS)

# Scoring reads the features and snapshots of DATE and a trained model; writes audiences/ and user_rankings/
# (README, "The daily flow"; docs/design.md, "Scoring"). The defaults are looked up lazily, only when `make score` runs without them.
LAST_FEATURES_DAY = $(shell ls -d $(DATA_ROOT)/features/user/dt=*/_SUCCESS.json 2>/dev/null | tail -1 \
                      | sed -E 's|.*/dt=([0-9-]+)/.*|\1|')
# The newest run under MODELS that loads (checksums, spec, weights); corrupt or unfinished runs are skipped, and said.
LATEST_MODEL      = $(shell $(PY) -m podtarget.model.artifacts latest $(MODELS))
SCORE_DATE        = $(or $(DATE),$(LAST_FEATURES_DAY))
# Looked up once, the first time make score uses it: as a plain recursive variable it loaded every model (and said
# which it skipped) once per use.
MODEL            ?= $(eval MODEL := $$(LATEST_MODEL))$(MODEL)
SCORE_ARGS       ?=

score: setup
	$(check_root)
	@test -n "$(SCORE_DATE)" || { echo "error: no complete features under $(DATA_ROOT)/features/user: build them (make backfill or make features DATE=YYYY-MM-DD), or pass DATE=YYYY-MM-DD" >&2; exit 2; }
	@test -n "$(MODEL)" || { echo "error: no model that loads under $(MODELS)/: run make train, or pass MODEL=models/<run>" >&2; exit 2; }
	$(PY) -m podtarget.pipelines.score --data_root=$(DATA_ROOT) --date=$(SCORE_DATE) --model=$(MODEL) $(SCORE_ARGS) \
	    $(BEAM_ARGS)

# Evaluation (see README, "Evaluation"): trained runs are cached under EVAL_MODELS, keyed by their configuration
# and the example table, so a rerun trains only what changed; abtest reuses evaluate's baseline and joint runs of the
# first seed (training them if missing). Both end by rewriting EVAL_OUT/report.md from the JSON there.
EVAL_MODELS ?= $(MODELS)/eval-$(WORLD)
# The eval world (WORLD=eval; README, Evaluation): the paper's five setups over five seeds, split where every label
# is mature (3 test days, 2 validation days), epochs capped at 80 batches so the 25 runs fit the hour on 2 cores,
# and five held-out A/B days (of the seven after the test days) for every seed.
ifeq ($(WORLD),eval)
SEEDS       ?= 1,2,3,4,5
SETUPS      ?= baseline,promo_stream_only,ads_stream_only,ads_stream_anc,joint
EVAL_EPOCHS ?= 8
EVAL_SPLIT  ?= --split=mature --valid_count=2 --test_count=3 --max_batches_per_epoch=80
AB_DAYS     ?= 2026-03-23..2026-03-27
endif
EVAL_SPLIT  ?=
# Reports go to reports/local/ (ignored by git) unless named: the committed record is rewritten only with
# EVAL_OUT=reports/eval (or BENCH_OUT=reports/bench), and a folder holding another run's figures is refused.
EVAL_OUT    ?= reports/local/eval
SEEDS       ?= 1,2,3
SETUPS      ?=
# Up to 10 epochs, early stopping deciding: the promotions-only baseline gets half the joint model's batches per
# epoch (it has no ad rows to pair with), and with 4 epochs it was still improving when it stopped.
EVAL_EPOCHS ?= 10
EVAL_ARGS   ?=
AB_DAYS     ?=
AB_ARGS     ?=
# make demo's small version: two seeds of the baseline and the joint model, one A/B day (about 2 minutes).
DEMO_EVAL_OUT    ?= reports/demo
DEMO_EVAL_MODELS ?= $(MODELS)/eval-demo-small

evaluate: setup
	$(check_examples_root)
	$(PY) -m podtarget.evaluation.ablations --examples=$(EXAMPLES) --models=$(EVAL_MODELS) --out=$(EVAL_OUT) --seeds=$(SEEDS) \
	    --setups=$(SETUPS) --epochs=$(EVAL_EPOCHS) --world=$(DATA_ROOT)/world $(EVAL_SPLIT) $(EVAL_ARGS)

# Missing models are trained with evaluate's settings (EVAL_SPLIT, EVAL_EPOCHS), so they are the runs it caches.
abtest: setup
	$(check_root)
	$(PY) -m podtarget.evaluation.abtest --data_root=$(DATA_ROOT) --examples=$(EXAMPLES) --models=$(EVAL_MODELS) \
	    --out=$(EVAL_OUT) --model_seeds=$(SEEDS) $(if $(AB_DAYS),--days=$(AB_DAYS)) --epochs=$(EVAL_EPOCHS) \
	    $(EVAL_SPLIT) $(AB_ARGS)

# The eval world's data: 30 simulated days; features and examples of the 21 days whose labels are mature, then the
# features of the seven held-out days after them (the A/B test scores them; it needs no examples).
eval-world: setup
	$(MAKE) --no-print-directory data WORLD=eval
	$(MAKE) --no-print-directory backfill START=2026-03-02 END=2026-03-22
	$(PY) -m podtarget.pipelines.backfill --data_root=$(DATA_ROOT) --start=2026-03-23 --end=2026-03-29 --skip_examples \
	    $(BEAM_ARGS)

# Without EVAL_OUT, the report just measured: the folder whose JSON is newest, make evaluate's or make demo's.
REPORT_OUT = $(if $(filter command line environment,$(origin EVAL_OUT)),$(EVAL_OUT),$(or $(shell ls -t \
               $(EVAL_OUT)/*.json $(DEMO_EVAL_OUT)/*.json 2>/dev/null | head -1 | xargs -r dirname),$(EVAL_OUT)))

# The cold-start sweep (README, Evaluation): every setup x ad history x seed on the mature split of each world, a
# recipe of at most COLDSTART_BATCHES batches per epoch (4 epochs, one validation day) so that both worlds (78
# runs) and the second world's simulation fit the hour on 2 cores. The second world's correlation was fixed
# before any sweep ran.
COLDSTART_CORRELATION ?= 0.8
COLDSTART_ROOT        ?= $(DATA_ROOT)-rho$(COLDSTART_CORRELATION)
COLDSTART_MODELS      ?= $(MODELS)/coldstart-$(WORLD)
COLDSTART_SEEDS       ?= 1,2,3
COLDSTART_HISTORY     ?= 1,3,7,all
COLDSTART_BATCHES     ?= 25
COLDSTART_ARGS        ?=

coldstart: setup
	$(check_examples_root)
	$(PY) -m podtarget.evaluation.coldstart --worlds=0:$(DATA_ROOT),$(COLDSTART_CORRELATION):$(COLDSTART_ROOT) \
	    --preset=$(WORLD) --models=$(COLDSTART_MODELS) --out=$(EVAL_OUT) --seeds=$(COLDSTART_SEEDS) \
	    --history=$(COLDSTART_HISTORY) --max_batches_per_epoch=$(COLDSTART_BATCHES) $(COLDSTART_ARGS) $(BEAM_ARGS)

report: setup
	$(PY) -m podtarget.evaluation.report --out=$(REPORT_OUT) --world=$(DATA_ROOT)/world

test: setup
	$(PY) -m pytest

test-fast: setup  ## the suite without the end-to-end tests marked slow (what to run while editing)
	$(PY) -m pytest -m "not slow"

lint: setup typecheck
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy checks the packages under their installed names (podtarget.<folder>): a view of links to the folders.
PACKAGE_FOLDERS := common schemas transforms pipelines model simulator evaluation
TYPECHECK_VIEW  := build/typecheck/podtarget

typecheck: setup
	@mkdir -p $(TYPECHECK_VIEW) && for d in $(PACKAGE_FOLDERS); do ln -sfn ../../../$$d $(TYPECHECK_VIEW)/$$d; done
	$(PY) -m mypy

# Benchmarks run in-process by default, where the daily pipelines compute files and buckets in a worker process
# per core (--bucket_processes=auto): the faster mode on 2 cores (docs/performance.md; multi_processing took
# 20.7 s for the examples bench day against 15.4 s in-process with threads, before the workers). Figures land in
# $(BENCH_OUT)/<name>.json (reports/local/bench; BENCH_OUT=reports/bench rewrites the committed record).
BENCH_MODE    ?= in_memory
BENCH_WORKERS ?= 1
BENCH_ROOT    ?= ./data/bench
BENCH_OUT     ?= reports/local/bench

bench: setup
	$(PY) -m benchmarks.run --out=$(BENCH_OUT) --bench_root=$(BENCH_ROOT) --runner=$(RUNNER) \
	    --direct_running_mode=$(BENCH_MODE) --direct_num_workers=$(BENCH_WORKERS) $(PIPELINE_ARGS)

# Quality, not speed: the tabular spec's runs against LightGBM (a dev dependency), a few minutes on 2 cores.
TABULAR_ROOT  ?= ./data-tabular

bench-tabular: setup
	$(PY) -m benchmarks.tabular --out=$(BENCH_OUT) --data=$(TABULAR_ROOT)

# The wheel that worker images install (deploy/worker.Dockerfile); also what --extra_package can ship.
wheel: setup
	$(PY) -m pip wheel --no-deps --no-build-isolation --quiet -w dist .
	@ls dist/podtarget-*.whl

clean:
	rm -rf build dist *.egg-info reports/local

"""Train the joint multi-task model on a day-partitioned Parquet example table (``make train``).

    python -m podtarget.model.train --examples=./data/examples --out=models --run=demo
    [--spec=model/specs/podtarget.toml]
        [--train_days=2026-03-02..2026-03-07 --valid_days=... --test_days=... | --split=0.7,0.15,0.15]
        [--epochs=5] [--batch_size=8192] [--lr=0.002] [--lr_schedule=cosine --warmup_steps=N] [--seed=7]
        [--weight_decay=W] [--embedding_weight_decay=W] [--resume] [--overwrite]
        [--tasks=PromotionStream,AdStream] [--sources=promo] [--disable_groups=ad,promotion]
        [--no_directional_mask] [--source_ratio=0.5 | --no_source_balance] [--max_source_repeats=R]
        [--source_history_days=ad=3] [--architecture=mmoe]
        [--loss_weighting=fixed|uncertainty|pcgrad] [--task_weights=Click=0.5] [--architecture=ple] [--prior_init]
        [--init_from=models/<run> [--add_task=NAME:label_col:source] [--freeze_encoder] [--apply_head=NEW=EXISTING]]

Every option but the data's and the run's may also be set in the spec's ``[training]`` table (docs/spec.md); a flag
given here wins over it.

Scaling to the table: the defaults (batch 8192, 5 epochs, lr 0.002, patience 2) were chosen on the podcast table's
millions of rows. On a table of tens of thousands, an epoch of 8192-row batches is a handful of steps and five
epochs stop far short of the best model: aim at a hundred steps or more an epoch (e.g. --batch_size=512 for 60k
rows), give early stopping room (--epochs=25 --patience=3) and lower the rate (--lr=0.0003, or
--lr_schedule=cosine). Training warns when an epoch is fewer than 20 steps.

The same from Python (what evaluation code calls in-process)::

    >>> from podtarget.model.train import TrainConfig, train
    >>> result = train(TrainConfig(examples="./data/examples", out="models", run="mmoe", architecture="mmoe"))
    >>> result.metrics["test"]["AdStream"]["overall"]["average_precision"]

An epoch is one pass over the training days, read in a seeded shuffled order of row groups (plus a shuffle buffer).
With source balancing (default: half promotion, half ad rows per batch), the source with the most rows per batch
slot is drawn exactly once per epoch; the other is drawn with replacement from a sliding window of its latest rows,
i.e. up-sampled without re-reading the table. Early stopping watches the mean validation metric of the spec's
``[evaluation]`` (``selection_metric``: AP by default, AUC or log loss) over its ``early_stopping_tasks`` (the
stream tasks; every task where it names none); the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import math
import sys
import time
from collections.abc import Sequence

from ..common.cli import configure_logging, run_cli, warn_if_threads_spin
from . import artifacts
from .artifacts import TrainedModel, join, load_model
from .checkpoints import TrainState, resume_state, write_checkpoint
from .data.labels import task_priors
from .data.prefetch import Prefetcher
from .data.sampling import BatchStream, SamplingPlan, plan_sampling
from .data.tables import Unit
from .learner import Learner, LrSchedule, build_learner
from .metrics import format_table
from .progress import WARMUP_BATCHES, EpochProgress, Throughput
from .run_setup import TrainingRun, config_fingerprint, open_run
from .spec import Spec
from .train_config import TrainConfig, parse_args, with_spec_training
from .validation import better_score, evaluate, fit_calibration, predict_days, selection, stopping_score

log = logging.getLogger("podtarget.model.train")


@dataclasses.dataclass
class RunResult:
    run_dir: str
    spec: Spec
    metrics: dict
    history: list[dict]
    best_epoch: int | None
    throughput: dict

    def model(self) -> TrainedModel:
        return load_model(self.run_dir)


# ------------------------------------------------------------------------------------------ set-up


# ------------------------------------------------------------------------------------------ training


def train(config: TrainConfig) -> RunResult:
    """Train (or transfer) a model and write ``<out>/<run>/``; see the module docstring."""
    run = open_run(config)
    config = with_spec_training(config, run.spec)
    learner = build_learner(config, run)
    plan = _plan_sampling(config, run, learner)
    if config.lr_schedule != "constant" or config.warmup_steps:
        total = config.epochs * _batches_per_epoch(config, plan)
        learner.schedule = LrSchedule(config.lr_schedule, config.warmup_steps, total)
    fingerprint = config_fingerprint(config, run.spec, run.split_info)
    state = resume_state(config, run, learner, fingerprint)
    throughput = Throughput()
    _train_epochs(config, run, learner, plan, fingerprint, state, throughput)
    return _finish(config, run, learner, plan, state, throughput)


def _batches_per_epoch(config: TrainConfig, plan: SamplingPlan) -> int:
    return min(plan.expected_batches, config.max_batches_per_epoch or plan.expected_batches)


# Fewer optimisation steps than this per epoch, and the defaults (chosen on millions of rows) are the wrong scale.
FEW_STEPS = 20


def few_steps_warning(config: TrainConfig, plan: SamplingPlan) -> str | None:
    """The warning for an epoch of only a few steps, with a batch size and epochs for a table of this size: about
    a hundred steps an epoch (a power of two, 64 to 8192), and five times the epochs (early stopping ends sooner)."""
    steps = _batches_per_epoch(config, plan)
    if steps >= FEW_STEPS:
        return None
    rows = plan.expected_rows
    batch = int(min(8192, max(64, 2 ** math.floor(math.log2(max(rows / 100, 1))))))
    return (
        f"an epoch is only {steps} step(s) of --batch_size={config.batch_size} over {rows:,} training rows: the "
        f"defaults suit tables of millions of rows. For this table try --batch_size={batch} "
        f"--epochs={max(config.epochs * 5, 25)} --patience=3 and a lower --lr (e.g. 0.0003; see docs/spec.md, "
        "Scaling the training to the table)"
    )


def _plan_sampling(config: TrainConfig, run: TrainingRun, learner: Learner) -> SamplingPlan:
    """How an epoch is drawn from the training days; with ``--prior_init`` (not on resume), fresh heads start at
    their task's positive rate in training batches (see MultiTaskNetwork.set_priors), while heads loaded or copied
    from a trained run keep their weights."""
    spec, catalog, train_days = run.spec, run.catalog, run.split.train
    days_of = {s: run.source_days.get(s, tuple(d.isoformat() for d in train_days)) for s in spec.sources}
    rows_by_source = {s: sum(catalog[d]["rows"].get(s, 0) for d in days_of[s]) for s in spec.sources}
    plan = plan_sampling(
        spec, rows_by_source, config.batch_size, config.source_ratio, config.max_source_repeats, run.source_days
    )
    warning = few_steps_warning(config, plan)
    if warning:
        log.warning(warning)
    if len(spec.sources) == 1:
        # Said once, so that nobody tunes options that cannot change a one-source run.
        log.info(
            "one source (%s): batches are the natural mix, and --source_ratio, --max_source_repeats and the "
            "directional mask have nothing to balance or mask",
            spec.sources[0],
        )
    if config.prior_init and not config.resume:
        priors = task_priors(spec, catalog, train_days, plan.shares)
        learner.network.set_priors({t: priors[t] for t in learner.fresh_heads})
    return plan


@dataclasses.dataclass
class _EpochRun:
    """What one epoch's training pass did: its mean loss, rows, seconds and time spent waiting for data."""

    loss: float
    rows: int
    seconds: float
    wait_seconds: float


def _epoch_batches(
    config: TrainConfig, run: TrainingRun, learner: Learner, plan: SamplingPlan, units: list[Unit], epoch: int
) -> tuple[BatchStream, Prefetcher]:
    """The epoch's stream and its iterator: the producer thread starts reading as soon as this returns."""
    stream = BatchStream(
        run.table,
        units,
        learner.encoder,
        plan,
        run.immature,
        seed=config.seed,
        epoch=epoch,
        chunk_rows=config.chunk_rows,
        pool_rows=config.pool_rows,
    )
    return stream, iter(stream)


def _train_epochs(
    config: TrainConfig,
    run: TrainingRun,
    learner: Learner,
    plan: SamplingPlan,
    fingerprint: dict,
    state: TrainState,
    throughput: Throughput,
) -> None:
    """Epochs until ``--epochs`` or early stopping, each validated and checkpointed. The next epoch's reading
    starts while this one is validated (and is stopped if early stopping ends the run)."""
    epochs = 0 if not run.trainable else config.epochs
    units = run.table.units(drawn_days(run.split.train, plan))
    upcoming = (
        _epoch_batches(config, run, learner, plan, units, state.epoch) if state.going(epochs, config.patience) else None
    )
    while upcoming is not None:
        epoch = state.epoch
        stream, batches = upcoming
        total_batches = _batches_per_epoch(config, plan)
        progress = EpochProgress(f"epoch {epoch + 1}/{epochs}", total_batches, config.progress)
        trained = _train_epoch(config, learner, stream, batches, progress, throughput)
        upcoming = _epoch_batches(config, run, learner, plan, units, epoch + 1) if epoch + 1 < epochs else None
        _validate_epoch(run, learner, state, trained)
        write_checkpoint(run, learner, state, fingerprint)
        if upcoming is not None and state.bad_epochs > config.patience:
            upcoming[1].close()
            upcoming = None


def drawn_days(train: Sequence[datetime.date], plan: SamplingPlan) -> list[datetime.date]:
    """The training days an epoch reads: every one, unless every source it draws is restricted to some days
    (``--source_history_days``), e.g. an ads-only run on one day of ad history reads that day alone."""
    if not all(s in plan.days for s in plan.sources):
        return list(train)
    chosen = {d for s in plan.sources for d in plan.days[s]}
    return [d for d in train if d.isoformat() in chosen]


def _train_epoch(
    config: TrainConfig,
    learner: Learner,
    stream: BatchStream,
    batches: Prefetcher,
    progress: EpochProgress,
    throughput: Throughput,
) -> _EpochRun:
    """One pass over the epoch's batches (at most ``--max_batches_per_epoch``), counted into ``throughput``."""
    learner.train_mode()
    loss_sum, loss_n, epoch_rows = 0.0, 0, 0
    started = time.perf_counter()
    steady_start = None
    wait_at_steady, rows_at_steady = 0.0, 0
    for i, batch in enumerate(batches):
        if i == WARMUP_BATCHES:
            steady_start, wait_at_steady, rows_at_steady = time.perf_counter(), stream.wait_seconds, epoch_rows
        loss_sum += learner.step(batch)
        loss_n += 1
        epoch_rows += batch.size
        elapsed = time.perf_counter() - started
        progress.update(batch.size, loss_sum / loss_n, stream.wait_seconds / max(elapsed, 1e-9))
        if config.max_batches_per_epoch and i + 1 >= config.max_batches_per_epoch:
            batches.close()
            break
    seconds = time.perf_counter() - started
    progress.close()
    if steady_start is not None:
        throughput.steady_seconds += time.perf_counter() - steady_start
        throughput.steady_rows += epoch_rows - rows_at_steady
        throughput.wait_seconds += stream.wait_seconds - wait_at_steady
    throughput.train_seconds += seconds
    throughput.examples += epoch_rows
    return _EpochRun(loss_sum / max(loss_n, 1), epoch_rows, seconds, stream.wait_seconds)


def _validate_epoch(run: TrainingRun, learner: Learner, state: TrainState, trained: _EpochRun) -> None:
    """Score the epoch on the validation days, keep its weights if they are the best so far, and log its record."""
    epoch = state.epoch
    # Overall figures only: an epoch's record keeps its stopping score, and the slices took three quarters of the
    # metrics' time (the final metrics of the best epoch have them).
    valid = evaluate(learner.network, learner.encoder, run.table, run.split.valid, run.immature, by_slice=False)
    score = stopping_score(run.spec, valid)
    record = {
        "epoch": epoch + 1,
        "train_loss": trained.loss,
        "examples": trained.rows,
        "seconds": round(trained.seconds, 2),
        "examples_per_s": round(trained.rows / max(trained.seconds, 1e-9)),
        "data_wait_share": round(trained.wait_seconds / max(trained.seconds, 1e-9), 4),
        "valid_score": score,
        # Each task's own validation AP: which head still improves when the mean stops (None: no positives).
        "valid_ap": {t: m["overall"].get("average_precision") for t, m in (valid or {}).items()},
        "task_weights": learner.weighting.current(),
    }
    improved = score is not None and better_score(run.spec, score, state.best_score)
    if improved or score is None:
        state.best_score, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
        state.best_weights = copy.deepcopy(learner.network.state_dict())
    else:
        state.bad_epochs += 1
    state.history.append(record)
    state.epoch = epoch + 1
    log.info("epoch %d: %s", epoch + 1, json.dumps(record))


def _finish(
    config: TrainConfig,
    run: TrainingRun,
    learner: Learner,
    plan: SamplingPlan,
    state: TrainState,
    throughput: Throughput,
) -> RunResult:
    """The best epoch's weights: final metrics on the validation and test days, calibration, and the run's
    artifacts (weights, spec, encoder, metrics, split, config, label catalog)."""
    network, encoder, spec = learner.network, learner.encoder, run.spec
    network.load_state_dict(state.best_weights)
    predicted = {
        name: predict_days(network, encoder, run.table, days, run.immature)
        for name, days in (("valid", run.split.valid), ("test", run.split.test))
    }
    metrics_by_split = {
        name: evaluate(network, encoder, run.table, None, run.immature, predicted=a) for name, a in predicted.items()
    }
    calibration_fit = fit_calibration(spec, list(network.tasks), run.applied, predicted["valid"], predicted["test"])
    speed = throughput.as_dict()
    metrics = {
        "run": run.name,
        "split": run.split_info,
        "sampling": dataclasses.asdict(plan),
        "trainable_heads": run.trainable,
        "applied_heads": run.applied,
        "best_epoch": state.best_epoch,
        "selection": selection(spec),
        "best_valid_score": state.best_score,
        "history": state.history,
        "throughput": speed,
        "slice_column": spec.slice_column,
        **metrics_by_split,
    }
    text = format_table(metrics_by_split, spec.slice_column or "slice")
    config_dict = {k: v for k, v in dataclasses.asdict(config).items()}
    artifacts.save_model(
        run.run_dir,
        network,
        spec,
        encoder,
        run.schema,
        metrics=metrics,
        metrics_text=text,
        calibration_fit=calibration_fit,
        extra={"split": run.split_info, "config": config_dict, "label_catalog": run.catalog},
    )
    return RunResult(run.run_dir, spec, metrics, state.history, state.best_epoch, speed)


# ------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)

    def run() -> int:
        config = parse_args(
            sys.argv[1:] if argv is None else argv, __doc__
        )  # inside: a bad value is a one-line error too
        result = train(config)
        print(read_text(join(result.run_dir, "metrics.txt")))
        print(f"throughput: {json.dumps(result.throughput)}")
        print(f"model written to {result.run_dir}")
        return 0

    return run_cli(run, MAKE_VARIABLES)


# Flags the errors name, and the make variable that sets each (shown when run from make; common/cli.py).
MAKE_VARIABLES = {
    "--resume": "TRAIN_ARGS=--resume",
    "--overwrite": "TRAIN_ARGS=--overwrite",
    "--examples": "EXAMPLES=... or DATA_ROOT=...",
    "--run": "RUN=<name>",
}


def read_text(path: str) -> str:
    return artifacts.read_bytes(path).decode()


if __name__ == "__main__":
    sys.exit(main())

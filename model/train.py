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

import argparse
import copy
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from podtarget.common.checks import check_choice, check_int, check_number, invalid, optional
from podtarget.common.cli import CommandParser, configure_logging, run_cli, warn_if_threads_spin
from podtarget.common.cloud import require_credentials
from podtarget.common.days import parse_days
from podtarget.model import artifacts, calibration
from podtarget.model.artifacts import ArtifactError, TrainedModel, join, load_model, trained_for
from podtarget.model.data.encoding import Batch, Encoder
from podtarget.model.data.labels import immature_labels, label_catalog, task_priors, usable_days
from podtarget.model.data.prefetch import Prefetcher
from podtarget.model.data.sampling import BatchStream, SamplingPlan, plan_sampling, scan
from podtarget.model.data.splits import DaySplit, split_days
from podtarget.model.data.statistics import fit_statistics
from podtarget.model.data.tables import ExampleTable, Unit
from podtarget.model.losses import WEIGHTINGS, LossWeighting, masked_bce, pcgrad_backward, row_mask
from podtarget.model.metrics import evaluate_arrays, format_table
from podtarget.model.network import InputLayout, MultiTaskNetwork, RowSparseAdam
from podtarget.model.spec import (
    ARCHITECTURES,
    DEFAULT_SPEC,
    LR_SCHEDULES,
    SELECTION_METRICS,
    TRAINING_KEYS,
    Spec,
    SpecError,
    TaskSpec,
    load_spec,
)

log = logging.getLogger("podtarget.model.train")
WARMUP_BATCHES = 5


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on. Defaults are the production setting of the paper on our table."""

    examples: str
    out: str = "models"
    run: str = ""
    spec: str = str(DEFAULT_SPEC)
    train_days: str | None = None
    valid_days: str | None = None
    test_days: str | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    epochs: int = 5
    batch_size: int = 8192
    lr: float = 2e-3
    embedding_lr: float | None = None
    # AdamW's decoupled weight decay: of the dense parameters (weight_decay), and of the embedding rows a step
    # touches (embedding_weight_decay; see RowSparseAdam). 0 = plain Adam, as before.
    weight_decay: float = 0.0
    embedding_weight_decay: float = 0.0
    # The learning rate over the run: "constant", or decayed to zero by the last epoch along a half cosine or a
    # line, after warmup_steps steps rising linearly from zero. Constant by default: the podcast runs were measured
    # with it.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    seed: int = 7
    patience: int = 2
    resume: bool = False
    overwrite: bool = False
    tasks: list[str] | None = None
    sources: list[str] | None = None
    disable_groups: list[str] | None = None
    directional_mask: bool = True
    source_ratio: float | None = 0.5
    # At most this many draws per epoch, on average, of a row of the source that balancing up-samples (the scarcer
    # one): past it, that source's batch share shrinks towards the natural mix (model/data/sampling.py). None: no
    # cap (every batch keeps source_ratio, however often the scarce rows repeat). 2, chosen on validation days of
    # the eval world with one day of ad history, where half-ad batches drew each ad row 31 times an epoch and the
    # joint model's AdStream head fell below the promotions-only baseline's (docs/results.md); with every day of
    # ad history the balanced batches draw each ad row about twice, so the cap leaves them as they were.
    max_source_repeats: float | None = 2.0
    # Sources trained only on their last N training days (e.g. {"ad": 1}: one day of ad history, every day of
    # promotions): the cold start of a channel, measured by `make coldstart`. Validation and test days are whole.
    source_history_days: dict[str, int] = dataclasses.field(default_factory=dict)
    architecture: str | None = None
    loss_weighting: str = "fixed"
    task_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    # Start fresh heads at their task's training positive rate (MultiTaskNetwork.set_priors). Off by default:
    # on the demo world it helps Click and does not hurt the stream tasks, but on the tiny world's fixed-epoch
    # recipe it lowers the stream tasks (measured; see docs/results.md, Training).
    prior_init: bool = False
    init_from: str | None = None
    add_task: list[str] = dataclasses.field(default_factory=list)
    freeze_encoder: bool = False
    apply_head: list[str] = dataclasses.field(default_factory=list)
    threads: int | None = None
    max_batches_per_epoch: int | None = None
    chunk_rows: int = 16384
    pool_rows: int = 32768
    progress: bool | None = None
    # The settings of the spec's [training] table that were given explicitly (command-line flags): they win over the
    # spec's. A setting given in Python wins where it differs from the default (see with_spec_training).
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a bad setting now, with the uniform message, rather than minutes into a run. ``examples`` is not
        checked: ``parse_args`` builds ``TrainConfig(examples="")`` to read the defaults."""
        owner = "TrainConfig"
        for name in ("train_days", "valid_days", "test_days"):
            self._check_days(name)
        if (self.valid_days or self.test_days) and not self.train_days:
            raise invalid(owner, "train_days", "days when valid_days or test_days are given", self.train_days)
        split_ok = (
            isinstance(self.split, tuple | list)
            and len(self.split) == 3
            and all(isinstance(f, int | float) and not isinstance(f, bool) and f >= 0 for f in self.split)
            and abs(sum(self.split) - 1.0) <= 1e-6
        )
        if not split_ok:
            raise invalid(owner, "split", "three fractions >= 0 summing to 1 (train, valid, test)", self.split)
        for name in ("epochs", "batch_size", "chunk_rows", "pool_rows"):
            check_int(owner, name, getattr(self, name), low=1)
        for name in ("seed", "patience", "warmup_steps"):
            check_int(owner, name, getattr(self, name), low=0)
        check_choice(owner, "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("threads", "max_batches_per_epoch"):
            optional(check_int, owner, name, getattr(self, name), low=1)
        check_number(owner, "lr", self.lr, above=0)
        optional(check_number, owner, "embedding_lr", self.embedding_lr, above=0)
        for name in ("weight_decay", "embedding_weight_decay"):
            check_number(owner, name, getattr(self, name), low=0)
        # A share of each batch: 0 or 1 would leave one source no rows at all.
        optional(check_number, owner, "source_ratio", self.source_ratio, above=0, below=1)
        optional(check_number, owner, "max_source_repeats", self.max_source_repeats, low=1)
        for source, days in self.source_history_days.items():
            check_int(owner, f'source_history_days["{source}"]', days, low=1)
        optional(check_choice, owner, "architecture", self.architecture, ARCHITECTURES)
        check_choice(owner, "loss_weighting", self.loss_weighting, WEIGHTINGS)
        for task, weight in self.task_weights.items():
            check_number(owner, f'task_weights["{task}"]', weight, low=0)

    def _check_days(self, name: str) -> None:
        text = getattr(self, name)
        if text is None:
            return
        expected = "days as YYYY-MM-DD, a..b ranges or a comma list (e.g. 2026-03-02..2026-03-07) or None"
        if not isinstance(text, str):
            raise invalid("TrainConfig", name, expected, text)
        try:
            parse_days(text)
        except ValueError:
            raise invalid("TrainConfig", name, expected, text) from None


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


class EpochProgress:
    """One epoch's progress: on an interactive terminal, a tqdm bar over its batches on stderr with the running
    loss, examples/s and the share of time spent waiting for data. Elsewhere (make's output in a log file, CI) no bar,
    which would be a stream of carriage returns there: the epoch's one log line is the progress. ``enabled`` True or
    False (``--progress``/``--no-progress``) overrides the terminal check, e.g. for an IDE console that is not one.

        >>> progress = EpochProgress("epoch 1/5", total_batches=240, enabled=None)
        >>> progress.update(rows=8192, loss=0.6143, wait_share=0.012)
        >>> progress.close()
    """

    def __init__(self, label: str, total_batches: int, enabled: bool | None, stream: TextIO | None = None):
        stream = sys.stderr if stream is None else stream  # looked up now: tests and callers may swap sys.stderr
        shown = stream.isatty() if enabled is None else enabled
        self.bar = tqdm(
            total=total_batches, desc=label, unit="batch", file=stream, disable=not shown, dynamic_ncols=True
        )
        self.rows = 0
        self.started = time.perf_counter()

    def update(self, rows: int, loss: float, wait_share: float) -> None:
        """One more batch of ``rows`` rows; ``loss``: the epoch's mean so far."""
        self.rows += rows
        if self.bar.disable:
            return
        rate = self.rows / max(time.perf_counter() - self.started, 1e-9)
        postfix = f"loss {loss:.4f} | {rate / 1000:.1f}k ex/s | data wait {100 * wait_share:.1f}%"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------------ set-up


def _parse_add_task(text: str) -> TaskSpec:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise SpecError(f"--add_task {text!r}: expected NAME:label_column:source")
    return TaskSpec(parts[0], parts[1], parts[2], (parts[2],))


def _parse_apply(text: str) -> tuple[str, str]:
    new, _, existing = text.partition("=")
    if not new or not existing:
        raise SpecError(f"--apply_head {text!r}: expected NEW=EXISTING (a new task served by an existing head)")
    return new, existing


def resolve_spec(config: TrainConfig, base: TrainedModel | None) -> tuple[Spec, list[str], dict[str, str]]:
    """The run's spec, which heads train, and which new heads copy an existing one (``--apply_head``)."""
    added = [_parse_add_task(t) for t in config.add_task]
    applied = dict(_parse_apply(t) for t in config.apply_head)
    if base is None:
        if added or applied or config.freeze_encoder:
            raise SpecError("--add_task, --apply_head and --freeze_encoder need --init_from=models/<run>")
        spec = load_spec(config.spec).with_changes(
            tasks=config.tasks,
            sources=config.sources,
            disabled_groups=config.disable_groups,
            directional_mask=config.directional_mask,
            architecture=config.architecture,
        )
        return spec, list(spec.task_names), {}
    for option in ("tasks", "disable_groups", "architecture"):
        if getattr(config, option):
            raise SpecError(f"--{option} cannot change a model given by --init_from (its encoder is fixed)")
    known = {t.name: t for t in load_spec(config.spec).tasks} | {t.name: t for t in added}
    new_tasks = list(added)
    for new, existing in applied.items():
        if existing not in base.tasks:
            raise SpecError(f"--apply_head {new}={existing}: no head {existing!r}; heads: {', '.join(base.tasks)}")
        if new not in known:
            raise SpecError(f"--apply_head {new}={existing}: task {new!r} is not defined; add it with --add_task")
        if new not in {t.name for t in added}:
            new_tasks.append(known[new])
    clash = [t.name for t in new_tasks if t.name in base.tasks]
    if clash:
        raise SpecError(f"task(s) {clash} already have a head in {config.init_from}")
    # The rows a transfer run trains on are its own choice (e.g. ad rows for a head trained on promotions only):
    # --sources, else every source; the encoding does not depend on them.
    spec = base.spec.with_changes(
        sources=config.sources or base.spec.sources,
        directional_mask=config.directional_mask,
        extra_tasks=new_tasks,
    )
    fresh = [t.name for t in added if t.name not in applied]
    if applied and not fresh:
        trainable = []  # applying heads as they are: evaluate and save, no training
    elif config.freeze_encoder and fresh:
        trainable = fresh
    else:
        trainable = [t for t in spec.task_names if t not in applied]
    return spec, trainable, applied


def _config_fingerprint(config: TrainConfig, spec: Spec, split: dict) -> dict:
    keep = (
        "batch_size",
        "lr",
        "embedding_lr",
        "seed",
        "patience",
        "source_ratio",
        "max_source_repeats",
        "source_history_days",
        "loss_weighting",
        "task_weights",
    )
    # Settings added later join the fingerprint only when set, so that earlier checkpoints still resume.
    later = {
        k: getattr(config, k) for k in ("weight_decay", "embedding_weight_decay", "warmup_steps") if getattr(config, k)
    }
    if config.lr_schedule != "constant":
        # The decay spans the run's epochs: resuming with other epochs would continue another schedule.
        later.update(lr_schedule=config.lr_schedule, epochs=config.epochs)
    return {
        "spec": spec.fingerprint(),
        "split": {k: split[k] for k in ("train", "valid", "test")},
        **{k: getattr(config, k) for k in keep},
        **later,
        "init_from": config.init_from,
        "freeze_encoder": config.freeze_encoder,
    }


def predict_days(network: MultiTaskNetwork, encoder: Encoder, table: ExampleTable, days, immature) -> dict | None:
    """Every head's probabilities on ``days`` with the labels, the eval mask (observed rows of each task's eval
    sources), the observed mask, the source index and the slice of every row (arrays ``[rows, tasks]`` or
    ``[rows]``); None without days."""
    if not days:
        return None
    probs, ys, masks, observed, sources, slices = [], [], [], [], [], []
    matrix = encoder.eval_mask_matrix()
    for batch in scan(table, table.units(days), encoder, immature):
        p = network.predict(batch)
        probs.append(torch.stack([p[t] for t in network.tasks], dim=1).numpy())
        ys.append(batch.y.numpy())
        masks.append(row_mask(batch.obs, batch.source, matrix).numpy())
        observed.append(batch.obs.numpy())
        sources.append(batch.source.numpy())
        slices.append(batch.slice.numpy())
    cat = np.concatenate
    return {
        "p": cat(probs),
        "y": cat(ys),
        "mask": cat(masks),
        "obs": cat(observed),
        "source": cat(sources),
        "slice": cat(slices),
    }


def evaluate(
    network: MultiTaskNetwork,
    encoder: Encoder,
    table: ExampleTable,
    days,
    immature,
    predicted: dict | None = None,
    by_slice: bool = True,
) -> dict:
    """Metrics of every head on ``days`` (each task on its observed rows of its eval sources); per slice value too
    unless ``by_slice`` is False (early stopping reads the overall figures only)."""
    a = predicted if predicted is not None else predict_days(network, encoder, table, days, immature)
    if a is None:
        return {}
    has_slice = encoder.spec.slice_column is not None and by_slice
    return evaluate_arrays(list(network.tasks), a["p"], a["y"], a["mask"], a["slice"] if has_slice else None)


def fit_calibration(spec: Spec, tasks: Sequence[str], applied, valid: dict | None, test: dict | None) -> dict:
    """Platt scaling per (head, source it serves), fitted on the validation rows (``model/calibration.py``)."""
    served = trained_for(spec, applied)

    def rows(a: dict | None) -> dict:
        out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if a is None:
            return out
        for i, task in enumerate(tasks):
            for source in served[task][1]:
                keep = (a["obs"][:, i] > 0) & (a["source"] == spec.sources.index(source))
                out[(task, source)] = (a["p"][keep, i], a["y"][keep, i])
        return out

    fitted = rows(valid)
    if not fitted:
        return {}
    return calibration.fit_all(fitted, rows(test))


def stopping_score(spec: Spec, metrics: dict) -> float | None:
    """The mean validation ``spec.selection_metric`` (AP by default) of the selection tasks that have one (of all
    tasks if none do); None if it is defined for no task. Higher is better except for log loss: see
    :func:`better_score`."""
    key = SELECTION_METRICS[spec.selection_metric]
    for names in (spec.selection_tasks, spec.task_names):
        values = [metrics[t]["overall"].get(key) for t in names if t in metrics]
        values = [v for v in values if v is not None]
        if values:
            return float(np.mean(values))
    return None


def better_score(spec: Spec, score: float, best: float | None) -> bool:
    """Whether an epoch's stopping score beats the best so far (lower log loss, higher AP or AUC)."""
    if best is None:
        return True
    return score < best if spec.selection_metric == "log_loss" else score > best


def selection(spec: Spec) -> dict:
    """What chooses the best epoch, as metrics.json records it: the metric and the tasks whose mean it takes."""
    return {"metric": spec.selection_metric, "tasks": list(spec.selection_tasks)}


# ------------------------------------------------------------------------------------------ training


def batch_terms(
    network: MultiTaskNetwork, batch, train_matrix: torch.Tensor, weighting: LossWeighting
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's term of the training objective of one batch: per (row, task) mask = label observed x
    m[source, task], per-task mean BCE over valid rows, weighted by the task weighting. Returns (terms, losses)."""
    mask = row_mask(batch.obs, batch.source, train_matrix)
    losses, counts = masked_bce(network(batch), batch.y, mask)
    return weighting.weighted(losses, counts), losses


def batch_loss(
    network: MultiTaskNetwork, batch, train_matrix: torch.Tensor, weighting: LossWeighting
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training objective of one batch (the sum of :func:`batch_terms`). Returns (total, per-task losses)."""
    terms, losses = batch_terms(network, batch, train_matrix, weighting)
    return terms.sum(), losses


def with_spec_training(config: TrainConfig, spec: Spec) -> TrainConfig:
    """``config`` with the spec's ``[training]`` settings where the caller left them: a setting named in
    ``config.given`` (a flag on the command line) or set to other than TrainConfig's default keeps its value.

        >>> with_spec_training(TrainConfig(examples="x"), spec).epochs      # spec: [training] epochs = 25
        25
    """
    defaults = TrainConfig(examples="")
    changes = {
        k: v for k, v in spec.training.items() if k not in config.given and getattr(config, k) == getattr(defaults, k)
    }
    if changes:
        log.info("from the spec's [training]: %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
    return dataclasses.replace(config, **changes) if changes else config


def train(config: TrainConfig) -> RunResult:
    """Train (or transfer) a model and write ``<out>/<run>/``; see the module docstring."""
    run = _open_run(config)
    config = with_spec_training(config, run.spec)
    learner = _build_learner(config, run)
    plan = _plan_sampling(config, run, learner)
    if config.lr_schedule != "constant" or config.warmup_steps:
        total = config.epochs * _batches_per_epoch(config, plan)
        learner.schedule = LrSchedule(config.lr_schedule, config.warmup_steps, total)
    fingerprint = _config_fingerprint(config, run.spec, run.split_info)
    state = _resume(config, run, learner, fingerprint)
    throughput = _Throughput()
    _train_epochs(config, run, learner, plan, fingerprint, state, throughput)
    return _finish(config, run, learner, plan, state, throughput)


@dataclasses.dataclass(frozen=True)
class LrSchedule:
    """The learning rate's factor at each optimisation step: rising linearly from 0 over ``warmup_steps``, then
    ``"constant"``, or decayed to 0 at ``total_steps`` (the run's last step if it runs every epoch) along a half
    cosine or a line. Early stopping may end a run before the end of its decay.

        >>> s = LrSchedule("cosine", warmup_steps=10, total_steps=110)
        >>> [round(s.factor(k), 3) for k in (0, 9, 10, 60, 109)]
        [0.1, 1.0, 1.0, 0.5, 0.0]
    """

    kind: str
    warmup_steps: int
    total_steps: int

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        span = max(self.total_steps - self.warmup_steps - 1, 1)
        done = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * done)) if self.kind == "cosine" else 1.0 - done


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


@dataclasses.dataclass
class _Run:
    """A run's name and folder, and what it trains on: the model it starts from (``--init_from``), its spec and
    heads, the example table, the label catalog and the split."""

    name: str
    run_dir: str
    checkpoint_path: str
    base: TrainedModel | None
    spec: Spec
    trainable: list[str]
    applied: dict[str, str]
    table: ExampleTable
    schema: pa.Schema
    catalog: dict
    immature: dict[str, list[tuple[str, str]]]
    split: DaySplit
    split_info: dict
    source_days: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _open_run(config: TrainConfig) -> _Run:
    """Check the run's name and folder, seed torch, open the table and split its days (logged)."""
    run = config.run or datetime.datetime.now(datetime.UTC).strftime("run-%Y%m%d-%H%M%S")
    artifacts.check_run_name(run)
    require_credentials([config.examples, config.out, config.init_from])
    run_dir = join(config.out, run)
    if not config.resume and not config.overwrite and artifacts.exists(join(run_dir, "manifest.json")):
        raise ArtifactError(f"run {run_dir!r} exists; pass --resume to continue it or --overwrite to replace it")
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    torch.manual_seed(config.seed)

    base = load_model(config.init_from) if config.init_from else None
    spec, trainable, applied = resolve_spec(config, base)
    table = ExampleTable.open(config.examples)
    schema = table.schema
    if base is not None:
        artifacts.check_schema(base.manifest, base.spec, schema, f"--init_from {config.init_from!r}")
    spec.validate(schema)

    catalog = label_catalog(spec, table, table.days)
    immature = immature_labels(spec, catalog)
    explicit = [parse_days(d) if d else None for d in (config.train_days, config.valid_days, config.test_days)]
    if any(d is not None for d in explicit):
        split = split_days(table.days, train=explicit[0], valid=explicit[1], test=explicit[2])
    else:
        keep, excluded = usable_days(spec, catalog)
        split = split_days(keep, fractions=config.split, excluded=excluded + table.skipped)
    split_info = split.as_dict()
    source_days = history_days(config.source_history_days, spec.sources, split.train)
    if source_days:
        split_info["source_days"] = {s: list(d) for s, d in source_days.items()}
    log.info("split: %s", json.dumps(split_info))
    chosen = selection(spec)
    log.info(
        "best epoch: the %s of %s%s",
        "lowest mean validation log loss"
        if chosen["metric"] == "log_loss"
        else f"highest mean validation {chosen['metric'].upper()}",
        ", ".join(chosen["tasks"]),
        "" if spec.early_stopping_tasks else " (every task: the spec's [evaluation] names none)",
    )
    checkpoint_path = join(run_dir, "checkpoints", "last.pt")
    return _Run(
        run,
        run_dir,
        checkpoint_path,
        base,
        spec,
        trainable,
        applied,
        table,
        schema,
        catalog,
        immature,
        split,
        split_info,
        source_days,
    )


def history_days(
    history: dict[str, int], sources: Sequence[str], train: Sequence[datetime.date]
) -> dict[str, tuple[str, ...]]:
    """The training days each restricted source is drawn from: its last ``history[source]`` training days."""
    unknown = sorted(set(history) - set(sources))
    if unknown:
        raise SpecError(f"--source_history_days: unknown source(s) {unknown}; the spec's sources: {list(sources)}")
    return {s: tuple(d.isoformat() for d in sorted(train)[-n:]) for s, n in sorted(history.items())}


@dataclasses.dataclass
class _Learner:
    """The network and what updates it: the encoder, the task weighting, the (source x task) training mask, the
    dense and row-sparse optimizers, and PCGrad's parameter groups and generator. ``fresh_heads``: the heads not
    loaded or copied from a trained run (the ones ``--prior_init`` starts at their task's positive rate)."""

    encoder: Encoder
    network: MultiTaskNetwork
    weighting: LossWeighting
    train_matrix: torch.Tensor
    dense_opt: torch.optim.Optimizer | None
    sparse_opt: RowSparseAdam | None
    shared_params: list[torch.nn.Parameter]
    own_params: list[torch.nn.Parameter]
    pcgrad_rng: torch.Generator
    frozen_encoder: bool
    fresh_heads: list[str]
    schedule: LrSchedule | None = None
    steps: int = 0  # optimisation steps so far, over the run (checkpointed: the schedule resumes where it was)

    def train_mode(self) -> None:
        self.network.train()
        if self.frozen_encoder:
            self.network.encoder.eval()  # frozen batch-norm statistics too

    def step(self, batch: Batch) -> float:
        """One optimisation step on ``batch``; returns its training loss."""
        if self.schedule is not None:
            factor = self.schedule.factor(self.steps)
            for opt in (self.dense_opt, self.sparse_opt):
                for group in opt.param_groups if opt is not None else ():
                    group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
        self.steps += 1
        terms, _ = batch_terms(self.network, batch, self.train_matrix, self.weighting)
        total = terms.sum()
        if self.dense_opt is not None:
            self.dense_opt.zero_grad(set_to_none=True)
        if self.sparse_opt is not None:
            self.sparse_opt.zero_grad(set_to_none=True)
        if total.requires_grad:
            if self.weighting.method == "pcgrad":
                pcgrad_backward(terms, self.shared_params, self.own_params, self.pcgrad_rng)
            else:
                total.backward()
            if self.dense_opt is not None:
                self.dense_opt.step()
            if self.sparse_opt is not None and self.network.embedding.coalesced_grad() is not None:
                self.sparse_opt.step()
        return float(total.detach())


def _build_learner(config: TrainConfig, run: _Run) -> _Learner:
    """Statistics (or the base model's), the encoder, the network (new, or the base with its new heads) with the
    parameters that train, and the optimizers."""
    base, spec, trainable, applied = run.base, run.spec, run.trainable, run.applied
    stats = (
        base.encoder.stats
        if base is not None
        else fit_statistics(spec, run.table, run.split.train, source_days=run.source_days)
    )
    encoder = Encoder(spec, stats)
    layout = InputLayout(
        encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width, encoder.field_dims()
    )
    base_heads = list(base.network.tasks) if base is not None else []
    if base is not None:
        network = base.network
        for task in spec.task_names:
            if task not in network.tasks:
                network.add_task(task, copy_from=applied.get(task))
    else:
        network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    if list(network.tasks) != list(spec.task_names):
        raise ArtifactError(f"heads {network.tasks} do not match the spec's tasks {spec.task_names}")

    frozen_encoder = config.freeze_encoder
    for p in network.encoder_parameters():
        p.requires_grad_(not frozen_encoder)
    for task, tower in network.towers.items():
        for p in tower.parameters():
            p.requires_grad_(task in trainable)
    weighting = LossWeighting(spec.task_names, config.loss_weighting, config.task_weights)
    train_matrix = encoder.train_mask_matrix() * torch.tensor([float(t in trainable) for t in spec.task_names])
    dense = [p for n, p in network.named_parameters() if p.requires_grad and n != "embedding.weight"]
    dense += list(weighting.parameters())
    dense_opt = _dense_optimizer(dense, config) if dense else None
    sparse_opt = (
        RowSparseAdam(
            [network.embedding.weight],
            lr=config.embedding_lr or config.lr,
            weight_decay=config.embedding_weight_decay,
        )
        if network.embedding.weight.requires_grad
        else None
    )
    # PCGrad projects the per-task gradients of what the tasks share; each tower and the weighting's own
    # parameters get their plain gradient. Its random task order has its own generator, checkpointed for --resume.
    shared_params = list(network.encoder_parameters())
    own_params = [p for t in network.towers.values() for p in t.parameters()] + list(weighting.parameters())
    pcgrad_rng = torch.Generator().manual_seed(config.seed)
    fresh = [t for t in spec.task_names if base is None or (t not in base_heads and t not in applied)]
    return _Learner(
        encoder,
        network,
        weighting,
        train_matrix,
        dense_opt,
        sparse_opt,
        shared_params,
        own_params,
        pcgrad_rng,
        frozen_encoder,
        fresh,
    )


def _dense_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW with ``weight_decay`` (decoupled: biases, batch norm and gates decay too, like the weights,
    which keeps the rule one line; at the small rates that help here the difference is negligible)."""
    # foreach: one multi-tensor update of every dense parameter instead of a loop of small ones; bitwise the same.
    if config.weight_decay:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=config.lr, foreach=True)


def _plan_sampling(config: TrainConfig, run: _Run, learner: _Learner) -> SamplingPlan:
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
class _TrainState:
    """Where training stands (saved in every checkpoint as ``state``, a dict of the fields after ``best_weights``)
    and the best epoch's weights so far."""

    best_weights: dict
    epoch: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)

    def saved(self) -> dict:
        return {k: getattr(self, k) for k in ("epoch", "best_score", "best_epoch", "bad_epochs", "history")}

    def going(self, epochs: int, patience: int) -> bool:
        """Whether another epoch runs: epochs are left and early stopping has not ended the run."""
        return self.epoch < epochs and self.bad_epochs <= patience


def _resume(config: TrainConfig, run: _Run, learner: _Learner, fingerprint: dict) -> _TrainState:
    """A fresh state, or with ``--resume`` the checkpoint's: weights, optimizers, weighting, random generators and
    history, when it was written by the same configuration (``fingerprint``)."""
    state = _TrainState(best_weights=copy.deepcopy(learner.network.state_dict()))
    if not config.resume:
        return state
    if not artifacts.exists(run.checkpoint_path):
        raise ArtifactError(f"--resume: no checkpoint at {run.checkpoint_path!r}")
    ckpt = artifacts.torch_load(run.checkpoint_path, "checkpoint")
    if ckpt.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        raise ArtifactError(
            f"--resume: {run.checkpoint_path!r} was written by a different configuration; "
            f"checkpoint {ckpt.get('fingerprint')}, now {fingerprint}"
        )
    learner.network.load_state_dict(ckpt["network"])
    learner.weighting.load_state_dict(ckpt["weighting"])
    if learner.dense_opt is not None:
        learner.dense_opt.load_state_dict(ckpt["dense_opt"])
    if learner.sparse_opt is not None:
        learner.sparse_opt.load_state_dict(ckpt["sparse_opt"])
    torch.set_rng_state(ckpt["torch_rng"])
    if "pcgrad_rng" in ckpt:
        learner.pcgrad_rng.set_state(ckpt["pcgrad_rng"])
    state = _TrainState(best_weights=ckpt["best_weights"], **ckpt["state"])
    learner.steps = int(ckpt.get("steps", 0))
    log.info("resumed %s after epoch %d", run.run_dir, state.epoch)
    return state


def _write_checkpoint(run: _Run, learner: _Learner, state: _TrainState, fingerprint: dict) -> None:
    """Everything ``--resume`` needs to continue exactly where this epoch ended (``checkpoints/last.pt``)."""
    checkpoint = {
        "fingerprint": fingerprint,
        "network": learner.network.state_dict(),
        "weighting": learner.weighting.state_dict(),
        "dense_opt": learner.dense_opt.state_dict() if learner.dense_opt is not None else {},
        "sparse_opt": learner.sparse_opt.state_dict() if learner.sparse_opt is not None else {},
        "best_weights": state.best_weights,
        "torch_rng": torch.get_rng_state(),
        "pcgrad_rng": learner.pcgrad_rng.get_state(),
        "state": state.saved(),
        "steps": learner.steps,
    }
    artifacts.write_bytes(run.checkpoint_path, artifacts.torch_bytes(checkpoint))


@dataclasses.dataclass
class _Throughput:
    """Training examples and seconds over the run, and in the steady state: each epoch after its first
    ``WARMUP_BATCHES`` (which include filling the shuffle buffer), with the time spent waiting for data."""

    examples: int = 0
    train_seconds: float = 0.0
    steady_rows: int = 0
    steady_seconds: float = 0.0
    wait_seconds: float = 0.0

    def as_dict(self) -> dict:
        steady = self.steady_seconds
        return {
            "examples": self.examples,
            "train_seconds": round(self.train_seconds, 2),
            "examples_per_s_steady": round(self.steady_rows / steady) if steady else None,
            "data_wait_share_steady": round(self.wait_seconds / steady, 4) if steady else None,
            "torch_threads": torch.get_num_threads(),
        }


@dataclasses.dataclass
class _EpochRun:
    """What one epoch's training pass did: its mean loss, rows, seconds and time spent waiting for data."""

    loss: float
    rows: int
    seconds: float
    wait_seconds: float


def _epoch_batches(
    config: TrainConfig, run: _Run, learner: _Learner, plan: SamplingPlan, units: list[Unit], epoch: int
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
    run: _Run,
    learner: _Learner,
    plan: SamplingPlan,
    fingerprint: dict,
    state: _TrainState,
    throughput: _Throughput,
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
        _write_checkpoint(run, learner, state, fingerprint)
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
    learner: _Learner,
    stream: BatchStream,
    batches: Prefetcher,
    progress: EpochProgress,
    throughput: _Throughput,
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


def _validate_epoch(run: _Run, learner: _Learner, state: _TrainState, trained: _EpochRun) -> None:
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
    run: _Run,
    learner: _Learner,
    plan: SamplingPlan,
    state: _TrainState,
    throughput: _Throughput,
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


def _csv(text: str | None) -> list[str] | None:
    return [x for x in (s.strip() for s in text.split(",")) if x] if text is not None else None


def _assignments(text: str, convert, flag: str, expected: str) -> dict:
    """``NAME=VALUE,...`` as a dict, each value converted; a clear error naming the flag otherwise."""
    out = {}
    for part in _csv(text) or []:
        name, _, value = part.partition("=")
        try:
            out[name] = convert(value)
        except ValueError as exc:
            raise SpecError(f"{flag} {part!r}: expected {expected}") from exc
    return out


def _weights(text: str) -> dict[str, float]:
    return _assignments(text, float, "--task_weights", "TASK=NUMBER")


def _history(text: str) -> dict[str, int]:
    return _assignments(text, int, "--source_history_days", "SOURCE=DAYS, e.g. ad=3")


def parse_args(argv: Sequence[str]) -> TrainConfig:
    p = CommandParser("podtarget.model.train", __doc__)  # whole flag names only; a bad one is one line
    d = TrainConfig(examples="")
    p.add_argument("--examples", default="./data/examples", help="Example table root (local or gs://).")
    p.add_argument("--out", default=d.out, help="Folder of model runs.")
    p.add_argument("--run", default=d.run, help="Run name (default: run-<UTC time>).")
    p.add_argument("--spec", default=d.spec, help="Spec file (.toml or .json).")
    p.add_argument("--train_days", help="e.g. 2026-03-02..2026-03-07 or a comma list")
    p.add_argument("--valid_days")
    p.add_argument("--test_days")
    p.add_argument("--split", default="0.7,0.15,0.15", help="Fractions of the labelled days (train,valid,test).")
    p.add_argument(
        "--epochs", type=int, default=d.epochs, help="Most epochs (the defaults suit millions of rows: see above)."
    )
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="Rows per step (aim at 100+ steps an epoch).")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument(
        "--lr_schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help="constant, or decayed to 0 by the last epoch (cosine, linear).",
    )
    p.add_argument("--warmup_steps", type=int, default=d.warmup_steps, help="Steps of a linear rise of the rate.")
    p.add_argument("--embedding_lr", type=float, default=None, help="SparseAdam rate (default: --lr).")
    p.add_argument(
        "--weight_decay", type=float, default=d.weight_decay, help="AdamW's decoupled decay of the dense weights."
    )
    p.add_argument(
        "--embedding_weight_decay",
        type=float,
        default=d.embedding_weight_decay,
        help="Decoupled decay of the embedding rows each step touches.",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="Epochs without a better validation score ([evaluation] selection_metric of the spec, AP by default).",
    )
    p.add_argument("--resume", action="store_true", help="Continue from <out>/<run>/checkpoints/last.pt.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run.")
    p.add_argument("--tasks", help="Comma list of tasks to train (default: all in the spec).")
    p.add_argument("--sources", help="Comma list of sources whose rows train (default: all).")
    p.add_argument("--disable_groups", help="Comma list of feature groups to switch off.")
    p.add_argument("--no_directional_mask", action="store_true", help="Every source trains every task.")
    p.add_argument("--source_ratio", type=float, default=0.5, help="Share of the spec's second source per batch.")
    p.add_argument("--no_source_balance", action="store_true", help="Natural mix instead of balanced batches.")
    p.add_argument(
        "--max_source_repeats",
        type=float,
        default=d.max_source_repeats,
        help="Most draws per epoch of a row of the up-sampled source, on average (>= 1; 1 = the natural mix).",
    )
    p.add_argument("--no_repeat_cap", action="store_true", help="Balanced batches however often rows repeat.")
    p.add_argument(
        "--source_history_days",
        default="",
        help="SOURCE=N,...: train those sources on their last N training days only (e.g. ad=1: ad cold start).",
    )
    p.add_argument("--architecture", choices=ARCHITECTURES)
    p.add_argument("--loss_weighting", default=d.loss_weighting, choices=WEIGHTINGS)
    p.add_argument("--task_weights", default="", help="Fixed weights, e.g. Click=0.5,Like=2 (default 1).")
    p.add_argument(
        "--prior_init", action="store_true", help="Start fresh heads at their task's training positive rate."
    )
    p.add_argument("--init_from", help="Start from a trained run (transfer).")
    p.add_argument("--add_task", action="append", default=[], help="NAME:label_column:source, a new head.")
    p.add_argument("--freeze_encoder", action="store_true", help="Train only the heads (new heads, if any).")
    p.add_argument("--apply_head", action="append", default=[], help="NEW=EXISTING: serve NEW with a copied head.")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: every core; the reader thread mostly waits on I/O and numpy).",
    )
    p.add_argument("--max_batches_per_epoch", type=int, default=None)
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="A progress bar per epoch on stderr (default: only when stderr is a terminal).",
    )
    a = p.parse_args(argv)
    try:
        fractions = tuple(float(x) for x in a.split.split(","))
    except ValueError:
        p.error(f"--split {a.split!r}: expected three comma-separated fractions")
    converted = {
        "split": fractions,
        "tasks": _csv(a.tasks),
        "sources": _csv(a.sources),
        "disable_groups": _csv(a.disable_groups),
        "directional_mask": not a.no_directional_mask,
        "source_ratio": None if a.no_source_balance else a.source_ratio,
        "task_weights": _weights(a.task_weights),
        "source_history_days": _history(a.source_history_days),
        "max_source_repeats": None if a.no_repeat_cap else a.max_source_repeats,
    }
    # Flags given on the command line win over the spec's [training] (whole names only, so a prefix cannot match).
    args = list(argv)
    converted["given"] = tuple(k for k in TRAINING_KEYS if any(x == f"--{k}" or x.startswith(f"--{k}=") for x in args))
    same = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(a, f.name)}
    return TrainConfig(**{**same, **converted})


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)

    def run() -> int:
        config = parse_args(sys.argv[1:] if argv is None else argv)  # inside: a bad value is a one-line error too
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

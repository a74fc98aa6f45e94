"""What a run opens before it trains: its name and folder (refused if it exists, unless resumed or overwritten),
the model it starts from (``--init_from``), its spec and the heads that train, the example table, the label
catalog, the split of the days, and the fingerprint a checkpoint must match to be resumed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Sequence

import pyarrow as pa
import torch

from ..common.cloud import require_credentials
from ..common.days import parse_days
from . import artifacts
from .artifacts import ArtifactError, TrainedModel, join, load_model
from .data.labels import immature_labels, label_catalog, usable_days
from .data.splits import DaySplit, split_days
from .data.tables import ExampleTable
from .spec import Spec, load_spec
from .spec_types import SpecError, TaskSpec
from .train_config import TrainConfig
from .validation import selection

log = logging.getLogger("podtarget.model.train")


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


def config_fingerprint(config: TrainConfig, spec: Spec, split: dict) -> dict:
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


@dataclasses.dataclass
class TrainingRun:
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


def open_run(config: TrainConfig) -> TrainingRun:
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
    return TrainingRun(
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

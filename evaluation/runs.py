"""The evaluation's training runs: the split every run shares (the trainer's, explicit days, or the mature split),
and one run per configuration x seed through :func:`podtarget.model.train.train`, cached: each run folder is keyed by
its training configuration and a fingerprint of the example table, so a rerun only trains what changed."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Mapping, Sequence

from ..model import artifacts
from ..model.train import TrainConfig, train
from ..schemas import layout
from ..transforms.runtime.storage import list_files, read_bytes
from .ablations_config import EvaluateConfig
from .setups import Setup

# ------------------------------------------------------------------------------------------ split


def _span(days: Sequence[datetime.date]) -> str:
    """Days as the trainer reads them: ``first..last`` when consecutive, else a comma list ("" for none)."""
    if not days:
        return ""
    consecutive = all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))
    if consecutive and len(days) > 1:
        return f"{days[0].isoformat()}..{days[-1].isoformat()}"
    return ",".join(d.isoformat() for d in days)


def mature_split(examples: str, valid_count: int, test_count: int) -> dict[str, str | None]:
    """Train/valid/test days (as trainer arguments) where every label of the test and validation days is mature:
    the last ``test_count`` days of the table whose ``_SUCCESS.json`` says ``labels_mature``, the
    ``valid_count`` mature days before them, and every earlier mature day for training."""
    mature: list[datetime.date] = []
    immature: list[datetime.date] = []
    for path in sorted(list_files(layout.join(examples, "dt=*", layout.SUCCESS_MARKER))):
        day = datetime.date.fromisoformat(path.rsplit("/", 2)[-2].removeprefix("dt="))
        (mature if json.loads(read_bytes(path)).get("labels_mature") else immature).append(day)
    need = test_count + valid_count + 1
    if len(mature) < need:
        raise ValueError(
            f"split 'mature' needs {need} days with mature labels under {examples} ({test_count} test, "
            f"{valid_count} validation, at least one for training); found {len(mature)}"
            + (f" (immature: {', '.join(d.isoformat() for d in immature)})" if immature else "")
            + ". Simulate more days past the test days, or lower test_count/valid_count"
        )
    test, valid = mature[-test_count:], mature[len(mature) - test_count - valid_count : len(mature) - test_count]
    train = mature[: len(mature) - test_count - valid_count]
    return {"train_days": _span(train), "valid_days": _span(valid), "test_days": _span(test)}


def resolve_days(config: EvaluateConfig) -> dict[str, str | None]:
    """The trainer's day arguments for every run of this evaluation."""
    if config.split == "mature":
        return mature_split(config.examples, config.valid_count, config.test_count)
    return {"train_days": config.train_days, "valid_days": config.valid_days, "test_days": config.test_days}


# ------------------------------------------------------------------------------------------ cached runs


LATER_SETTINGS = {"lr_schedule": "constant", "warmup_steps": 0, "given": ()}


def _key(train_config: TrainConfig, table: str) -> str:
    fields = dataclasses.asdict(train_config)
    for volatile in ("out", "run", "overwrite", "resume", "progress", "threads"):
        fields.pop(volatile)
    # Settings added to TrainConfig after runs were cached join the key only when set, so those runs stay cached.
    for later, default in LATER_SETTINGS.items():
        if fields.get(later) == default:
            fields.pop(later)
    # The same table under another spelling of its path (./data/examples, data/examples) is the same table: its
    # content is in ``table``.
    fields.pop("examples")
    return hashlib.sha256(json.dumps({"config": fields, "table": table}, sort_keys=True).encode()).hexdigest()[:16]


def train_cached(train_config: TrainConfig, table: str, reuse: bool) -> tuple[dict, float, bool]:
    """Train (or reuse) one run; returns (its metrics.json, seconds it took when trained, reused?)."""
    run_dir = artifacts.join(train_config.out, train_config.run)
    marker = artifacts.join(train_config.out, "_evaluation", f"{train_config.run}.json")
    key = _key(train_config, table)
    if reuse and artifacts.exists(marker) and artifacts.exists(artifacts.join(run_dir, "manifest.json")):
        cached = json.loads(artifacts.read_bytes(marker))
        if cached.get("key") == key:
            metrics = json.loads(artifacts.read_bytes(artifacts.join(run_dir, "metrics.json")))
            return metrics, float(cached["seconds"]), True
    started = time.perf_counter()
    result = train(dataclasses.replace(train_config, overwrite=True))
    seconds = round(time.perf_counter() - started, 2)
    artifacts.write_bytes(marker, artifacts.dumps({"key": key, "seconds": seconds, "run_dir": result.run_dir}))
    return result.metrics, seconds, False


def run_name(setup: str, seed: int) -> str:
    return f"{setup}-s{seed}"


def train_config(config: EvaluateConfig, setup: Setup, seed: int, days: Mapping[str, str | None]) -> TrainConfig:
    """The training run of one configuration and seed (its cache key is this, plus the table's fingerprint)."""
    base = TrainConfig(
        examples=config.examples,
        out=config.models,
        run=run_name(setup.name, seed),
        spec=config.spec,
        epochs=config.epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        max_batches_per_epoch=config.max_batches_per_epoch,
        threads=config.threads,
        progress=False,
        train_days=days.get("train_days"),
        valid_days=days.get("valid_days"),
        test_days=days.get("test_days"),
    )
    return dataclasses.replace(base, **setup.changes)


def run_setup(config: EvaluateConfig, setup: Setup, seed: int, table: str, days: Mapping[str, str | None]) -> dict:
    """Train (or reuse) one configuration with one seed; what the report needs of the run besides its scores."""
    trained = train_config(config, setup, seed, days)
    metrics, seconds, reused = train_cached(trained, table, config.reuse)
    return {
        "setup": setup.name,
        "seed": seed,
        "run": trained.run,
        "path": artifacts.join(config.models, trained.run),
        "seconds": seconds,
        "reused": reused,
        "best_epoch": metrics.get("best_epoch"),
        "split": metrics["split"],
    }

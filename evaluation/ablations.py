"""Offline ablations (``make evaluate``): the paper's Table 1 and our own ablations, over several seeds.

Every configuration is trained with the project's own training API (:func:`model.train.train`) on the same example
table and the same temporal split, once per seed, and measured on the test days with :mod:`model.metrics` (AP of
PromotionStream on promotion impressions, of AdStream on ad impressions, overall and by podcast popularity tier).
A configuration without one of the two stream heads is measured the way the paper measures its promotions-only
baseline on ads: its existing head is applied, as is, to the other channel (``--apply_head``, no training).

Configurations (``SETUPS``; each figure is relative to ``baseline`` trained with the same seed):

- ``baseline``: the promotions-only multi-head model (promotion rows; PromotionStream, Click, Like, Follow).
- ``promo_stream_only``, ``ads_stream_only``, ``ads_stream_anc``, ``joint``: the other rows of Table 1.
- ``no_mask``, ``no_balance``, ``no_<group>`` (one per feature group of the spec), ``mmoe``: the joint model with
  one thing changed.

Runs are cached: each run folder is keyed by its training configuration and a fingerprint of the example table,
so a rerun (``--reuse``, the default) only trains what changed, and ``make report`` never retrains::

    python -m evaluation.ablations --examples=./data/examples --models=models/eval-demo --out=reports/eval \\
        --seeds=1,2,3 [--setups=baseline,joint] [--epochs=4] [--no-reuse]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.outputs import DEFAULT_OUT, check_same_run, report_identity, world_beside
from model import artifacts
from model.artifacts import load_model
from model.metrics import binary_metrics
from model.spec import DEFAULT_SPEC, load_spec
from model.train import TrainConfig, train
from schemas import layout
from transforms.storage import list_files, read_bytes, read_parquet

log = logging.getLogger(__name__)

PROMO_TASK, AD_TASK = "PromotionStream", "AdStream"
ANCILLARY = ("Click", "Like", "Follow")


@dataclasses.dataclass(frozen=True)
class Setup:
    """One configuration: the :class:`TrainConfig` fields it changes, and which head serves the missing channel."""

    name: str
    label: str
    changes: dict[str, Any]
    # NEW=EXISTING, applied to the trained run to measure the channel it has no head for (None: it has both).
    apply_head: str | None = None
    # Table 1's figures (Promotions AP, Ads AP, % relative to the baseline), where the paper has the row.
    paper: tuple[float, float] | None = None


PAPER_SETUPS = ("baseline", "promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint")


def all_setups(spec_path: str = str(DEFAULT_SPEC)) -> dict[str, Setup]:
    """Every configuration, in report order; one ``no_<group>`` per feature group of the spec."""
    setups = [
        Setup(
            "baseline",
            "Promotions-only baseline (multi-head)",
            {"sources": ["promo"], "tasks": [PROMO_TASK, *ANCILLARY]},
            f"{AD_TASK}={PROMO_TASK}",
        ),
        Setup(
            "promo_stream_only",
            "Promo stream head only",
            {"sources": ["promo"], "tasks": [PROMO_TASK]},
            f"{AD_TASK}={PROMO_TASK}",
            (-7.9, -8.8),
        ),
        Setup(
            "ads_stream_only",
            "Ads stream head only",
            {"sources": ["ad"], "tasks": [AD_TASK]},
            f"{PROMO_TASK}={AD_TASK}",
            (-65.2, 27.0),
        ),
        # Like and Follow are promotion tasks in the spec, which the directional mask keeps away from ad rows; on
        # ad rows alone they would get no loss at all. Without promotion rows the mask has nothing to protect, so
        # it is off here: the ancillary heads learn from the ad impressions' own clicks, likes and follows.
        Setup(
            "ads_stream_anc",
            "Ads stream + ancillary heads (click, like, follow)",
            {"sources": ["ad"], "tasks": [AD_TASK, *ANCILLARY], "directional_mask": False},
            f"{PROMO_TASK}={AD_TASK}",
            (-64.8, 46.5),
        ),
        Setup("joint", "Promo + Ads 5-task joint model", {}, None, (4.5, 50.2)),
        Setup("no_mask", "Joint, directional masking off", {"directional_mask": False}),
        Setup("no_balance", "Joint, source-balanced sampling off", {"source_ratio": None}),
    ]
    for group in load_spec(spec_path).groups:
        setups.append(Setup(f"no_{group}", f"Joint, without the {group} features", {"disable_groups": [group]}))
    setups.append(Setup("mmoe", "Joint, MMoE instead of shared bottom", {"architecture": "mmoe"}))
    return {s.name: s for s in setups}


@dataclasses.dataclass
class EvaluateConfig:
    """What ``make evaluate`` runs. Defaults are the full evaluation on the demo world."""

    examples: str
    models: str = "models/eval-demo"
    out: str = DEFAULT_OUT  # the committed record, reports/eval, only when asked for by name
    seeds: tuple[int, ...] = (1, 2, 3)
    setups: tuple[str, ...] | None = None  # None: every configuration
    spec: str = str(DEFAULT_SPEC)
    epochs: int = 10
    patience: int = 1
    batch_size: int = 8192
    lr: float = 2e-3
    train_days: str | None = None
    valid_days: str | None = None
    test_days: str | None = None
    max_batches_per_epoch: int | None = None
    threads: int | None = None
    reuse: bool = True
    calibration_bins: int = 10

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, at least one; got {list(self.seeds)}")
        known = all_setups(self.spec)
        if self.setups is not None:
            self.setups = tuple(self.setups)
            unknown = [s for s in self.setups if s not in known]
            if unknown or not self.setups:
                raise ValueError(f"setups: unknown {unknown or 'none given'}; expected some of {', '.join(known)}")
            if "baseline" not in self.setups:
                raise ValueError("setups must include 'baseline': every figure is relative to it")
        for name in ("epochs", "patience", "batch_size", "calibration_bins"):
            value = getattr(self, name)
            minimum = 0 if name == "patience" else 1
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if not self.examples:
            raise ValueError("examples: the example table root is required, e.g. ./data/examples")

    @property
    def chosen(self) -> list[Setup]:
        known = all_setups(self.spec)
        return [known[n] for n in (self.setups or known)]


# ------------------------------------------------------------------------------------------ cached runs


def table_fingerprint(examples: str) -> str:
    """A hash of every day's ``_SUCCESS.json`` (counts, settings, run): a rebuilt table gets a new one."""
    digest = hashlib.sha256()
    for path in sorted(list_files(layout.join(examples, "dt=*", "_SUCCESS.json"))):
        digest.update(path.rsplit("/", 2)[-2].encode())
        digest.update(read_bytes(path))
    return digest.hexdigest()[:16]


def _key(train_config: TrainConfig, table: str) -> str:
    fields = dataclasses.asdict(train_config)
    for volatile in ("out", "run", "overwrite", "resume", "progress", "threads"):
        fields.pop(volatile)
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


def _task_ap(metrics: dict, task: str) -> dict:
    """AP overall and by tier of ``task`` on the test split (None where undefined)."""
    report = metrics["test"][task]
    by_tier = {k: v.get("average_precision") for k, v in report.get("by_slice", {}).items()}
    overall = report["overall"]
    return {
        "ap": overall.get("average_precision"),
        "rows": overall["rows"],
        "positives": overall["positives"],
        "positive_rate": overall.get("positive_rate"),
        "calibration": overall.get("calibration"),
        "by_tier": by_tier,
        "rows_by_tier": {k: v["rows"] for k, v in report.get("by_slice", {}).items()},
        "positives_by_tier": {k: v["positives"] for k, v in report.get("by_slice", {}).items()},
    }


def run_setup(config: EvaluateConfig, setup: Setup, seed: int, table: str) -> dict:
    """Train one configuration with one seed (and apply its head to the other channel); its test figures."""
    base = TrainConfig(
        examples=config.examples,
        out=config.models,
        run=run_name(setup.name, seed),
        spec=config.spec,
        train_days=config.train_days,
        valid_days=config.valid_days,
        test_days=config.test_days,
        epochs=config.epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        max_batches_per_epoch=config.max_batches_per_epoch,
        threads=config.threads,
        progress=False,
    )
    trained = dataclasses.replace(base, **setup.changes)
    metrics, seconds, reused = train_cached(trained, table, config.reuse)
    record = {
        "setup": setup.name,
        "seed": seed,
        "run": trained.run,
        "seconds": seconds,
        "reused": reused,
        "best_epoch": metrics.get("best_epoch"),
        "split": metrics["split"],
    }
    per_task = {t: _task_ap(metrics, t) for t in (PROMO_TASK, AD_TASK) if t in metrics.get("test", {})}
    if setup.apply_head:
        # The same split as the trained run, so both channels are measured on the same days.
        split = metrics["split"]
        applied = dataclasses.replace(
            base,
            run=f"{trained.run}-applied",
            init_from=artifacts.join(config.models, trained.run),
            apply_head=[setup.apply_head],
            train_days=",".join(split["train"]),
            valid_days=",".join(split["valid"]),
            test_days=",".join(split["test"]),
            seed=seed,
        )
        applied_metrics, applied_seconds, applied_reused = train_cached(applied, table, config.reuse)
        new = setup.apply_head.split("=")[0]
        per_task[new] = _task_ap(applied_metrics, new)
        record.update(applied_run=applied.run, applied_seconds=applied_seconds, applied_reused=applied_reused)
    record["promotions"] = per_task[PROMO_TASK]
    record["ads"] = per_task[AD_TASK]
    return record


# ------------------------------------------------------------------------------------------ summaries


def spread(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation, min and max of the defined values (n says how many there were)."""
    xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if xs.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(xs.mean()),
        "std": float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
        "min": float(xs.min()),
        "max": float(xs.max()),
        "n": int(xs.size),
    }


def _relative(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return 100.0 * (value / base - 1.0)


def summarize(records: list[dict], setups: list[Setup]) -> dict:
    """Per configuration: AP (absolute, and % relative to the same seed's baseline), overall and by tier."""
    baseline = {r["seed"]: r for r in records if r["setup"] == "baseline"}
    out = {}
    for setup in setups:
        runs = [r for r in records if r["setup"] == setup.name]
        entry: dict[str, Any] = {
            "label": setup.label,
            "changes": setup.changes,
            "apply_head": setup.apply_head,
            "paper": {"promotions": setup.paper[0], "ads": setup.paper[1]} if setup.paper else None,
            "seeds": [r["seed"] for r in runs],
            "seconds": round(sum(r["seconds"] + r.get("applied_seconds", 0.0) for r in runs), 2),
            "best_epochs": [r["best_epoch"] for r in runs],
        }
        for channel in ("promotions", "ads"):
            aps = [r[channel]["ap"] for r in runs]
            rel = [_relative(r[channel]["ap"], baseline[r["seed"]][channel]["ap"]) for r in runs]
            tiers = sorted({t for r in runs for t in r[channel]["by_tier"]}, key=int)
            entry[channel] = {
                "ap": spread(aps),
                "relative_pct": spread(rel),
                "ap_by_tier": {t: spread([r[channel]["by_tier"].get(t) for r in runs]) for t in tiers},
                "relative_pct_by_tier": {
                    t: spread(
                        [
                            _relative(r[channel]["by_tier"].get(t), baseline[r["seed"]][channel]["by_tier"].get(t))
                            for r in runs
                        ]
                    )
                    for t in tiers
                },
                "rows_by_tier": runs[0][channel]["rows_by_tier"] if runs else {},
                "positives_by_tier": runs[0][channel]["positives_by_tier"] if runs else {},
                "positive_rate": runs[0][channel]["positive_rate"] if runs else None,
                "rows": runs[0][channel]["rows"] if runs else None,
            }
        out[setup.name] = entry
    return out


def calibration_curves(config: EvaluateConfig, seed: int, split: dict) -> dict:
    """Reliability curves on the test days (equal-count bins of the prediction) of the baseline and the joint
    model, for ads (the head that serves ad campaigns) and promotions, from each model's own scores."""
    days = split["test"]
    table = read_parquet(
        layout.join(config.examples, "dt={" + ",".join(days) + "}", "part-*.parquet")
        if len(days) > 1
        else layout.join(config.examples, f"dt={days[0]}", "part-*.parquet")
    )
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    label = table.column("label_stream").to_numpy(zero_copy_only=False)
    curves: dict[str, Any] = {}
    for setup in ("baseline", "joint"):
        path = artifacts.join(config.models, run_name(setup, seed))
        if not artifacts.exists(artifacts.join(path, "manifest.json")):
            continue
        model = load_model(path)
        heads = {"ads": AD_TASK if AD_TASK in model.tasks else PROMO_TASK, "promotions": PROMO_TASK}
        scores = {h: [] for h in set(heads.values())}
        for start in range(0, table.num_rows, 8192):
            chunk = model.score(table.slice(start, 8192), sorted(scores))
            for h in scores:
                scores[h].append(chunk[h])
        joined = {h: np.concatenate(v) for h, v in scores.items()}
        curves[setup] = {}
        for channel, src in (("ads", "ad"), ("promotions", "promo")):
            rows = (source == src) & ~np.isnan(label.astype(float))
            y, p = label[rows].astype(float), joined[heads[channel]][rows].astype(float)
            curves[setup][channel] = {"head": heads[channel], **reliability(y, p, config.calibration_bins)}
    return {"seed": seed, "test_days": days, "curves": curves}


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> dict:
    """Equal-count bins of ``p``: mean prediction, observed rate and rows per bin, plus the overall metrics."""
    order = np.argsort(p, kind="stable")
    parts = [part for part in np.array_split(order, bins) if part.size]
    return {
        "mean_prediction": [float(p[i].mean()) for i in parts],
        "observed_rate": [float(y[i].mean()) for i in parts],
        "rows": [int(i.size) for i in parts],
        "overall": binary_metrics(y, p),
    }


# ------------------------------------------------------------------------------------------ driver


def run_ablations(config: EvaluateConfig) -> dict:
    """Train every configuration x seed (reusing cached runs), write ``<out>/ablations.json``; returns it."""
    started = time.perf_counter()
    identity = report_identity(config.examples, world_beside(config.examples))
    check_same_run(config.out, "ablations.json", identity)
    table = identity["examples_fingerprint"]
    records = []
    for setup in config.chosen:
        for seed in config.seeds:
            t0 = time.perf_counter()
            record = run_setup(config, setup, seed, table)
            record["wall_seconds"] = round(time.perf_counter() - t0, 2)
            log.info(
                "%s seed %d: promotions AP %s, ads AP %s (%s s%s)",
                setup.name,
                seed,
                _fmt(record["promotions"]["ap"]),
                _fmt(record["ads"]["ap"]),
                record["seconds"],
                ", reused" if record["reused"] else "",
            )
            records.append(record)
    t0 = time.perf_counter()
    calibration = calibration_curves(config, config.seeds[0], records[0]["split"])
    calibration_seconds = round(time.perf_counter() - t0, 2)
    result = {
        "config": {k: v for k, v in dataclasses.asdict(config).items()},
        "table_fingerprint": table,
        "report_identity": identity,
        "split": records[0]["split"],
        "setups": summarize(records, config.chosen),
        "runs": records,
        "calibration": calibration,
        "timing": {
            "wall_seconds": round(time.perf_counter() - started, 2),
            "training_seconds": round(sum(r["seconds"] + r.get("applied_seconds", 0.0) for r in records), 2),
            "calibration_seconds": calibration_seconds,
            "runs_trained": sum(not r["reused"] for r in records),
            "runs_reused": sum(r["reused"] for r in records),
        },
    }
    artifacts.write_bytes(artifacts.join(config.out, "ablations.json"), artifacts.dumps(result))
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def parse_args(argv: Sequence[str]) -> tuple[EvaluateConfig, argparse.Namespace]:
    """The run's configuration, and the CLI-only switches (``report``, ``world``) that are not part of it."""
    d = EvaluateConfig(examples="x")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", default="./data/examples", help="Example table root.")
    p.add_argument("--models", default=d.models, help="Folder of the evaluation's model runs (cached).")
    p.add_argument("--out", default=d.out, help="Report folder: ablations.json, report.md, plots.")
    p.add_argument("--seeds", type=_ints, default=d.seeds, help="Comma list of training seeds.")
    p.add_argument("--setups", default="", help=f"Comma list (default: all): {', '.join(all_setups())}.")
    p.add_argument("--spec", default=d.spec)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--train_days")
    p.add_argument("--valid_days")
    p.add_argument("--test_days")
    p.add_argument("--max_batches_per_epoch", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every core).")
    p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True, help="Reuse cached runs.")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True, help="Rewrite the report.")
    p.add_argument("--world", default=None, help="World folder recorded in the report (default: beside examples).")
    a = p.parse_args(argv)
    setups = tuple(s.strip() for s in a.setups.split(",") if s.strip()) or None
    fields = {f.name for f in dataclasses.fields(EvaluateConfig)}
    values = {k: v for k, v in vars(a).items() if k in fields}
    a.world = a.world or world_beside(a.examples)
    return EvaluateConfig(**{**values, "setups": setups}), a


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_ablations(config)
    print(format_summary(result))
    if cli.report:
        from evaluation.report import write_report

        print(f"report written to {write_report(config.out, world_dir=cli.world)}")
    return 0


def format_summary(result: dict) -> str:
    """The ablation table as text: mean ± std (over seeds) of the % change against the baseline."""
    lines = [f"{'setup':<22} {'promotions AP %':>18} {'ads AP %':>18} {'paper':>16}"]
    for name, s in result["setups"].items():
        p, a = s["promotions"]["relative_pct"], s["ads"]["relative_pct"]
        paper = f"{s['paper']['promotions']:+.1f} / {s['paper']['ads']:+.1f}" if s["paper"] else ""
        lines.append(f"{name:<22} {_pm(p):>18} {_pm(a):>18} {paper:>16}")
    t = result["timing"]
    lines.append(f"wall {t['wall_seconds']} s; trained {t['runs_trained']} runs, reused {t['runs_reused']}")
    return "\n".join(lines)


def _pm(s: dict) -> str:
    return "-" if s["mean"] is None else f"{s['mean']:+.1f} ± {s['std']:.1f}"


if __name__ == "__main__":
    sys.exit(main())

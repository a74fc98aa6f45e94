"""The trainer on a tabular table against a per-task LightGBM: test AUC of each task on the same split.

    python -m benchmarks.tabular [--out=reports/local/bench] [--data=./data-tabular] [--seeds=1,2,3]
        [--configs=documented,no_buckets,defaults] [--threads=2]    (make bench-tabular)

Generates the tabular table (``podtarget.simulator.tabular``: 60k training, 20k validation and 20k test rows, a
day each) unless ``--data`` holds it, then, per seed:

- **LightGBM**, tuned: one model per task, trained on the training day and early-stopped on the validation day's
  AUC (learning rate 0.05, up to 5000 rounds, stopping after 100 without a gain), the categorical columns declared
  categorical, for each of ``LGBM_LEAVES`` leaves per tree; the one with the best validation AUC is tested. Its
  other settings (``LGBM_PARAMS``) were the best of a grid of 64 (leaves, minimum rows per leaf, L2, categorical
  smoothing) on seed 1's validation day for Click (for Purchase, the same but a smoothing of 50, within 0.0001):
  the yardstick of tabular data;
- **the trainer**, in each configuration: ``documented``, the spec ``model/specs/tabular.toml`` as it is (its
  ``[training]`` table is the best configuration docs/spec.md documents); ``no_buckets``, the same without the
  numerics' quantile buckets, clipping and the float-coded id (what the numeric options buy); ``defaults``, the
  same spec without its ``[training]`` table, i.e. the trainer's defaults for the podcast table's millions of rows;
- **the ceiling**: the test AUC of the table's true probabilities (the generator's), which no model can beat.

It writes ``<out>/tabular.json``: each model's test AUC per task and seed, their means, the gap of each trainer
configuration to LightGBM, and ``targets_met``: whether the documented configuration's mean AUC is within
``TARGET_GAP`` (0.002) of LightGBM's on every task. LightGBM is a dev dependency only (``pip install -e .[dev]``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import pyarrow.parquet as pq

from benchmarks.harness import write_report
from podtarget.common.cli import CommandParser, run_cli
from podtarget.model.spec import Spec, load_spec
from podtarget.model.spec_types import DEFAULT_SPEC
from podtarget.model.train import TrainConfig, train
from podtarget.simulator.tabular import CATEGORICAL, FLOAT_CODED, TabularConfig, generate_days, write_tabular

SPEC = DEFAULT_SPEC.with_name("tabular.toml")
TARGET_GAP = 0.002
CONFIGS = ("documented", "no_buckets", "defaults")
LABELS = {"Click": "click", "Purchase": "purchase"}
LGBM_PARAMS = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.05,
    "min_data_in_leaf": 100,
    "lambda_l2": 10.0,
    "cat_smooth": 10.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "verbose": -1,
}
# Small trees win on a table whose effects are mostly additive (the generated one); large ones where they interact.
LGBM_LEAVES = (2, 3, 7, 15, 31, 63)


def split_days(data: pathlib.Path) -> dict[str, str]:
    """The table's days in time order: training, validation, test (one each, as the generator writes them)."""
    days = sorted(p.name[3:] for p in data.glob("dt=*"))
    if len(days) != 3:
        raise ValueError(f"{data}: expected the three days of the tabular table, found {days or 'none'}")
    return dict(zip(("train", "valid", "test"), days, strict=True))


def variant(spec: Spec, config: str) -> Spec:
    """The spec of one trainer configuration (see the module docstring)."""
    raw = spec.to_dict()
    if config == "defaults":
        raw.pop("training", None)
    elif config == "no_buckets":
        for group in raw["groups"].values():
            for options in group.get("numeric", {}).values():
                for key in ("buckets", "clip", "embedding_dim"):
                    options.pop(key, None)
            categorical = group.get("categorical", {})
            if FLOAT_CODED in categorical:  # the float-coded id back as a plain numeric, as before floats = true
                del categorical[FLOAT_CODED]
                group.setdefault("numeric", {})[FLOAT_CODED] = {"missing": True}
    elif config != "documented":
        raise ValueError(f"unknown configuration {config!r}; expected some of {', '.join(CONFIGS)}")
    return Spec.from_dict(raw)


def lightgbm_auc(data: pathlib.Path, days: dict[str, str], seed: int, threads: int) -> dict[str, dict]:
    """Per task: test AUC of the LightGBM of ``LGBM_LEAVES`` with the best validation AUC, each trained on the
    training day and early-stopped on the validation day."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    frames = {k: pq.read_table(data / f"dt={d}").to_pandas() for k, d in days.items()}
    categorical = [*CATEGORICAL, FLOAT_CODED]
    for name in categorical:  # categories of the training day; values unseen there are missing
        known = frames["train"][name].dropna().unique()
        for frame in frames.values():
            frame[name] = frame[name].astype("category").cat.set_categories(known)
    features = [c for c in frames["train"].columns if c not in LABELS.values()]
    out = {}
    for task, label in LABELS.items():
        train_set = lgb.Dataset(frames["train"][features], frames["train"][label], categorical_feature=categorical)
        valid_set = lgb.Dataset(frames["valid"][features], frames["valid"][label], reference=train_set)
        started = time.perf_counter()
        candidates = []
        for leaves in LGBM_LEAVES:
            booster = lgb.train(
                {**LGBM_PARAMS, "num_leaves": leaves, "seed": seed, "num_threads": threads},
                train_set,
                num_boost_round=5000,
                valid_sets=[valid_set],
                callbacks=[lgb.early_stopping(100, verbose=False)],
            )
            candidates.append((booster.best_score["valid_0"]["auc"], leaves, booster))
        valid_auc, leaves, booster = max(candidates, key=lambda c: c[0])
        p = booster.predict(frames["test"][features], num_iteration=booster.best_iteration)
        out[task] = {
            "auc": float(roc_auc_score(frames["test"][label], p)),
            "valid_auc": round(float(valid_auc), 4),
            "leaves": leaves,
            "rounds": int(booster.best_iteration),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return out


def trainer_auc(
    data: pathlib.Path, days: dict[str, str], spec: Spec, seed: int, threads: int, out: pathlib.Path
) -> dict[str, dict]:
    """Per task: the trainer's test AUC with ``spec`` (its ``[training]`` settings included), and the run's facts."""
    spec_path = out / f"spec-{spec.fingerprint()}.json"
    spec.save(spec_path)
    config = TrainConfig(
        examples=str(data),
        out=str(out),
        run=f"run-{spec.fingerprint()}-{seed}",
        spec=str(spec_path),
        train_days=days["train"],
        valid_days=days["valid"],
        test_days=days["test"],
        seed=seed,
        threads=threads,
        overwrite=True,
        progress=False,
    )
    started = time.perf_counter()
    result = train(config)
    seconds = round(time.perf_counter() - started, 1)
    return {
        task: {
            "auc": result.metrics["test"][task]["overall"]["roc_auc"],
            "best_epoch": result.best_epoch,
            "epochs": len(result.history),
            "seconds": seconds,
        }
        for task in LABELS
    }


def summary(per_seed: dict[str, list[dict[str, dict]]]) -> dict:
    """Mean test AUC per model and task over the seeds, and each trainer configuration's gap to LightGBM."""
    means = {
        model: {task: float(np.mean([run[task]["auc"] for run in runs])) for task in LABELS}
        for model, runs in per_seed.items()
    }
    gaps = {
        model: {task: round(means["lightgbm"][task] - m[task], 4) for task in LABELS}
        for model, m in means.items()
        if model != "lightgbm"
    }
    documented = gaps.get("documented")
    return {
        "mean_auc": {m: {t: round(v, 4) for t, v in tasks.items()} for m, tasks in means.items()},
        "gap_to_lightgbm": gaps,
        "target_gap": TARGET_GAP,
        "targets_met": documented is not None and all(g <= TARGET_GAP for g in documented.values()),
    }


def ceiling_auc(data: pathlib.Path, days: dict[str, str]) -> dict[str, float] | None:
    """Test AUC per task of the table's true probabilities (``generate_days``): what no model of the table can
    beat. None when the test day in ``data`` is not the one the default configuration generates."""
    from sklearn.metrics import roc_auc_score

    test = pq.read_table(data / f"dt={days['test']}")
    for day, table, truth in generate_days(TabularConfig()):
        # Every column but the float-coded one, whose NaNs never compare equal.
        same = [c for c in table.column_names if c != FLOAT_CODED]
        if day.isoformat() == days["test"] and table.select(same).equals(test.select(same)):
            return {
                task: round(float(roc_auc_score(test[label].to_numpy(), truth[label])), 4)
                for task, label in LABELS.items()
            }
    return None


def run(data: pathlib.Path, seeds: Sequence[int], configs: Sequence[str], threads: int) -> dict:
    if not any(data.glob("dt=*")):
        write_tabular(TabularConfig(), data)
    days = split_days(data)
    spec = load_spec(SPEC)
    per_seed: dict[str, list[dict[str, dict]]] = {"lightgbm": [], **{c: [] for c in configs}}
    with tempfile.TemporaryDirectory(prefix="tabular-bench-") as tmp:
        for seed in seeds:
            per_seed["lightgbm"].append(lightgbm_auc(data, days, seed, threads))
            for config in configs:
                runs = trainer_auc(data, days, variant(spec, config), seed, threads, pathlib.Path(tmp))
                per_seed[config].append(runs)
            aucs = {m: {t: round(r[-1][t]["auc"], 4) for t in LABELS} for m, r in per_seed.items()}
            print(f"seed {seed}: {json.dumps(aucs)}", flush=True)
    return {
        "table": {"data": str(data), "days": days, "rows": dataclasses.asdict(TabularConfig())},
        "spec": str(SPEC.relative_to(SPEC.parents[2])),
        "training": dict(spec.training),
        "seeds": list(seeds),
        **summary(per_seed),
        "ceiling_auc": ceiling_auc(data, days),
        "per_seed": per_seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("benchmarks.tabular", __doc__)
    parser.add_argument("--out", default="reports/local/bench", help="Folder of the JSON report (tabular.json).")
    parser.add_argument("--data", default="./data-tabular", help="The tabular table (generated when empty).")
    parser.add_argument("--seeds", default="1,2,3", help="Comma list of seeds.")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"Comma list of: {', '.join(CONFIGS)}.")
    parser.add_argument("--threads", type=int, default=2, help="torch and LightGBM threads.")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown configuration(s) {unknown}; expected some of {', '.join(CONFIGS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected a comma list of integers")
    figures = run(pathlib.Path(args.data), seeds, configs, args.threads)
    path = write_report(args.out, "tabular", figures)
    print(json.dumps({k: figures[k] for k in ("mean_auc", "gap_to_lightgbm", "ceiling_auc", "targets_met")}, indent=2))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))

"""The cold-start sweep (``make coldstart``): Ads AP against the ad history the models train on, in two worlds.

The paper's claim is about ads that lack data; the eval world logs half as many ad impressions as promotion
impressions over 16 training days, so its ablations are not cold start for ads. This sweep cuts the ad rows the
models train on to the last ``history`` training days (``--source_history_days=ad=N``; promotion rows always
complete, validation and test days whole) and measures on the same test days:

- ``baseline``: the promotions-only model, its PromotionStream head scoring ads (Figure 2A; it never sees ad
  rows, so it is trained once per seed and world);
- ``ads_stream_only``, ``ads_stream_anc``: the ads-only models of Table 1, on the cut ad history;
- ``joint``: the 5-task joint model on the cut ad history and every promotion row, its AdStream head;
- ``joint_promo_head``: the same joint run's PromotionStream head applied to ads, as is.

Every point is trained with every seed (``--seeds``, at least 3), and figures are the seed-mean Ads AP with a
percentile interval from a bootstrap that resamples the test impressions (Poisson weights, paired: every model on
the same rows) and the seeds, as in ``make evaluate`` (``evaluation/intervals.py``); the changes against the
baseline and between setups are paired the same way. The world's ground truth and a constant score the same rows
as yardsticks.

**Two worlds.** The world parameter ``ad_promo_responsiveness_correlation`` (``simulator/config.py``) says how
strongly a user's ad responsiveness follows their promotion responsiveness: at 0 (the eval world) promotions
cannot teach it; at the second value they can. Each ``--worlds`` entry is ``CORRELATION:DATA_ROOT``; a root
without that world is simulated (the ``--preset``, with that correlation) and its features and examples of the
training, validation and test days are built first, with the Beam options given after the flags (default: the
in-process runner). Values are fixed before a run and not tuned to the paper.

**Cost.** 2 worlds x (3 baselines + 3 setups x 4 histories x 3 seeds) = 78 runs, which must fit the hour on 2
cores with the second world's simulation. So the recipe is smaller than the ablations': up to ``--epochs`` 4 of at
most ``--max_batches_per_epoch`` 25 batches of 8,192 rows (early stopping, patience 1), and one validation day
(``--valid_count``; per-epoch validation was half of a run's time with two). A run then costs about the same at
every history (the joint model's epochs are paced by the promotion rows; an ads-only run reads only its days).
Runs are cached under ``--models`` exactly as the ablations' (keyed by configuration and example table), so a
rerun trains nothing.

::

    python -m podtarget.evaluation.coldstart --worlds=0:/data/eval,0.8:/data/eval-rho0.8 --models=models/coldstart \\
        --out=reports/eval [--seeds=1,2,3] [--history=1,3,7,all] [--setups=baseline,ads_stream_only,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..common.checks import check_number, invalid
from ..common.cli import CommandParser, configure_logging, warn_if_threads_spin
from ..common.days import parse_days
from ..common.options import add_options, check_options, comma_ints, comma_names, from_options, option
from ..model import artifacts
from ..model.artifacts import load_model
from ..model.spec_types import DEFAULT_SPEC
from ..model.train import TrainConfig
from ..schemas import layout
from ..simulator.config import WorldConfig
from ..transforms.runtime.storage import list_files
from . import intervals
from .ablations_config import EvaluateConfig
from .outputs import DEFAULT_OUT, check_same_run, report_identity, table_fingerprint, write_report_json
from .runs import mature_split, run_setup
from .scored_rows import load_world, read_days
from .setups import Setup, all_setups
from .truth import REFERENCES, reference_scores

log = logging.getLogger(__name__)

TRAINED = ("baseline", "ads_stream_only", "ads_stream_anc", "joint")
# Setup -> (the run it is scored from, the head that scores ads).
SCORED = {
    "baseline": ("baseline", "PromotionStream"),
    "ads_stream_only": ("ads_stream_only", "AdStream"),
    "ads_stream_anc": ("ads_stream_anc", "AdStream"),
    "joint": ("joint", "AdStream"),
    "joint_promo_head": ("joint", "PromotionStream"),
}
LABELS = {
    "baseline": "promotions-only baseline, PromotionStream head on ads",
    "ads_stream_only": "ads stream head only",
    "ads_stream_anc": "ads stream + ancillary heads",
    "joint": "joint model, AdStream head",
    "joint_promo_head": "joint model, its PromotionStream head on ads",
}
# The comparisons the report draws: (setup, versus).
COMPARISONS = (
    ("joint", "baseline"),
    ("joint", "joint_promo_head"),
    ("joint", "ads_stream_only"),
    ("joint", "ads_stream_anc"),
    ("ads_stream_only", "baseline"),
    ("ads_stream_anc", "baseline"),
    ("joint_promo_head", "baseline"),
)
ALL = 0  # --history=all: every training day


def _worlds(text: str) -> tuple[tuple[float, str], ...]:
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        value, sep, root = part.partition(":")
        try:
            out.append((float(value), root))
        except ValueError:
            sep = ""
        if not sep or not root:
            raise argparse.ArgumentTypeError(
                f"--worlds {part!r}: expected CORRELATION:DATA_ROOT, e.g. 0.8:./data-rho0.8"
            )
    return tuple(out)


def _history(text: str) -> tuple[int, ...]:
    try:
        return tuple(ALL if x.strip() == "all" else int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected days of ad history or 'all', e.g. 1,3,7,all; got {text!r}") from exc


@dataclasses.dataclass
class ColdstartConfig:
    """What ``make coldstart`` runs."""

    worlds: tuple[tuple[float, str], ...] = option(
        help="CORRELATION:DATA_ROOT,... one per world.", parse=_worlds
    )  # (correlation, data root), one per world
    models: str = option("models/coldstart", "Folder of the sweep's runs (cached).")
    out: str = option(DEFAULT_OUT, "Report folder: coldstart.json, report.md, the plot.")
    preset: str = option("eval", "World preset a missing world is simulated from.")
    seeds: tuple[int, ...] = option((1, 2, 3), "Comma list of training seeds (3 or more).", parse=comma_ints)
    history: tuple[int, ...] = option(
        (1, 3, 7, ALL), "Days of ad history, 'all' for every day.", parse=_history
    )  # 0 = all
    setups: tuple[str, ...] = option(tuple(SCORED), f"Some of {', '.join(SCORED)}.", parse=comma_names)
    spec: str = option(str(DEFAULT_SPEC), "Spec file of every run.", cli=False)
    epochs: int = option(4, "Most epochs of each run.", low=1)
    patience: int = option(1, "Epochs without a better validation score before a run stops.", low=0)
    batch_size: int = option(8192, "Rows per training step.", low=1)
    max_batches_per_epoch: int | None = option(25, "Stop each epoch after this many batches.", low=1)
    valid_count: int = option(1, "Validation days (the last mature days before the test days).", low=0)
    test_count: int = option(3, "Test days (the last mature days).", low=1)
    # Sampling of every run with both sources (None: no cap).
    max_source_repeats: float | None = option(
        TrainConfig(examples="").max_source_repeats,
        "Most draws per epoch of a row of the scarcer source, on average (as the trainer's).",
        low=1,
        none_flag="--no_repeat_cap",
        none_help="No cap on repeats of the scarcer source.",
    )
    threads: int | None = option(None, "torch threads (default: every core).", low=1)
    bootstrap: int = option(1000, "Bootstrap resamples.", low=100)
    confidence: float = option(0.95, "Level of the intervals.", low=0.5, below=1)
    bootstrap_seed: int = option(17, "Seed of the bootstrap.", low=0, cli=False)
    pipeline_args: tuple[str, ...] = option((), "Flags passed to the pipelines that build a missing world.", cli=False)

    def __post_init__(self) -> None:
        owner = "ColdstartConfig"
        self.worlds = tuple((float(c), str(r)) for c, r in self.worlds)
        self.seeds, self.history, self.setups = tuple(self.seeds), tuple(self.history), tuple(self.setups)
        if (
            not self.worlds
            or len({c for c, _ in self.worlds}) != len(self.worlds)
            or any(not r for _, r in self.worlds)
        ):
            raise invalid(owner, "worlds", "(correlation, data root) pairs with distinct correlations", self.worlds)
        for c, _ in self.worlds:
            check_number(owner, "worlds' correlation", c, low=-1, high=1)
        if len(self.seeds) < 3 or len(set(self.seeds)) != len(self.seeds):
            raise invalid(
                owner, "seeds", "at least 3 distinct seeds (each point is a seed mean with an interval)", self.seeds
            )
        if not self.history or any(not isinstance(h, int) or h < 0 for h in self.history):
            raise invalid(owner, "history", "days of ad history >= 1, or 0 for all of it", self.history)
        if not self.setups or any(s not in SCORED for s in self.setups) or "baseline" not in self.setups:
            raise invalid(owner, "setups", f"some of {list(SCORED)}, including 'baseline'", self.setups)
        check_options(self)

    def evaluate_config(self, root: str, tag: str) -> EvaluateConfig:
        """The ablations' configuration of one world's runs (their recipe, split and cache folder)."""
        return EvaluateConfig(
            examples=layout.join(root, "examples"),
            models=artifacts.join(self.models, tag),
            out=self.out,
            seeds=self.seeds,
            spec=self.spec,
            epochs=self.epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            split="mature",
            valid_count=self.valid_count,
            test_count=self.test_count,
            max_batches_per_epoch=self.max_batches_per_epoch,
            threads=self.threads,
            bootstrap=self.bootstrap,
            confidence=self.confidence,
            bootstrap_seed=self.bootstrap_seed,
        )


def history_label(days: int) -> str:
    return "all" if days == ALL else str(days)


def setup_at(setup: Setup, days: int, repeats: float | None) -> Setup:
    """``setup`` trained on the last ``days`` days of ad history (the baseline, which trains on no ad row, as it
    is), with the sweep's sampling."""
    if setup.name == "baseline":
        return setup
    changes = {**setup.changes, "max_source_repeats": repeats}
    if days != ALL:
        changes["source_history_days"] = {"ad": days}
    return dataclasses.replace(setup, name=f"{setup.name}-h{history_label(days)}", changes=changes)


# ------------------------------------------------------------------------------------------ worlds


def world_correlation(root: str) -> float | None:
    """The correlation of the world saved under ``root`` (None without one)."""
    path = layout.join(layout.world_dir(root), "config.json")
    if not artifacts.exists(path):
        return None
    return WorldConfig.from_json(artifacts.read_bytes(path).decode()).ground_truth.ad_promo_responsiveness_correlation


def ensure_world(config: ColdstartConfig, correlation: float, root: str) -> dict:
    """The world of ``correlation`` under ``root``, simulated and its examples built when missing; refuses a root
    holding a world of another correlation."""
    started = time.perf_counter()
    found = world_correlation(root)
    if found is not None and not math.isclose(found, correlation):
        raise ValueError(
            f"{root} holds a world with ad_promo_responsiveness_correlation={found}, not {correlation}: "
            "give another data root for this value, or remove that one"
        )
    beam = list(config.pipeline_args) or ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
    built = False
    if found is None:
        from ..pipelines import simulate_world

        log.info("simulating the %s world with correlation %s into %s", config.preset, correlation, root)
        simulate_world.run(
            [f"--data_root={root}", f"--world={config.preset}", f"--responsiveness_correlation={correlation}", *beam]
        )
        built = True
    examples = layout.join(root, "examples")
    if built or not list_files(layout.join(examples, "dt=*", layout.SUCCESS_MARKER)):
        from ..pipelines import backfill

        world = WorldConfig.from_json(artifacts.read_bytes(layout.join(layout.world_dir(root), "config.json")).decode())
        # The days whose labels (7-day windows, 2 days of logging lateness) are mature inside the simulated
        # period, as `make eval-world` builds them.
        last = world.days[-1 - 9]
        backfill.run([f"--data_root={root}", f"--start={world.start_date}", f"--end={last}", *beam])
        built = True
    return {"built": built, "seconds": round(time.perf_counter() - started, 2)}


# ------------------------------------------------------------------------------------------ one world


def ad_test_rows(examples: str, test_days: Sequence[str]) -> pa.Table:
    """The test days' ad impressions with an observed stream label."""
    table = read_days(examples, list(test_days))
    keep = pc.and_(pc.equal(table.column("source"), "ad"), pc.is_valid(table.column("label_stream")))
    return table.filter(keep)


def run_world(config: ColdstartConfig, correlation: float, root: str) -> dict:
    """Train (or reuse) every setup x history x seed of one world, score its test days' ad rows, bootstrap."""
    tag = f"rho{correlation:g}"
    world_build = ensure_world(config, correlation, root)
    evaluate = config.evaluate_config(root, tag)
    table = table_fingerprint(evaluate.examples)
    days = mature_split(evaluate.examples, config.valid_count, config.test_count)
    test_days = [d.isoformat() for d in parse_days(days["test_days"] or "")]
    # The sweep scores the test days' ad rows itself: the runs skip the trainer's own test metrics.
    days = {**days, "test_days": ""}
    known = all_setups(evaluate.spec)
    trained = sorted({SCORED[s][0] for s in config.setups}, key=TRAINED.index)
    records: dict[tuple[str, int, int], dict] = {}
    started = time.perf_counter()
    for name in trained:
        for h in [ALL] if name == "baseline" else config.history:
            setup = setup_at(known[name], h, config.max_source_repeats)
            for seed in config.seeds:
                record = run_setup(evaluate, setup, seed, table, days)
                log.info(
                    "%s %s seed %d: %s s%s", tag, setup.name, seed, record["seconds"], ", reused" * record["reused"]
                )
                records[(name, h, seed)] = record
    training_seconds = round(time.perf_counter() - started, 2)
    split = {**next(iter(records.values()))["split"], "test": test_days}
    t0 = time.perf_counter()
    rows = ad_test_rows(evaluate.examples, test_days)
    y = rows.column("label_stream").to_numpy(zero_copy_only=False).astype(float)
    scores: dict[str, np.ndarray] = {}
    for (name, h, seed), record in records.items():
        model = load_model(record["path"])
        heads = sorted({head for s, (run, head) in SCORED.items() if run == name and s in config.setups})
        scored = model.score(rows, heads)
        for s, (run, head) in SCORED.items():
            if run != name or s not in config.setups:
                continue
            scores[f"{s}/{h}/{seed}"] = np.asarray(scored[head], np.float64)
    scoring_seconds = round(time.perf_counter() - t0, 2)
    references = reference_scores(load_world(layout.world_dir(root)), rows)
    t0 = time.perf_counter()
    figures = world_figures(config, y, scores, references)
    return {
        "data_root": root,
        "correlation": correlation,
        "report_identity": report_identity(*_tables(root)),
        "split": split,
        "test_rows": int(y.size),
        "test_streams": int(y.sum()),
        "ad_rows_by_history": ad_rows(records),
        "best_at_last_epoch": still_improving(records, config.epochs),
        **figures,
        "runs": [{k: v for k, v in r.items() if k != "path"} for r in records.values()],
        "timing": {
            "world": world_build,
            "training_seconds": training_seconds,
            "runs_trained": sum(not r["reused"] for r in records.values()),
            "runs_reused": sum(r["reused"] for r in records.values()),
            "run_seconds": round(sum(r["seconds"] for r in records.values()), 2),
            "scoring_seconds": scoring_seconds,
            "bootstrap_seconds": round(time.perf_counter() - t0, 2),
        },
    }


def still_improving(records: dict[tuple[str, int, int], dict], epochs: int) -> dict[str, int]:
    """How many runs of each setup had their best validation score in the last of ``epochs`` epochs: still
    improving when the recipe's budget ended."""
    out: dict[str, int] = {}
    for (name, _, _), record in records.items():
        metrics = json.loads(artifacts.read_bytes(artifacts.join(record["path"], "metrics.json")))
        last = len(metrics.get("history", [])) == epochs and metrics.get("best_epoch") == epochs
        out[name] = out.get(name, 0) + int(last)
    return out


def ad_rows(records: dict[tuple[str, int, int], dict]) -> dict[str, Any]:
    """Per history, the ad rows the joint runs trained on and the days they came from (from the runs' splits)."""
    out: dict[str, Any] = {}
    for (name, h, _), record in records.items():
        if name != "joint" or history_label(h) in out:
            continue
        metrics = json.loads(artifacts.read_bytes(artifacts.join(record["path"], "metrics.json")))
        out[history_label(h)] = {
            "ad_rows": metrics["sampling"]["rows"].get("ad"),
            "promo_rows": metrics["sampling"]["rows"].get("promo"),
            "ad_days": metrics["split"].get("source_days", {}).get("ad", metrics["split"]["train"]),
            "shares": metrics["sampling"]["shares"],
            "ad_repeats_per_epoch": metrics["sampling"].get("repeats", {}).get("ad"),
        }
    return out


def world_figures(config: ColdstartConfig, y: np.ndarray, scores: dict[str, np.ndarray], references: dict) -> dict:
    """Per setup and history: AP per seed, the seed mean with its interval; the paired changes of
    :data:`COMPARISONS`; the references' AP."""
    rng = np.random.default_rng(config.bootstrap_seed)
    keys = {**scores, **{f"@{name}": v for name, v in references.items()}}
    boot = intervals.paired_ap_bootstrap(len(y), {"ads": (np.arange(len(y)), y, keys)}, config.bootstrap, rng)["ads"]
    seed_w = intervals.seed_draws(rng, config.bootstrap, len(config.seeds))
    point = {k: intervals.average_precision(y, v) for k, v in keys.items()}
    out: dict[str, Any] = {"points": {}, "changes": {}, "references": {}}
    for name, _ in REFERENCES:
        if f"@{name}" in point:
            out["references"][name] = point[f"@{name}"]

    def seed_mean(setup: str, h: int) -> tuple[np.ndarray, np.ndarray]:
        h = ALL if setup == "baseline" else h  # trained on no ad row: one run per seed serves every history
        per_seed = np.array([point[f"{setup}/{h}/{s}"] for s in config.seeds])
        draws = np.stack([boot[f"{setup}/{h}/{s}"] for s in config.seeds], axis=1)
        return per_seed, draws

    for setup in config.setups:
        out["points"][setup] = {}
        for h in config.history:
            per_seed, draws = seed_mean(setup, h)
            mean = (draws * seed_w).sum(axis=1) / seed_w.sum(axis=1)
            out["points"][setup][history_label(h)] = {
                "per_seed": per_seed.tolist(),
                "mean": float(per_seed.mean()),
                "std": float(per_seed.std(ddof=1)),
                "ci": intervals.percentile_interval(mean, config.confidence),
            }
    for setup, versus in COMPARISONS:
        if setup not in config.setups or versus not in config.setups:
            continue
        out["changes"][f"{setup}|{versus}"] = {}
        for h in config.history:
            a, da = seed_mean(setup, h)
            b, db = seed_mean(versus, h)
            resampled = intervals.relative_change(da, db, seed_w)
            ci = intervals.percentile_interval(resampled, config.confidence)
            out["changes"][f"{setup}|{versus}"][history_label(h)] = {
                "point": float(intervals.relative_change(a, b)),
                "ci": ci,
                "verdict": "higher" if ci and ci[0] > 0 else "lower" if ci and ci[1] < 0 else "level",
            }
    return out


# ------------------------------------------------------------------------------------------ driver


def run_coldstart(config: ColdstartConfig) -> dict:
    """Every world of the sweep; writes ``<out>/coldstart.json`` and returns it."""
    started = time.perf_counter()
    identity = report_identity(*_tables(config.worlds[0][1]))
    check_same_run(config.out, "coldstart.json", identity)
    worlds = {f"{c:g}": run_world(config, c, root) for c, root in config.worlds}
    result = {
        "config": dataclasses.asdict(config),
        # The first world's: the report folder's other figures (make evaluate, make abtest) are measured on it.
        "report_identity": identity,
        "labels": LABELS,
        "history": [history_label(h) for h in config.history],
        "worlds": worlds,
        "timing": {"wall_seconds": round(time.perf_counter() - started, 2)},
    }
    labels = ["$DATA_ROOT", "$COLDSTART_ROOT", *(f"$COLDSTART_ROOT_{i}" for i in range(2, len(config.worlds)))]
    roots = {label: root for label, (_, root) in zip(labels, config.worlds, strict=False)}  # as many as worlds
    write_report_json(config.out, "coldstart.json", result, roots)
    return result


def _tables(root: str) -> tuple[str, str]:
    return layout.join(root, "examples"), layout.world_dir(root)


def parse_args(argv: Sequence[str]) -> tuple[ColdstartConfig, argparse.Namespace]:
    """The sweep's configuration, and the command-line-only ``report`` switch."""
    p = CommandParser("podtarget.evaluation.coldstart", __doc__)
    add_options(p, ColdstartConfig)
    p.add_argument("--report", action="store_true", default=True, help="Rewrite the report (the default).")
    p.add_argument("--no_report", dest="report", action="store_false", help="Not --report.")
    a, rest = p.parse_known_args(argv)
    return from_options(ColdstartConfig, a, pipeline_args=tuple(rest)), a


def format_summary(result: dict) -> str:
    lines = []
    for tag, w in result["worlds"].items():
        lines.append(f"world correlation {tag}: Ads AP (seed mean) by days of ad history {result['history']}")
        for setup, by in w["points"].items():
            lines.append(f"  {setup:<17} " + "  ".join(f"{by[h]['mean']:.4f}" for h in result["history"]))
        refs = w["references"]
        lines.append("  references: " + ", ".join(f"{k} {v:.4f}" for k, v in refs.items()))
    lines.append(f"wall {result['timing']['wall_seconds']} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    warn_if_threads_spin(log)
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_coldstart(config)
    print(format_summary(result))
    if cli.report:
        from .report import write_report

        first_root = config.worlds[0][1]
        print(f"report written to {write_report(config.out, world_dir=os.path.join(first_root, 'world'))}")
    return 0


if __name__ == "__main__":
    from ..common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))

"""The simulated online A/B test (``make abtest``) on held-out days: every arm serves the same ad slots, in two
market designs; outcomes from the ground truth.

Design (the paper's test, Table 2, replayed on the simulated world, where every arm can be served on the same slots):

- **Arms.** Model arms: control, the promotions-only model (``baseline`` of the ablations) with its
  PromotionStream head scoring ad campaigns (the paper's cold-start baseline, which ignores ad features), and
  treatment, the 5-task joint model's AdStream head, both of one model seed (``--model_seeds``: the test runs
  once per seed). Reference arms, possible only in simulation (:data:`REFERENCE_ARMS`): ``oracle`` (the world's
  true stream probability in the serving context), ``truth_shared`` (the ground truth without its ad-only terms:
  user x show affinity, language match, show appeal) and ``random``. Every table shows where each arm sits
  between random (0) and oracle (1).
- **Audiences** come from the project's scoring pipeline (:func:`podtarget.pipelines.score.run`, the same eligibility
  rules and serving context as ``make score``), run once per seed, model arm and day into a scratch data root that
  links the real inputs. Every eligible user is scored; the reference arms score the same (user, campaign) pairs.
- **Slots.** Each user's ad slots of the day are drawn from the world's session model
  (:func:`podtarget.simulator.sessions.ad_opportunities`: sessions from the user's activity, ad slots per
  session, none for premium users), with a seed of their own (``--inventory_seed``). Every arm serves all of
  them, as its own counterfactual day, with each active campaign's whole daily budget (``budget / campaign
  days``): no user split, so no arm gets more slots than another.
- **Market** (``--designs``; :mod:`podtarget.evaluation.auction`): ``auction``, every slot sold to the best
  value bid (CPM x score / the campaign's mean score) among the user's eligible campaigns, which is blind to a
  factor shared by all of a user's campaigns; and ``audience``, each campaign buying the top share of its
  eligible users by score (``--audience_shares``) and bidding value within it, unsold slots going to outside
  demand, where arms are compared at matched delivery (:mod:`podtarget.evaluation.abtest_figures`).
  Second price, reserve (``--reserve_cpm``), frequency cap and budgets in both.
- **Outcomes** are drawn from :meth:`podtarget.simulator.World.outcome_probabilities` in the context scoring
  assumed (the campaign's lowest-id creative in the slot and surface of its format, the user's primary device)
  at the hour of the slot, with the user's earlier impressions of the campaign that day as ``prior_exposures``
  (ad fatigue). A slot's random numbers are the same in every arm (``--draw_seed``): a click is drawn first,
  then a stream given it; arms differ only by whom they served.
- **Metrics**, per arm: impressions, reach (distinct users per campaign-day), spend, clicks, streams,
  impression-to-stream rate (i2s), CTR, eCPS (spend / streams), and the expected i2s (mean true stream
  probability, free of draw noise). Lifts against control, overall, for less-streamed podcasts (popularity tiers
  3-5, the paper's low-stream tiers) and per tier, with percentile bootstrap intervals that resample the model
  seeds and the campaign-days.

::

    python -m podtarget.evaluation.abtest --data_root=./data --models=models/eval-demo --out=reports/eval \\
        [--days=2026-03-11..2026-03-15] [--model_seeds=1,2,3] [--designs=auction,audience] \\
        [--audience_shares=0.01,0.02,0.05,0.1,0.25,0.5] [--control=models/x --treatment=models/y]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..common.cli import CommandParser, configure_logging, warn_if_threads_spin
from ..common.options import add_options, from_options
from ..model import artifacts
from ..pipelines import score
from ..schemas import layout
from ..simulator.world import World
from ..transforms.runtime.storage import read_parquet
from .ablations_config import EvaluateConfig
from .abtest_config import ARMS, HEADS, MODEL_ARMS, REFERENCE_ARMS, ABTestConfig
from .abtest_figures import LESS_STREAMED_TIERS, summarize
from .market import day_market, reference_scores, serve_designs
from .outputs import check_same_run, report_identity, table_fingerprint, write_report_json

log = logging.getLogger(__name__)

PAPER = {
    "all": {"i2s": 18.0, "ecps": -20.0, "ctr": 9.0, "streams": 18.0},
    "less_streamed": {"i2s": 24.0, "ecps": -22.0, "ctr": 10.0, "streams": 27.0},
    # i2s by tier (tier 1 not given individually); mean CPS: tiers 0-2 "-4% to -17%", tiers 3-5 -20, -24, -38.
    "i2s_by_tier": {"0": 7.0, "2": 20.0, "3": 27.0, "4": 33.0, "5": 60.0},
    "cps_by_tier": {"3": -20.0, "4": -24.0, "5": -38.0},
}


# ------------------------------------------------------------------------------------------ one day


def scratch_root(data_root: str, folder: str) -> str:
    """A data root whose inputs link the real ones, so scoring writes its outputs here and never under data_root."""
    os.makedirs(folder, exist_ok=True)
    for name in ("raw", "features", "world"):
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(data_root, name)), link)
    return folder


def score_arm(config: ABTestConfig, scratch: str, day: datetime.date, arm: str, seed: int, n_users: int) -> pa.Table:
    """Every eligible (user, ad campaign) pair of ``day`` scored by the arm's head, through the scoring pipeline,
    sorted by campaign and user."""
    summary = score.run(
        [
            f"--data_root={scratch}",
            f"--date={day.isoformat()}",
            f"--model={config.model_path(arm, seed)}",
            f"--heads=ad:*={HEADS[arm]}",
            # Serving every ad campaign with one stream head is this test's design, declared as a transfer where
            # the head was not trained for the campaign's channel or objective (the control's PromotionStream on
            # ads is the paper's cold-start baseline).
            f"--transfers=ad:*={HEADS[arm]}",
            "--audience_cut=top_k",
            f"--audience_size={n_users}",
            f"--hour={config.hour}",
            "--formats=parquet",
            "--top_n=1",
            *config.pipeline_args,
        ]
    )
    log.info("%s %s seed %d: %s", day, arm, seed, score.describe(summary).replace("\n", "; "))
    audiences = read_parquet(layout.join(layout.audience_partition(scratch, day), "part-*.parquet"))
    return audiences.select(["campaign_id", "user_id", "score"]).sort_by(
        [("campaign_id", "ascending"), ("user_id", "ascending")]
    )


def run_day(
    config: ABTestConfig, world: World, scratch: str, day: datetime.date, seed: int, cache: dict
) -> tuple[list[dict], dict]:
    """Every arm of one model seed on one day: per campaign, each arm's counters in each design; and the day's
    timing. The reference arms do not depend on the seed: ``cache`` keeps them per day."""
    t0 = time.perf_counter()
    scored = {arm: score_arm(config, scratch, day, arm, seed, world.config.n_users) for arm in MODEL_ARMS}
    scoring_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    market, rows = day_market(config, world, day, scored["control"])
    keys = {arm: (t.column("campaign_id").to_numpy(), t.column("user_id").to_numpy()) for arm, t in scored.items()}
    if not all(np.array_equal(keys["control"][i], keys["treatment"][i]) for i in (0, 1)):
        raise ValueError(f"{day}: the two models' scoring runs found different eligible pairs; expected the same")
    scores = {arm: t.column("score").to_numpy().astype(np.float64)[rows] for arm, t in scored.items()}
    served = {arm: serve_designs(world, market, config, scores[arm]) for arm in MODEL_ARMS}
    references = [a for a in config.arms if a in REFERENCE_ARMS]
    if references and day not in cache:
        reference = reference_scores(world, market, config, day)
        cache[day] = {arm: serve_designs(world, market, config, reference[arm]) for arm in references}
    served |= cache.get(day, {})
    units = []
    for i, c in enumerate(market.campaigns):
        unit: dict[str, Any] = {
            "seed": seed,
            "day": day.isoformat(),
            "campaign_id": c["campaign_id"],
            "podcast_id": c["podcast_id"],
            "tier": c["podcast_popularity_tier"],
            "cpm_micros": c["cpm_micros"],
            "frequency_cap": market.cap,
        }
        for design in config.designs:
            if design == "auction":
                unit["auction"] = {arm: served[arm]["auction"][i] for arm in config.arms}
            else:
                unit["audience"] = {
                    arm: {q: by_share[i] for q, by_share in served[arm]["audience"].items()} for arm in config.arms
                }
        units.append(unit)
    timing = {"scoring_seconds": round(scoring_seconds, 2), "serving_seconds": round(time.perf_counter() - t0, 2)}
    timing["slots"] = int(len(market.slots["user"]))
    return units, timing


# ------------------------------------------------------------------------------------------ driver
def held_out_days(config: ABTestConfig) -> tuple[list[datetime.date], dict]:
    """The A/B days (given, or every day after the models' test days with user features), checked to come after
    every day any of the models trained or early-stopped on."""
    splits = {}
    for seed in config.model_seeds:
        for arm in ARMS:
            metrics = json.loads(artifacts.read_bytes(artifacts.join(config.model_path(arm, seed), "metrics.json")))
            splits[f"{arm}-s{seed}"] = metrics["split"]
    seen = [d for s in splits.values() for d in (*s["train"], *s["valid"])]
    last_seen = datetime.date.fromisoformat(max(seen))
    if config.days:
        days = sorted(config.days)
    else:
        tested = [d for s in splits.values() for d in s["test"]] or [last_seen.isoformat()]
        after = datetime.date.fromisoformat(max(tested))
        folder = os.path.join(config.data_root, "features", "user")
        present = sorted(
            datetime.date.fromisoformat(name[3:])
            for name in os.listdir(folder)
            if name.startswith("dt=") and os.path.exists(os.path.join(folder, name, layout.SUCCESS_MARKER))
        )
        days = [d for d in present if d > after]
    early = [d.isoformat() for d in days if d <= last_seen]
    if early:
        raise ValueError(
            f"A/B days {early} are not held out: the models trained or validated on days up to {last_seen}; "
            "expected days after it"
        )
    if not days:
        raise ValueError(f"no held-out day with user features after {last_seen} under {config.data_root}")
    return days, splits


def ensure_models(config: ABTestConfig, examples: str | None, evaluate_args: dict | None = None) -> dict:
    """The arms' models of every seed: as they are when they exist (e.g. trained by ``make evaluate``); otherwise
    the ablations' baseline and joint runs of the seed are trained (with ``evaluate_args``, the ablations'
    settings, e.g. the split, so that the runs are the ones ``make evaluate`` caches)."""
    out = {}
    missing = []
    for seed in config.model_seeds:
        for setup, arm in (("baseline", "control"), ("joint", "treatment")):
            path = config.model_path(arm, seed)
            if artifacts.exists(artifacts.join(path, "manifest.json")):
                out[f"{setup}-s{seed}"] = {"reused": True, "seconds": 0.0, "path": path}
            else:
                missing.append((setup, seed, path))
    if not missing:
        return out
    if config.control and config.treatment:
        raise FileNotFoundError(f"no trained model at {[m[2] for m in missing]}: train it, or leave them unset")
    from .ablations_config import EvaluateConfig
    from .runs import resolve_days, run_setup
    from .setups import all_setups

    evaluate = EvaluateConfig(
        examples=examples or layout.join(config.data_root, "examples"),
        models=config.models,
        out=config.out,
        seeds=config.model_seeds,
        setups=("baseline", "joint"),
        **(evaluate_args or {}),
    )
    table, days, known = table_fingerprint(evaluate.examples), resolve_days(evaluate), all_setups(evaluate.spec)
    for setup, seed, path in missing:
        started = time.perf_counter()
        record = run_setup(evaluate, known[setup], seed, table, days)
        out[f"{setup}-s{seed}"] = {
            "reused": record["reused"],
            "seconds": round(time.perf_counter() - started, 2),
            "path": path,
        }
    return out


def run_abtest(config: ABTestConfig, examples: str | None = None, evaluate_args: dict | None = None) -> dict:
    """The whole test; writes ``<out>/abtest.json`` and returns it (with the served users and prices of each
    unit, for the tests)."""
    started = time.perf_counter()
    table = examples or layout.join(config.data_root, "examples")
    identity = report_identity(table, layout.world_dir(config.data_root))
    check_same_run(config.out, "abtest.json", identity)
    models = ensure_models(config, examples, evaluate_args)
    days, splits = held_out_days(config)
    world = World.load(layout.world_dir(config.data_root))
    own_scratch = config.work_dir is None
    scratch = scratch_root(config.data_root, config.work_dir or tempfile.mkdtemp(prefix="podtarget-abtest-"))
    units: list[dict] = []
    per_day: dict[str, dict] = {}
    cache: dict[datetime.date, dict] = {}
    try:
        for day in days:
            for seed in config.model_seeds:
                day_units, timing = run_day(config, world, scratch, day, seed, cache)
                for u in day_units:
                    u["slots"] = timing["slots"]
                units += day_units
                per_day[f"{day.isoformat()}/s{seed}"] = {**timing, "campaigns": len(day_units)}
            cache.pop(day, None)
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    t0 = time.perf_counter()
    designs = summarize(units, config)
    bootstrap_seconds = round(time.perf_counter() - t0, 2)
    result = {
        "config": {
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "days"},
            "days": [d.isoformat() for d in days],
            "control_models": [config.model_path("control", s) for s in config.model_seeds],
            "treatment_models": [config.model_path("treatment", s) for s in config.model_seeds],
            "heads": HEADS,
            "less_streamed_tiers": list(LESS_STREAMED_TIERS),
        },
        "report_identity": identity,
        "model_splits": splits,
        "arms": {
            **{a: f"the {HEADS[a]} head of the {'baseline' if a == 'control' else 'joint'} model" for a in MODEL_ARMS},
            **REFERENCE_ARMS,
        },
        "serving_context": {
            "hour": f"the hour of the ad slot's session (scoring assumed hour {config.hour})",
            "device": "the user's primary device",
            "creative": "the campaign's lowest-id creative (scoring's choice)",
            "slot_surface": "by creative format: display in home_banner on home, audio and video midroll on "
            "now_playing",
            "prior_exposures": "the user's earlier impressions of the campaign that day in the same arm",
        },
        "designs": designs,
        # Per campaign-day counters (3,175 of them x arms x shares on the eval world: 28 MB as indented JSON) go to
        # a gzipped file of their own, so that abtest.json stays a few hundred kB to read and to commit.
        "units_file": UNITS_FILE,
        "paper": PAPER,
        "timing": {
            "wall_seconds": round(time.perf_counter() - started, 2),
            "models": models,
            "per_day": per_day,
            "scoring_seconds": round(sum(d["scoring_seconds"] for d in per_day.values()), 2),
            "serving_seconds": round(sum(d["serving_seconds"] for d in per_day.values()), 2),
            "bootstrap_seconds": bootstrap_seconds,
        },
    }
    public_units = [_public(u) for u in units]
    artifacts.write_bytes(artifacts.join(config.out, UNITS_FILE), gzip.compress(_compact(public_units), mtime=0))
    write_report_json(config.out, "abtest.json", result, {"$DATA_ROOT": config.data_root})
    result["units"] = public_units
    result["served"] = {(u["seed"], u["day"], u["campaign_id"]): _private(u, "served_users") for u in units}
    result["prices"] = {(u["seed"], u["day"], u["campaign_id"]): _private(u, "prices_micros") for u in units}
    return result


_PRIVATE = ("served_users", "prices_micros")
UNITS_FILE = "abtest_units.json.gz"


def load_units(out: str) -> list[dict]:
    """The per campaign-day counters ``run_abtest`` wrote beside ``abtest.json`` (seed, day, campaign, tier, and
    per design and arm the impressions, spend, clicks, streams, expected streams)."""
    return json.loads(gzip.decompress(artifacts.read_bytes(artifacts.join(out, UNITS_FILE))))


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=artifacts.json_default).encode()


def _public(unit: dict) -> dict:
    """A unit as written: the per-arm counters without the served users and prices."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _PRIVATE}
        return node

    return strip(unit)


def _private(unit: dict, key: str) -> dict:
    """The auction design's ``key`` (served users or prices) per arm, and the audience design's per arm and share."""
    out: dict[str, Any] = {}
    if "auction" in unit:
        out["auction"] = {arm: a[key] for arm, a in unit["auction"].items()}
    if "audience" in unit:
        out["audience"] = {arm: {q: a[key] for q, a in by.items()} for arm, by in unit["audience"].items()}
    return out


# Missing models are trained as `make evaluate` would: the same settings give the same cached runs.
TRAINING_OPTIONS = ("split", "valid_count", "test_count", "epochs", "patience", "batch_size", "max_batches_per_epoch")


def parse_args(argv: Sequence[str]) -> tuple[ABTestConfig, argparse.Namespace]:
    """The test's configuration, and the command-line-only settings: ``examples``, ``report`` and
    ``evaluate_args`` (the training settings of missing models, given as ``make evaluate`` takes them)."""
    p = CommandParser("podtarget.evaluation.abtest", __doc__)
    add_options(p, ABTestConfig, defaults={"data_root": "./data"})
    p.add_argument("--examples", default=None, help="Example table to train missing models (default: under data).")
    p.add_argument("--report", action="store_true", default=True, help="Rewrite the report (the default).")
    p.add_argument("--no_report", dest="report", action="store_false", help="Not --report.")
    add_options(p, EvaluateConfig, only=TRAINING_OPTIONS, defaults=dict.fromkeys(TRAINING_OPTIONS))
    a, rest = p.parse_known_args(argv)
    a.evaluate_args = {k: getattr(a, k) for k in TRAINING_OPTIONS if getattr(a, k) is not None}
    return from_options(ABTestConfig, a, pipeline_args=tuple(rest)), a


def format_summary(result: dict) -> str:
    """Per design, the arms of all campaign-days: expected i2s, position between random and oracle, i2s lift."""
    lines = []
    for design, d in result["designs"].items():
        seg = d["segments"]["all"]
        lines.append(f"{design}: {seg['units']} campaign-days x {seg['seeds']} seeds")
        if design == "auction":
            for arm, a in seg["arms"].items():
                pos = (seg.get("position") or {}).get(arm, {}).get("point")
                lift = (seg.get("lift_pct") or {}).get(arm, {}).get("i2s")
                pos_text = "-" if pos is None else f"{pos:5.2f}"
                lift_text = "-" if lift is None else f"{lift:+.1f}%"
                lines.append(
                    f"  {arm:<13} expected i2s {100 * (a['expected_i2s'] or 0):6.3f}%  position {pos_text}  "
                    f"i2s vs control {lift_text}"
                )
        else:
            block = seg.get("matched", {}).get("impressions", {})
            for arm, a in block.get("arms", {}).items():
                e = a["rates"].get("expected_i2s")
                pos = (a.get("position") or {}).get("point")
                lines.append(
                    f"  {arm:<13} at control's impressions: expected i2s {'-' if e is None else f'{100 * e:6.3f}%'}  "
                    f"position {'-' if pos is None else f'{pos:5.2f}'}"
                )
    lines.append(f"wall {result['timing']['wall_seconds']} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_abtest(config, cli.examples, cli.evaluate_args)
    print(format_summary(result))
    if cli.report:
        from .report import write_report

        print(f"report written to {write_report(config.out, world_dir=layout.world_dir(config.data_root))}")
    return 0


if __name__ == "__main__":
    from ..common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

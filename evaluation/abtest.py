"""A simulated budget-split online A/B test (``make abtest``) on held-out days, outcomes from the ground truth.

Design (the paper's test, Table 2, replayed on the simulated world):

- **Arms.** Control: the promotions-only model (``baseline`` of the ablations), its PromotionStream head scoring
  ad campaigns (the paper's cold-start baseline, which ignores ad features). Treatment: the 5-task joint model's
  AdStream head. Both score every ad campaign whatever its objective (``--heads=ad:*=<head>``), so the test
  compares the two stream predictions only.
- **Audiences** come from the project's scoring pipeline (:func:`pipelines.score.run`, the same eligibility
  rules and serving context as ``make score``), run once per arm and day into a scratch data root that links the
  real inputs. Every eligible user is ranked (``--audience_size`` = all users).
- **Budget split.** Users are split between the arms by a stable hash of ``user_id`` and ``--split_seed`` (half
  each), and every ad campaign active on the day gives each arm half of its daily budget (``budget / campaign
  days``, as the simulator paces it). An arm buys impressions at the campaign's CPM (``CPM / 1000`` each) for its
  own eligible users in rank order: one impression per user down the ranking, then a second pass, and so on, up to
  the simulator's frequency cap per user, campaign and day, until the half budget or the users run out.
- **Outcomes** are drawn from :meth:`simulator.World.outcome_probabilities` with a seeded generator per (day,
  campaign, arm), in the context scoring assumed: the campaign's lowest-id creative in the slot and surface of its
  format, the user's primary device, hour ``--hour`` (19, scoring's default), and the user's earlier impressions
  of the campaign that day as ``prior_exposures`` (ad fatigue). A click is drawn first, then a stream given it.
- **Metrics**, per arm: impressions, spend, clicks, streams, impression-to-stream rate (i2s), CTR, eCPS (spend /
  streams), and the expected i2s (mean true stream probability, free of draw noise). Lifts are treatment / control
  - 1, overall, for less-streamed podcasts (popularity tiers 3-5, the paper's low-stream tiers) and per tier, with
  percentile bootstrap intervals over campaign-days (both arms of a campaign-day resampled together).

::

    python -m evaluation.abtest --data_root=./data --models=models/eval-demo --out=reports/eval \\
        [--days=2026-03-11..2026-03-15] [--model_seed=1] [--control=models/x --treatment=models/y]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from evaluation.outputs import DEFAULT_OUT, check_same_run, report_identity
from model import artifacts
from model.data import splitmix64
from pipelines import score
from pipelines.daily import load_podcast_features, read_snapshot
from schemas import layout
from simulator.config import AD_SLOTS, SURFACES
from simulator.world import World, rng_for
from transforms.candidates import ScoringConfig, plan_campaigns
from transforms.storage import read_parquet

log = logging.getLogger(__name__)

ARMS = ("control", "treatment")
HEADS = {"control": "PromotionStream", "treatment": "AdStream"}
LESS_STREAMED_TIERS = (3, 4, 5)
COUNTERS = ("impressions", "spend_micros", "clicks", "streams", "expected_streams")
PAPER = {
    "all": {"i2s": 18.0, "ecps": -20.0, "ctr": 9.0, "streams": 18.0},
    "less_streamed": {"i2s": 24.0, "ecps": -22.0, "ctr": 10.0, "streams": 27.0},
    # i2s by tier (tier 1 not given individually); mean CPS: tiers 0-2 "-4% to -17%", tiers 3-5 -20, -24, -38.
    "i2s_by_tier": {"0": 7.0, "2": 20.0, "3": 27.0, "4": 33.0, "5": 60.0},
    "cps_by_tier": {"3": -20.0, "4": -24.0, "5": -38.0},
}


@dataclasses.dataclass
class ABTestConfig:
    """What ``make abtest`` runs."""

    data_root: str
    models: str = "models/eval-demo"  # the ablations' runs: baseline-s<seed> and joint-s<seed>
    out: str = DEFAULT_OUT  # the committed record, reports/eval, only when asked for by name
    days: tuple[datetime.date, ...] = ()  # empty: every day after the models' test days with user features
    model_seed: int = 1
    control: str | None = None  # a model folder instead of <models>/baseline-s<seed>
    treatment: str | None = None  # a model folder instead of <models>/joint-s<seed>
    split_seed: int = 11
    draw_seed: int = 29
    bootstrap: int = 2000
    confidence: float = 0.95
    hour: int = 19
    work_dir: str | None = None  # scratch data root for the audiences (default: a temporary folder, removed)
    pipeline_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.days = tuple(self.days)
        if not self.data_root:
            raise ValueError("data_root is required, e.g. ./data")
        if "://" in self.data_root:
            raise ValueError(f"data_root must be a local folder (the scratch root links it); got {self.data_root!r}")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 100:
            raise ValueError(f"bootstrap must be an integer >= 100 resamples; got {self.bootstrap!r}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1); got {self.confidence!r}")
        if not isinstance(self.hour, int) or not 0 <= self.hour <= 23:
            raise ValueError(f"hour must be an integer in [0, 23]; got {self.hour!r}")
        if len(set(self.days)) != len(self.days):
            raise ValueError(f"days must be distinct; got {[d.isoformat() for d in self.days]}")

    def model_path(self, arm: str) -> str:
        given = self.control if arm == "control" else self.treatment
        setup = "baseline" if arm == "control" else "joint"
        return given or artifacts.join(self.models, f"{setup}-s{self.model_seed}")


# ------------------------------------------------------------------------------------------ serving


@dataclasses.dataclass(frozen=True)
class Served:
    """The impressions one arm bought for one campaign, in serving order."""

    users: np.ndarray  # user ids
    prior_exposures: np.ndarray  # the user's earlier impressions of this campaign today (0 .. cap - 1)
    cost_micros: float  # price of each impression (CPM / 1000)

    @property
    def spend_micros(self) -> float:
        return self.cost_micros * len(self.users)


def serve(ranked_users: np.ndarray, budget_micros: float, cpm_micros: float, cap: int) -> Served:
    """Impressions at ``cpm_micros / 1000`` each to ``ranked_users`` (best first): one per user down the ranking,
    then again from the top, at most ``cap`` per user, while the budget pays for a whole impression."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 impression per user and day; got {cap}")
    if not cpm_micros > 0:
        raise ValueError(f"cpm_micros must be positive; got {cpm_micros}")
    price = cpm_micros / 1000.0
    affordable = math.floor(max(budget_micros, 0.0) / price + 1e-9)  # guard against float fuzz at the boundary
    n = min(affordable, cap * len(ranked_users))
    order = np.arange(n)
    users = np.asarray(ranked_users)[order % max(len(ranked_users), 1)] if n else np.zeros(0, np.int64)
    return Served(users=users.astype(np.int64), prior_exposures=order // max(len(ranked_users), 1), cost_micros=price)


def arm_of_users(user_ids: np.ndarray, split_seed: int) -> np.ndarray:
    """0 (control) or 1 (treatment) per user: a stable hash, independent of the day and of the models."""
    mixed = splitmix64(np.asarray(user_ids, np.int64).astype(np.uint64) ^ splitmix64(np.array([split_seed]))[0])
    return (mixed & np.uint64(1)).astype(np.int8)


def draw_outcomes(
    world: World,
    served: Served,
    podcast_id: int,
    creative_id: int,
    ad_slot: str,
    surface: str,
    hour: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Clicks and streams of the served impressions, drawn from the ground truth (ids are 1-based indices)."""
    n = len(served.users)
    users = served.users - 1
    p = world.outcome_probabilities(
        users,
        np.full(n, podcast_id - 1),
        "ad",
        surface=np.full(n, SURFACES.index(surface)),
        device=world.users.device[users],
        hour=np.full(n, hour),
        creative=np.full(n, creative_id - 1),
        ad_slot=np.full(n, AD_SLOTS.index(ad_slot)),
        prior_exposures=served.prior_exposures,
    )
    click = rng.random(n) < p.click
    stream = rng.random(n) < np.where(click, p.stream_if_click, p.stream_if_no_click)
    return {"click": click, "stream": stream, "p_stream": p.stream}


# ------------------------------------------------------------------------------------------ one day


def scratch_root(data_root: str, folder: str) -> str:
    """A data root whose inputs link the real ones, so scoring writes its outputs here and never under data_root."""
    os.makedirs(folder, exist_ok=True)
    for name in ("raw", "features", "world"):
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(data_root, name)), link)
    return folder


def score_arm(config: ABTestConfig, scratch: str, day: datetime.date, arm: str, n_users: int) -> pa.Table:
    """Every eligible (user, ad campaign) pair of ``day`` ranked by the arm's head, through the scoring pipeline."""
    summary = score.run(
        [
            f"--data_root={scratch}",
            f"--date={day.isoformat()}",
            f"--model={config.model_path(arm)}",
            f"--heads=ad:*={HEADS[arm]}",
            "--audience_cut=top_k",
            f"--audience_size={n_users}",
            f"--hour={config.hour}",
            "--formats=parquet",
            "--top_n=1",
            *config.pipeline_args,
        ]
    )
    log.info("%s %s: %s", day, arm, score.describe(summary).replace("\n", "; "))
    audiences = read_parquet(layout.join(layout.audience_partition(scratch, day), "part-*.parquet"))
    return audiences.select(["campaign_id", "user_id", "rank", "score"])


def ranked_users_by_campaign(audiences: pa.Table) -> dict[int, np.ndarray]:
    """Per campaign, its users best first (by the audience's rank)."""
    campaign = audiences.column("campaign_id").to_numpy()
    rank = audiences.column("rank").to_numpy()
    users = audiences.column("user_id").to_numpy()
    order = np.lexsort((rank, campaign))
    campaign, users = campaign[order], users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(campaign)) + 1]
    ends = np.r_[starts[1:], len(campaign)]
    return {int(campaign[a]): users[a:b] for a, b in zip(starts, ends, strict=True) if b > a}


def campaign_context(data_root: str, day: datetime.date, config: ABTestConfig) -> pa.Table:
    """The ad campaigns active on ``day`` with the serving context scoring assumes for them (the scoring plan's
    campaign side: creative, slot, surface, hour) plus budget, CPM, dates and the show's popularity tier."""
    campaigns = read_snapshot(data_root, "campaign", day)
    plan = plan_campaigns(
        campaigns,
        read_snapshot(data_root, "creative", day),
        load_podcast_features(day.isoformat(), data_root),
        day,
        ScoringConfig(heads=f"ad:*={HEADS['treatment']}", hour=config.hour),
        layout.raw_partition(data_root, "campaign", day),
    )
    side = plan.side.table
    keep = ["campaign_id", "podcast_id", "creative_id", "ad_slot", "surface", "hour", "podcast_popularity_tier"]
    context = side.select(keep)
    money = campaigns.select(["campaign_id", "budget_micros", "cpm_micros", "start_date", "end_date"])
    return context.join(money, "campaign_id").sort_by("campaign_id")


def run_day(config: ABTestConfig, world: World, scratch: str, day: datetime.date) -> tuple[list[dict], dict]:
    """Both arms on one day: per (campaign, arm) the bought impressions and drawn outcomes; and the day's timing."""
    t0 = time.perf_counter()
    ranked = {arm: score_arm(config, scratch, day, arm, world.config.n_users) for arm in ARMS}
    scoring_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    context = campaign_context(config.data_root, day, config).to_pylist()
    cap = world.config.frequency_cap_per_day
    by_campaign = {arm: ranked_users_by_campaign(ranked[arm]) for arm in ARMS}
    units = []
    for c in context:
        if not c["budget_micros"] or not c["cpm_micros"]:
            continue  # nothing to split or to price: such a campaign buys no impressions in either arm
        days = (c["end_date"] - c["start_date"]).days + 1
        half_budget = c["budget_micros"] / days / 2.0
        unit: dict[str, Any] = {
            "day": day.isoformat(),
            "campaign_id": c["campaign_id"],
            "podcast_id": c["podcast_id"],
            "tier": c["podcast_popularity_tier"],
            "arm_budget_micros": half_budget,
            "cpm_micros": c["cpm_micros"],
            "frequency_cap": cap,
        }
        for arm_index, arm in enumerate(ARMS):
            users = by_campaign[arm].get(c["campaign_id"], np.zeros(0, np.int64))
            own = users[arm_of_users(users, config.split_seed) == arm_index]
            served = serve(own, half_budget, c["cpm_micros"], cap)
            rng = rng_for(config.draw_seed, day.toordinal(), c["campaign_id"], arm_index)
            drawn = draw_outcomes(
                world, served, c["podcast_id"], c["creative_id"], c["ad_slot"], c["surface"], c["hour"], rng
            )
            unit[arm] = {
                "eligible_users": len(own),
                "reached_users": int(len(np.unique(served.users))),
                "impressions": len(served.users),
                "spend_micros": served.spend_micros,
                "clicks": int(drawn["click"].sum()),
                "streams": int(drawn["stream"].sum()),
                "expected_streams": float(drawn["p_stream"].sum()),
                "max_per_user": int(np.bincount(served.users).max()) if len(served.users) else 0,
                "served_users": served.users,  # dropped before writing; the tests check them
            }
        units.append(unit)
    timing = {"scoring_seconds": round(scoring_seconds, 2), "serving_seconds": round(time.perf_counter() - t0, 2)}
    return units, timing


# ------------------------------------------------------------------------------------------ metrics


def rates(totals: dict[str, float]) -> dict[str, float | None]:
    """i2s, CTR, eCPS (spend / streams, in currency units) and expected i2s from summed counters."""
    imps, streams = totals["impressions"], totals["streams"]
    return {
        "i2s": streams / imps if imps else None,
        "ctr": totals["clicks"] / imps if imps else None,
        "ecps": totals["spend_micros"] / 1e6 / streams if streams else None,
        "streams": float(streams),
        "expected_i2s": totals["expected_streams"] / imps if imps else None,
    }


def _lift(treatment: float | None, control: float | None) -> float | None:
    if treatment is None or control is None or control == 0:
        return None
    return 100.0 * (treatment / control - 1.0)


METRICS = ("i2s", "ecps", "ctr", "streams", "expected_i2s")


def segment_result(counts: np.ndarray, bootstrap: int, confidence: float, rng: np.random.Generator) -> dict:
    """``counts[unit, arm, counter]``: totals and rates per arm, lifts with percentile bootstrap intervals over
    units (campaign-days, both arms resampled together)."""
    n_units = counts.shape[0]
    totals = counts.sum(axis=0)
    arms = {arm: {**dict(zip(COUNTERS, map(float, totals[i]), strict=True))} for i, arm in enumerate(ARMS)}
    for arm in ARMS:
        arms[arm].update(rates(arms[arm]))
    point = {m: _lift(arms["treatment"][m], arms["control"][m]) for m in METRICS}
    out: dict[str, Any] = {"units": n_units, "arms": arms, "lift_pct": point, "ci_pct": {}}
    if n_units == 0:
        return out
    picks = rng.integers(0, n_units, size=(bootstrap, n_units))
    sums = counts[picks].sum(axis=1)  # [bootstrap, arm, counter]
    alpha = (1 - confidence) / 2
    for m in METRICS:
        values = []
        for b in range(bootstrap):
            t = rates(dict(zip(COUNTERS, sums[b, 1], strict=True)))[m]
            c = rates(dict(zip(COUNTERS, sums[b, 0], strict=True)))[m]
            values.append(_lift(t, c))
        defined = np.array([v for v in values if v is not None], float)
        if defined.size and point[m] is not None:
            lo, hi = np.quantile(defined, [alpha, 1 - alpha])
            out["ci_pct"][m] = [float(lo), float(hi)]
            out.setdefault("share_above_zero", {})[m] = float((defined > 0).mean())
    return out


def summarize(units: list[dict], config: ABTestConfig) -> dict:
    """Overall, less-streamed (tiers 3-5) and per-tier results."""
    counts = np.array([[[u[arm][k] for k in COUNTERS] for arm in ARMS] for u in units], float).reshape(
        len(units), len(ARMS), len(COUNTERS)
    )
    tiers = np.array([-1 if u["tier"] is None else u["tier"] for u in units], int)
    rng = np.random.default_rng([config.draw_seed, 0xB007])
    segments = {
        "all": np.ones(len(units), bool),
        "less_streamed": np.isin(tiers, LESS_STREAMED_TIERS),
        "more_streamed": np.isin(tiers, (0, 1, 2)),
    }
    for tier in sorted(set(tiers.tolist())):
        segments[f"tier_{tier}"] = tiers == tier
    return {
        name: segment_result(counts[mask], config.bootstrap, config.confidence, rng) for name, mask in segments.items()
    }


# ------------------------------------------------------------------------------------------ driver


def held_out_days(config: ABTestConfig) -> tuple[list[datetime.date], dict]:
    """The A/B days (given, or every day after both models' test days with user features), checked to come
    after every day either model trained or early-stopped on."""
    splits = {}
    for arm in ARMS:
        metrics = json.loads(artifacts.read_bytes(artifacts.join(config.model_path(arm), "metrics.json")))
        splits[arm] = metrics["split"]
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
            if name.startswith("dt=") and os.path.exists(os.path.join(folder, name, "_SUCCESS.json"))
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


def ensure_models(config: ABTestConfig, examples: str | None) -> dict:
    """The two arms' models: as they are when both exist (e.g. trained by ``make evaluate``); otherwise the
    ablations' baseline and joint runs of ``model_seed`` are trained with the ablations' defaults."""
    paths = {setup: config.model_path(arm) for setup, arm in (("baseline", "control"), ("joint", "treatment"))}
    if all(artifacts.exists(artifacts.join(p, "manifest.json")) for p in paths.values()):
        return {setup: {"reused": True, "seconds": 0.0, "path": p} for setup, p in paths.items()}
    if config.control and config.treatment:
        missing = [p for p in paths.values() if not artifacts.exists(artifacts.join(p, "manifest.json"))]
        raise FileNotFoundError(f"no trained model at {missing}: train it, or leave --control/--treatment unset")
    from evaluation.ablations import EvaluateConfig, run_setup, table_fingerprint

    evaluate = EvaluateConfig(
        examples=examples or layout.join(config.data_root, "examples"),
        models=config.models,
        out=config.out,
        seeds=(config.model_seed,),
        setups=("baseline", "joint"),
    )
    table = table_fingerprint(evaluate.examples)
    trained = {}
    for setup in evaluate.chosen:
        started = time.perf_counter()
        record = run_setup(evaluate, setup, config.model_seed, table)
        trained[setup.name] = {"reused": record["reused"], "seconds": round(time.perf_counter() - started, 2)}
    return trained


def run_abtest(config: ABTestConfig, examples: str | None = None) -> dict:
    """The whole test; writes ``<out>/abtest.json`` and returns it (with the served users of each unit)."""
    started = time.perf_counter()
    table = examples or layout.join(config.data_root, "examples")
    identity = report_identity(table, layout.world_dir(config.data_root))
    check_same_run(config.out, "abtest.json", identity)
    models = ensure_models(config, examples)
    days, splits = held_out_days(config)
    world = World.load(layout.world_dir(config.data_root))
    own_scratch = config.work_dir is None
    scratch = scratch_root(config.data_root, config.work_dir or tempfile.mkdtemp(prefix="podtarget-abtest-"))
    units, per_day = [], {}
    try:
        for day in days:
            day_units, timing = run_day(config, world, scratch, day)
            units += day_units
            per_day[day.isoformat()] = {**timing, "campaigns": len(day_units)}
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    t0 = time.perf_counter()
    segments = summarize(units, config)
    bootstrap_seconds = round(time.perf_counter() - t0, 2)
    result = {
        "config": {
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "days"},
            "days": [d.isoformat() for d in days],
            "control_model": config.model_path("control"),
            "treatment_model": config.model_path("treatment"),
            "heads": HEADS,
            "less_streamed_tiers": list(LESS_STREAMED_TIERS),
        },
        "report_identity": identity,
        "model_splits": splits,
        "serving_context": {
            "hour": config.hour,
            "device": "the user's primary device",
            "creative": "the campaign's lowest-id creative (scoring's choice)",
            "slot_surface": "by creative format: display in home_banner on home, audio and video midroll on "
            "now_playing",
            "prior_exposures": "the user's earlier impressions of the campaign that day in the same arm",
        },
        "segments": segments,
        "units": [{k: v for k, v in u.items() if k not in ARMS} | {a: _public(u[a]) for a in ARMS} for u in units],
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
    artifacts.write_bytes(artifacts.join(config.out, "abtest.json"), artifacts.dumps(result))
    result["served"] = {(u["day"], u["campaign_id"]): {a: u[a]["served_users"] for a in ARMS} for u in units}
    return result


def _public(arm: dict) -> dict:
    return {k: v for k, v in arm.items() if k != "served_users"}


def _days(text: str) -> tuple[datetime.date, ...]:
    if not text:
        return ()
    try:
        if ".." in text:
            first, last = (datetime.date.fromisoformat(x) for x in text.split(".."))
            return tuple(first + datetime.timedelta(days=i) for i in range((last - first).days + 1))
        return tuple(datetime.date.fromisoformat(x) for x in text.split(",") if x)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD..YYYY-MM-DD or a comma list, got {text!r}") from exc


def parse_args(argv: Sequence[str]) -> tuple[ABTestConfig, argparse.Namespace]:
    d = ABTestConfig(data_root="x")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default="./data")
    p.add_argument("--examples", default=None, help="Example table to train missing models (default: under data).")
    p.add_argument("--models", default=d.models)
    p.add_argument("--out", default=d.out)
    p.add_argument("--days", type=_days, default=(), help="Held-out days (default: every day after the test days).")
    p.add_argument("--model_seed", type=int, default=d.model_seed, help="Seed of the ablation runs used.")
    p.add_argument("--control", default=None)
    p.add_argument("--treatment", default=None)
    p.add_argument("--split_seed", type=int, default=d.split_seed)
    p.add_argument("--draw_seed", type=int, default=d.draw_seed)
    p.add_argument("--bootstrap", type=int, default=d.bootstrap)
    p.add_argument("--confidence", type=float, default=d.confidence)
    p.add_argument("--hour", type=int, default=d.hour)
    p.add_argument("--work_dir", default=None, help="Keep the arms' audiences here (default: a temp folder).")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True)
    a, rest = p.parse_known_args(argv)
    fields = {f.name for f in dataclasses.fields(ABTestConfig)}
    values = {k: v for k, v in vars(a).items() if k in fields}
    return ABTestConfig(**values, pipeline_args=tuple(rest)), a


def format_summary(result: dict) -> str:
    lines = [f"{'segment':<14} {'units':>5} " + " ".join(f"{m + ' %':>24}" for m in METRICS)]
    for name, s in result["segments"].items():
        cells = []
        for m in METRICS:
            point, ci = s["lift_pct"].get(m), s["ci_pct"].get(m)
            cells.append("-" if point is None else f"{point:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "-")
        lines.append(f"{name:<14} {s['units']:>5} " + " ".join(f"{c:>24}" for c in cells))
    lines.append(f"wall {result['timing']['wall_seconds']} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_abtest(config, cli.examples)
    print(format_summary(result))
    if cli.report:
        from evaluation.report import write_report

        print(f"report written to {write_report(config.out, world_dir=layout.world_dir(config.data_root))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

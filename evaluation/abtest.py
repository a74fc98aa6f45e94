"""A simulated budget-split online A/B test (``make abtest``) on held-out days, with ad inventory and an auction;
outcomes from the ground truth.

Design (the paper's test, Table 2, replayed on the simulated world):

- **Arms.** Control: the promotions-only model (``baseline`` of the ablations), its PromotionStream head scoring
  ad campaigns (the paper's cold-start baseline, which ignores ad features). Treatment: the 5-task joint model's
  AdStream head. Both score every ad campaign whatever its objective (``--heads=ad:*=<head>``), so the test
  compares the two stream predictions only. The test is run once per model seed (``--model_seeds``): the
  baseline and joint runs of that seed.
- **Audiences** come from the project's scoring pipeline (:func:`podtarget.pipelines.score.run`, the same eligibility
  rules and serving context as ``make score``), run once per seed, arm and day into a scratch data root that
  links the real inputs. Every eligible user is scored.
- **Budget split.** Users are split between the arms by a stable hash of ``user_id`` and ``--split_seed`` (half
  each), and every ad campaign active on the day gives each arm half of its daily budget (``budget / campaign
  days``, as the simulator paces it).
- **Inventory.** Ads are shown only where a user has an ad slot: each user's slots of the day are drawn from the
  world's session model (:func:`podtarget.simulator.behaviour.ad_opportunities`: sessions from the user's activity, ad
  slots per session, none for premium users), with a seed of their own (``--inventory_seed``), the same for
  every model seed. Both arms see the same kind of inventory; the models decide only who gets each slot.
- **Auction.** Each slot, in time order, goes to a second-price auction among the campaigns the user is eligible
  for, that are under the frequency cap for the user and can still pay. A campaign bids its CPM scaled by the
  arm's predicted stream probability of the user relative to its mean over the campaign's eligible users in the
  arm (value-based bidding: the average bid is the CPM, the arm's ranking decides where it bids high). Bids
  below the reserve (``--reserve_cpm``) are not entered. The winner pays the larger of the second bid and the
  reserve, per impression (CPM / 1000), from the arm's half budget.
- **Outcomes** are drawn from :meth:`podtarget.simulator.World.outcome_probabilities` with a seeded generator per (model
  seed, day, arm), in the context scoring assumed (the campaign's lowest-id creative in the slot and surface of
  its format, the user's primary device) at the hour of the slot, with the user's earlier impressions of the
  campaign that day as ``prior_exposures`` (ad fatigue). A click is drawn first, then a stream given it.
- **Metrics**, per arm: impressions, reach (distinct users per campaign-day), spend, clicks, streams,
  impression-to-stream rate (i2s), CTR, eCPS (spend / streams), and the expected i2s (mean true stream
  probability, free of draw noise). Lifts are treatment / control - 1, overall, for less-streamed podcasts
  (popularity tiers 3-5, the paper's low-stream tiers) and per tier, with percentile bootstrap intervals that
  resample the model seeds and the campaign-days (both arms of a campaign-day together).

::

    python -m podtarget.evaluation.abtest --data_root=./data --models=models/eval-demo --out=reports/eval \\
        [--days=2026-03-11..2026-03-15] [--model_seeds=1,2,3] [--control=models/x --treatment=models/y]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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

from podtarget.common.checks import check_int, check_number, invalid
from podtarget.common.cli import CommandParser, configure_logging, warn_if_threads_spin
from podtarget.common.days import parse_days
from podtarget.common.hashing import splitmix64
from podtarget.evaluation import intervals
from podtarget.evaluation.outputs import DEFAULT_OUT, check_same_run, report_identity
from podtarget.model import artifacts
from podtarget.pipelines import score
from podtarget.pipelines.daily import load_podcast_features, read_snapshot
from podtarget.schemas import layout
from podtarget.simulator.behaviour import ad_opportunities
from podtarget.simulator.config import AD_SLOTS, SURFACES
from podtarget.simulator.world import World, rng_for
from podtarget.transforms.arrow.candidates import ScoringConfig, plan_campaigns
from podtarget.transforms.runtime.storage import read_parquet

log = logging.getLogger(__name__)

ARMS = ("control", "treatment")
HEADS = {"control": "PromotionStream", "treatment": "AdStream"}
LESS_STREAMED_TIERS = (3, 4, 5)
COUNTERS = ("impressions", "reach", "spend_micros", "clicks", "streams", "expected_streams")
METRICS = ("i2s", "ecps", "ctr", "streams", "reach", "impressions", "expected_i2s")
PAPER = {
    "all": {"i2s": 18.0, "ecps": -20.0, "ctr": 9.0, "streams": 18.0},
    "less_streamed": {"i2s": 24.0, "ecps": -22.0, "ctr": 10.0, "streams": 27.0},
    # i2s by tier (tier 1 not given individually); mean CPS: tiers 0-2 "-4% to -17%", tiers 3-5 -20, -24, -38.
    "i2s_by_tier": {"0": 7.0, "2": 20.0, "3": 27.0, "4": 33.0, "5": 60.0},
    "cps_by_tier": {"3": -20.0, "4": -24.0, "5": -38.0},
}


def _seeds(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in value)


@dataclasses.dataclass
class ABTestConfig:
    """What ``make abtest`` runs."""

    data_root: str
    models: str = "models/eval-demo"  # the ablations' runs: baseline-s<seed> and joint-s<seed>
    out: str = DEFAULT_OUT  # the committed record, reports/eval, only when asked for by name
    days: tuple[datetime.date, ...] = ()  # empty: every day after the models' test days with user features
    model_seeds: tuple[int, ...] = (1,)
    control: str | None = None  # a model folder instead of <models>/baseline-s<seed> (one seed only)
    treatment: str | None = None  # a model folder instead of <models>/joint-s<seed> (one seed only)
    split_seed: int = 11
    draw_seed: int = 29
    inventory_seed: int = 37
    reserve_cpm_micros: int = 5_000_000  # below every CPM the simulator books (6-24 currency units)
    bootstrap: int = 2000
    confidence: float = 0.95
    hour: int = 19
    work_dir: str | None = None  # scratch data root for the audiences (default: a temporary folder, removed)
    pipeline_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = "ABTestConfig"
        self.days = tuple(self.days)
        self.model_seeds = _seeds(self.model_seeds)
        if not self.data_root or "://" in self.data_root:
            raise invalid(owner, "data_root", "a local folder (the scratch root links it), e.g. ./data", self.data_root)
        check_int(owner, "bootstrap", self.bootstrap, low=100)  # fewer resamples make percentile ends noise
        check_number(owner, "confidence", self.confidence, low=0.5, below=1)
        check_int(owner, "hour", self.hour, low=0, high=23)
        if len(set(self.days)) != len(self.days):
            raise invalid(owner, "days", "distinct days", [d.isoformat() for d in self.days])
        if not self.model_seeds or len(set(self.model_seeds)) != len(self.model_seeds):
            raise invalid(owner, "model_seeds", "distinct ints, at least one", self.model_seeds)
        if (self.control or self.treatment) and len(self.model_seeds) > 1:
            expected = "a single seed when control or treatment is given (each names one model)"
            raise invalid(owner, "model_seeds", expected, self.model_seeds)
        check_int(owner, "reserve_cpm_micros", self.reserve_cpm_micros, low=0)
        for name in ("split_seed", "draw_seed", "inventory_seed"):
            check_int(owner, name, getattr(self, name), low=0)

    def model_path(self, arm: str, seed: int) -> str:
        given = self.control if arm == "control" else self.treatment
        setup = "baseline" if arm == "control" else "joint"
        return given or artifacts.join(self.models, f"{setup}-s{seed}")


# ------------------------------------------------------------------------------------------ the auction


@dataclasses.dataclass(frozen=True)
class Won:
    """The slots one arm sold on one day: per impression, the slot, the (user, campaign) pair and the price."""

    slot: np.ndarray  # index into the day's slots
    pair: np.ndarray  # index into the pairs given to the auction
    price_micros: np.ndarray  # paid per impression (the clearing CPM / 1000)
    prior_exposures: np.ndarray  # the user's earlier impressions of the campaign today


def value_bids(pair_campaign: np.ndarray, score: np.ndarray, cpm_micros: np.ndarray) -> np.ndarray:
    """Each pair's bid (a CPM, micros): the campaign's CPM times the pair's predicted probability over the mean of
    the campaign's pairs. A campaign whose pairs all score 0 bids its CPM on each."""
    sums = np.bincount(pair_campaign, weights=score, minlength=len(cpm_micros))
    counts = np.bincount(pair_campaign, minlength=len(cpm_micros))
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)[pair_campaign]
    relative = np.divide(score, mean, out=np.ones_like(score, dtype=float), where=mean > 0)
    return cpm_micros[pair_campaign] * relative


def run_auction(
    slot_users: np.ndarray,
    pair_user: np.ndarray,
    pair_campaign: np.ndarray,
    pair_bid: np.ndarray,
    budget_micros: np.ndarray,
    cap: int,
    reserve_cpm_micros: float,
) -> Won:
    """Sell each slot (``slot_users``, in time order) in a second-price auction among the eligible pairs of its user
    (``pair_user``, ``pair_campaign`` index into ``budget_micros``, ``pair_bid`` a CPM): a campaign enters while
    under ``cap`` impressions to the user today and while its budget covers its own bid; bids below the reserve
    never enter. The winner pays max(second bid, reserve) / 1000."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 impression per user, campaign and day; got {cap}")
    if not len(pair_user) == len(pair_campaign) == len(pair_bid):
        raise ValueError("pair_user, pair_campaign and pair_bid must have one entry per pair")
    keep = np.flatnonzero(pair_bid >= reserve_cpm_micros)
    order = keep[np.argsort(pair_user[keep], kind="stable")]
    sorted_users = pair_user[order]
    starts = np.searchsorted(sorted_users, slot_users, "left")
    ends = np.searchsorted(sorted_users, slot_users, "right")
    remaining = np.asarray(budget_micros, np.float64).copy()
    shown = np.zeros(len(pair_user), np.int64)
    won: list[tuple[int, int, float, int]] = []
    for i in np.flatnonzero(ends > starts):
        pairs = order[starts[i] : ends[i]]
        bids = pair_bid[pairs]
        ok = (shown[pairs] < cap) & (remaining[pair_campaign[pairs]] >= bids / 1000.0)
        if not ok.any():
            continue
        live = np.where(ok, bids, -np.inf)
        best = int(np.argmax(live))
        live[best] = -np.inf
        clearing = max(float(live.max()), float(reserve_cpm_micros))
        pair = int(pairs[best])
        price = clearing / 1000.0
        remaining[pair_campaign[pair]] -= price
        won.append((int(i), pair, price, int(shown[pair])))
        shown[pair] += 1
    if not won:
        empty = np.zeros(0, np.int64)
        return Won(empty, empty, np.zeros(0), empty)
    slots, pairs, prices, priors = (np.array(col) for col in zip(*won, strict=True))
    return Won(slots.astype(np.int64), pairs.astype(np.int64), prices.astype(np.float64), priors.astype(np.int64))


def arm_of_users(user_ids: np.ndarray, split_seed: int) -> np.ndarray:
    """0 (control) or 1 (treatment) per user: a stable hash, independent of the day and of the models."""
    mixed = splitmix64(np.asarray(user_ids, np.int64).astype(np.uint64) ^ splitmix64(np.array([split_seed]))[0])
    return (mixed & np.uint64(1)).astype(np.int8)


def draw_outcomes(
    world: World,
    users: np.ndarray,
    podcasts: np.ndarray,
    creatives: np.ndarray,
    ad_slots: np.ndarray,
    surfaces: np.ndarray,
    hours: np.ndarray,
    prior_exposures: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Clicks and streams of impressions, drawn from the ground truth. Ids are 1-based (``user_id`` etc.);
    ``ad_slots`` and ``surfaces`` are codes into ``AD_SLOTS`` and ``SURFACES``."""
    u = np.asarray(users, np.int64) - 1
    p = world.outcome_probabilities(
        u,
        np.asarray(podcasts, np.int64) - 1,
        "ad",
        surface=np.asarray(surfaces),
        device=world.users.device[u],
        hour=np.asarray(hours),
        creative=np.asarray(creatives, np.int64) - 1,
        ad_slot=np.asarray(ad_slots),
        prior_exposures=np.asarray(prior_exposures),
    )
    n = len(u)
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


def score_arm(config: ABTestConfig, scratch: str, day: datetime.date, arm: str, seed: int, n_users: int) -> pa.Table:
    """Every eligible (user, ad campaign) pair of ``day`` scored by the arm's head, through the scoring pipeline."""
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
    return audiences.select(["campaign_id", "user_id", "score"])


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


def day_slots(world: World, day: datetime.date, config: ABTestConfig) -> dict[str, np.ndarray]:
    """The day's ad slots of every user (ids, 1-based), the same for every model seed and arm."""
    users = np.arange(world.config.n_users)
    slots = ad_opportunities(world, world.day_offset(day), users, rng_for(config.inventory_seed, day.toordinal()))
    return {**slots, "user": slots["user"] + 1}


def serve_arm(
    world: World,
    config: ABTestConfig,
    day: datetime.date,
    seed: int,
    arm_index: int,
    campaigns: list[dict],
    scored: pa.Table,
    slots: dict[str, np.ndarray],
) -> list[dict]:
    """One arm's auctions of one day; per campaign its counters (and the users it served, for the tests)."""
    index = {c["campaign_id"]: i for i, c in enumerate(campaigns)}
    campaign_ids = scored.column("campaign_id").to_numpy()
    users = scored.column("user_id").to_numpy().astype(np.int64)
    mine = np.isin(campaign_ids, list(index)) & (arm_of_users(users, config.split_seed) == arm_index)
    pair_campaign = np.array([index[c] for c in campaign_ids[mine].tolist()], np.int64)
    pair_user = users[mine]
    cpm = np.array([c["cpm_micros"] for c in campaigns], np.float64)
    budget = np.array([c["budget_micros"] / ((c["end_date"] - c["start_date"]).days + 1) / 2.0 for c in campaigns])
    bids = value_bids(pair_campaign, scored.column("score").to_numpy()[mine].astype(np.float64), cpm)
    in_arm = arm_of_users(slots["user"], config.split_seed) == arm_index
    slot_users, slot_hours = slots["user"][in_arm], slots["hour"][in_arm]
    won = run_auction(
        slot_users,
        pair_user,
        pair_campaign,
        bids,
        budget,
        world.config.frequency_cap_per_day,
        config.reserve_cpm_micros,
    )
    camp = pair_campaign[won.pair]
    served_users = pair_user[won.pair]

    def per_campaign(key: str) -> np.ndarray:
        return np.array([campaigns[c][key] for c in camp])

    rng = rng_for(config.draw_seed, seed, day.toordinal(), arm_index)
    drawn = draw_outcomes(
        world,
        served_users,
        per_campaign("podcast_id"),
        per_campaign("creative_id"),
        np.array([AD_SLOTS.index(c["ad_slot"]) for c in campaigns], np.int64)[camp] if len(camp) else camp,
        np.array([SURFACES.index(c["surface"]) for c in campaigns], np.int64)[camp] if len(camp) else camp,
        slot_hours[won.slot],
        won.prior_exposures,
        rng,
    )
    n = len(campaigns)
    eligible = np.bincount(pair_campaign, minlength=n)
    out = []
    for c in range(n):
        mask = camp == c
        out.append(
            {
                "eligible_users": int(eligible[c]),
                "budget_micros": float(budget[c]),
                "impressions": int(mask.sum()),
                "reach": int(len(np.unique(served_users[mask]))),
                "spend_micros": float(won.price_micros[mask].sum()),
                "clicks": int(drawn["click"][mask].sum()),
                "streams": int(drawn["stream"][mask].sum()),
                "expected_streams": float(drawn["p_stream"][mask].sum()),
                "max_per_user": int(np.bincount(served_users[mask]).max()) if mask.any() else 0,
                "served_users": served_users[mask],  # dropped before writing; the tests check them
                "prices_micros": won.price_micros[mask],  # dropped before writing
                "slots_in_arm": int(len(slot_users)),
            }
        )
    return out


def run_day(config: ABTestConfig, world: World, scratch: str, day: datetime.date, seed: int) -> tuple[list[dict], dict]:
    """Both arms of one model seed on one day: per campaign, each arm's counters; and the day's timing."""
    t0 = time.perf_counter()
    scored = {arm: score_arm(config, scratch, day, arm, seed, world.config.n_users) for arm in ARMS}
    scoring_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    context = campaign_context(config.data_root, day, config).to_pylist()
    # Such a campaign has nothing to split or to price: it buys no impressions in either arm.
    campaigns = [c for c in context if c["budget_micros"] and c["cpm_micros"]]
    slots = day_slots(world, day, config)
    by_arm = {arm: serve_arm(world, config, day, seed, i, campaigns, scored[arm], slots) for i, arm in enumerate(ARMS)}
    units = []
    for i, c in enumerate(campaigns):
        unit: dict[str, Any] = {
            "seed": seed,
            "day": day.isoformat(),
            "campaign_id": c["campaign_id"],
            "podcast_id": c["podcast_id"],
            "tier": c["podcast_popularity_tier"],
            "cpm_micros": c["cpm_micros"],
            "frequency_cap": world.config.frequency_cap_per_day,
        }
        unit.update({arm: by_arm[arm][i] for arm in ARMS})
        units.append(unit)
    timing = {"scoring_seconds": round(scoring_seconds, 2), "serving_seconds": round(time.perf_counter() - t0, 2)}
    timing["slots"] = int(len(slots["user"]))
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
        "reach": float(totals["reach"]),
        "impressions": float(imps),
        "expected_i2s": totals["expected_streams"] / imps if imps else None,
    }


def lift_arrays(summed: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, treatment / control - 1 in % from counters summed to ``[..., arm, counter]`` (NaN where a
    rate or the control's figure is undefined)."""
    c = {k: summed[..., :, i] for i, k in enumerate(COUNTERS)}
    with np.errstate(invalid="ignore", divide="ignore"):
        figures = {
            "i2s": c["streams"] / c["impressions"],
            "ctr": c["clicks"] / c["impressions"],
            "ecps": c["spend_micros"] / c["streams"],
            "streams": c["streams"],
            "reach": c["reach"],
            "impressions": c["impressions"],
            "expected_i2s": c["expected_streams"] / c["impressions"],
        }
        return {m: 100.0 * (v[..., 1] / v[..., 0] - 1.0) for m, v in figures.items()}


def segment_result(counts: np.ndarray, config: ABTestConfig, rng: np.random.Generator) -> dict:
    """``counts[seed, unit, arm, counter]``: totals and rates per arm, lifts with percentile bootstrap intervals
    over model seeds and units (campaign-days, both arms resampled together)."""
    n_seeds, n_units = counts.shape[:2]
    totals = counts.sum(axis=(0, 1))
    arms: dict[str, dict[str, float | None]] = {}
    for i, arm in enumerate(ARMS):
        counters = dict(zip(COUNTERS, map(float, totals[i]), strict=True))
        arms[arm] = {**counters, **rates(counters)}
    point = {m: (float(v) if np.isfinite(v) else None) for m, v in lift_arrays(totals).items()}
    out: dict[str, Any] = {"units": n_units, "seeds": n_seeds, "arms": arms, "lift_pct": point, "ci_pct": {}}
    if n_units == 0:
        return out

    def figures(summed: np.ndarray) -> np.ndarray:
        lifts = lift_arrays(summed)
        return np.stack([lifts[m] for m in METRICS])

    draws = intervals.bootstrap_lifts(counts, figures, config.bootstrap, rng)
    for i, m in enumerate(METRICS):
        ci = intervals.percentile_interval(draws[i], config.confidence)
        if ci is not None and point[m] is not None:
            out["ci_pct"][m] = ci
            finite = draws[i][np.isfinite(draws[i])]
            out.setdefault("share_above_zero", {})[m] = float((finite > 0).mean())
    return out


def summarize(units: list[dict], config: ABTestConfig) -> dict:
    """Overall, less-streamed (tiers 3-5), more-streamed (tiers 0-2) and per-tier results."""
    seeds = sorted({u["seed"] for u in units})
    keys = sorted({(u["day"], u["campaign_id"]) for u in units})
    position = {k: i for i, k in enumerate(keys)}
    counts = np.zeros((len(seeds), len(keys), len(ARMS), len(COUNTERS)))
    tiers = np.full(len(keys), -1)
    for u in units:
        j = position[(u["day"], u["campaign_id"])]
        counts[seeds.index(u["seed"]), j] = [[u[arm][k] for k in COUNTERS] for arm in ARMS]
        tiers[j] = -1 if u["tier"] is None else u["tier"]
    rng = np.random.default_rng([config.draw_seed, 0xB007])
    segments = {
        "all": np.ones(len(keys), bool),
        "less_streamed": np.isin(tiers, LESS_STREAMED_TIERS),
        "more_streamed": np.isin(tiers, (0, 1, 2)),
    }
    for tier in sorted(set(tiers.tolist())):
        segments[f"tier_{tier}"] = tiers == tier
    return {name: segment_result(counts[:, mask], config, rng) for name, mask in segments.items()}


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
    from podtarget.evaluation.ablations import EvaluateConfig, all_setups, resolve_days, run_setup, table_fingerprint

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
    """The whole test; writes ``<out>/abtest.json`` and returns it (with the served users of each unit)."""
    started = time.perf_counter()
    table = examples or layout.join(config.data_root, "examples")
    identity = report_identity(table, layout.world_dir(config.data_root))
    check_same_run(config.out, "abtest.json", identity)
    models = ensure_models(config, examples, evaluate_args)
    days, splits = held_out_days(config)
    world = World.load(layout.world_dir(config.data_root))
    own_scratch = config.work_dir is None
    scratch = scratch_root(config.data_root, config.work_dir or tempfile.mkdtemp(prefix="podtarget-abtest-"))
    units, per_day = [], {}
    try:
        for seed in config.model_seeds:
            for day in days:
                day_units, timing = run_day(config, world, scratch, day, seed)
                units += day_units
                per_day[f"{day.isoformat()}/s{seed}"] = {**timing, "campaigns": len(day_units)}
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
            "control_models": [config.model_path("control", s) for s in config.model_seeds],
            "treatment_models": [config.model_path("treatment", s) for s in config.model_seeds],
            "heads": HEADS,
            "less_streamed_tiers": list(LESS_STREAMED_TIERS),
        },
        "report_identity": identity,
        "model_splits": splits,
        "serving_context": {
            "hour": f"the hour of the ad slot's session (scoring assumed hour {config.hour})",
            "device": "the user's primary device",
            "creative": "the campaign's lowest-id creative (scoring's choice)",
            "slot_surface": "by creative format: display in home_banner on home, audio and video midroll on "
            "now_playing",
            "prior_exposures": "the user's earlier impressions of the campaign that day in the same arm",
        },
        "inventory": inventory_summary(units, per_day),
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
    result["served"] = {(u["seed"], u["day"], u["campaign_id"]): {a: u[a]["served_users"] for a in ARMS} for u in units}
    result["prices"] = {
        (u["seed"], u["day"], u["campaign_id"]): {a: u[a]["prices_micros"] for a in ARMS} for u in units
    }
    return result


def inventory_summary(units: list[dict], per_day: dict) -> dict:
    """How scarce the inventory was: slots, impressions sold, and how much of the budgets and audiences it
    reached (where a campaign reaches all its eligible users, its ranking cannot matter)."""
    shares, spent = [], []
    for u in units:
        for arm in ARMS:
            a = u[arm]
            if a["eligible_users"]:
                shares.append(a["reach"] / a["eligible_users"])
            if a["budget_micros"]:
                spent.append(a["spend_micros"] / a["budget_micros"])
    shares_a, spent_a = np.array(shares), np.array(spent)
    sold = sum(u[arm]["impressions"] for u in units for arm in ARMS)
    slots = sum(d["slots"] for d in per_day.values())
    return {
        "slots": int(slots),
        "impressions": int(sold),
        "sold_share": sold / slots if slots else None,
        "reach_share_median": float(np.median(shares_a)) if shares_a.size else None,
        "reach_share_mean": float(shares_a.mean()) if shares_a.size else None,
        "reached_every_eligible_user_share": float((shares_a >= 0.999).mean()) if shares_a.size else None,
        "budget_spent_median": float(np.median(spent_a)) if spent_a.size else None,
        "budget_exhausted_share": float((spent_a >= 0.99).mean()) if spent_a.size else None,
    }


def _public(arm: dict) -> dict:
    return {k: v for k, v in arm.items() if k not in ("served_users", "prices_micros")}


def _days(text: str) -> tuple[datetime.date, ...]:
    try:
        return tuple(parse_days(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


TRAINING_OPTIONS = {
    "split": str,
    "valid_count": int,
    "test_count": int,
    "epochs": int,
    "patience": int,
    "batch_size": int,
    "max_batches_per_epoch": int,
}


def parse_args(argv: Sequence[str]) -> tuple[ABTestConfig, argparse.Namespace]:
    d = ABTestConfig(data_root="x")
    p = CommandParser("podtarget.evaluation.abtest", __doc__)
    p.add_argument("--data_root", default="./data")
    p.add_argument("--examples", default=None, help="Example table to train missing models (default: under data).")
    p.add_argument("--models", default=d.models)
    p.add_argument("--out", default=d.out)
    p.add_argument("--days", type=_days, default=(), help="Held-out days (default: every day after the test days).")
    p.add_argument("--model_seeds", type=_ints, default=d.model_seeds, help="Seeds of the ablation runs used.")
    p.add_argument("--control", default=None)
    p.add_argument("--treatment", default=None)
    p.add_argument("--split_seed", type=int, default=d.split_seed)
    p.add_argument("--draw_seed", type=int, default=d.draw_seed)
    p.add_argument("--inventory_seed", type=int, default=d.inventory_seed)
    p.add_argument("--reserve_cpm_micros", type=int, default=d.reserve_cpm_micros)
    p.add_argument("--bootstrap", type=int, default=d.bootstrap)
    p.add_argument("--confidence", type=float, default=d.confidence)
    p.add_argument("--hour", type=int, default=d.hour)
    p.add_argument("--work_dir", default=None, help="Keep the arms' audiences here (default: a temp folder).")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True)
    # Missing models are trained as `make evaluate` would: the same settings give the same cached runs.
    for name, kind in TRAINING_OPTIONS.items():
        p.add_argument(f"--{name}", type=kind, default=None, help="For missing models: as in evaluation.ablations.")
    a, rest = p.parse_known_args(argv)
    fields = {f.name for f in dataclasses.fields(ABTestConfig)}
    values = {k: v for k, v in vars(a).items() if k in fields}
    a.evaluate_args = {k: getattr(a, k) for k in TRAINING_OPTIONS if getattr(a, k) is not None}
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
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_abtest(config, cli.examples, cli.evaluate_args)
    print(format_summary(result))
    if cli.report:
        from podtarget.evaluation.report import write_report

        print(f"report written to {write_report(config.out, world_dir=layout.world_dir(config.data_root))}")
    return 0


if __name__ == "__main__":
    from podtarget.common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

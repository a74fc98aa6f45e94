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
  (:func:`podtarget.simulator.behaviour.ad_opportunities`: sessions from the user's activity, ad slots per
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

from podtarget.common.checks import check_choice, check_int, check_number, invalid
from podtarget.common.cli import CommandParser, configure_logging, warn_if_threads_spin
from podtarget.common.days import parse_days
from podtarget.evaluation import abtest_figures
from podtarget.evaluation.ablations import parse_ints
from podtarget.evaluation.abtest_figures import COUNTERS, LESS_STREAMED_TIERS, METRICS
from podtarget.evaluation.auction import audience_pairs, audience_ranks, run_auction, value_bids
from podtarget.evaluation.outputs import DEFAULT_OUT, check_same_run, report_identity
from podtarget.evaluation.truth import shared_stream_logit
from podtarget.model import artifacts
from podtarget.pipelines import score
from podtarget.schemas import layout
from podtarget.simulator.behaviour import ad_opportunities
from podtarget.simulator.config import AD_SLOTS, SURFACES
from podtarget.simulator.world import World, rng_for
from podtarget.transforms.arrow.candidates import ScoringConfig, plan_campaigns
from podtarget.transforms.runtime.day_inputs import load_podcast_features, read_snapshot
from podtarget.transforms.runtime.storage import read_parquet

log = logging.getLogger(__name__)

MODEL_ARMS = ("control", "treatment")
HEADS = {"control": "PromotionStream", "treatment": "AdStream"}
REFERENCE_ARMS = {
    "random": "a uniform random score per (user, campaign) pair",
    "truth_shared": "the ground truth without its ad-only terms: user x show affinity, language match, show appeal",
    "oracle": "the world's true stream probability in the serving context",
}
ARMS = (*MODEL_ARMS, *REFERENCE_ARMS)
DESIGNS = ("auction", "audience")
PAPER = {
    "all": {"i2s": 18.0, "ecps": -20.0, "ctr": 9.0, "streams": 18.0},
    "less_streamed": {"i2s": 24.0, "ecps": -22.0, "ctr": 10.0, "streams": 27.0},
    # i2s by tier (tier 1 not given individually); mean CPS: tiers 0-2 "-4% to -17%", tiers 3-5 -20, -24, -38.
    "i2s_by_tier": {"0": 7.0, "2": 20.0, "3": 27.0, "4": 33.0, "5": 60.0},
    "cps_by_tier": {"3": -20.0, "4": -24.0, "5": -38.0},
}
__all__ = ["ARMS", "COUNTERS", "DESIGNS", "LESS_STREAMED_TIERS", "METRICS", "ABTestConfig", "run_abtest"]


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
    arms: tuple[str, ...] = ARMS  # control and treatment, and any of the reference arms
    designs: tuple[str, ...] = DESIGNS
    # The audience design's shares of each campaign's eligible users bought; arms are read at the control's
    # delivery at matched_share (one of them).
    audience_shares: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
    matched_share: float = 0.1
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
        self.arms, self.designs = tuple(self.arms), tuple(self.designs)
        self.audience_shares = tuple(float(q) for q in self.audience_shares)
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
        known = [a for a in ARMS if a in self.arms]
        if self.arms[:2] != MODEL_ARMS or len(set(self.arms)) != len(self.arms) or len(known) != len(self.arms):
            expected = f"'control', 'treatment', then any of {list(REFERENCE_ARMS)} (lifts are against control)"
            raise invalid(owner, "arms", expected, self.arms)
        if (
            not self.designs
            or any(d not in DESIGNS for d in self.designs)
            or len(set(self.designs)) < len(self.designs)
        ):
            raise invalid(owner, "designs", f"some of {list(DESIGNS)}, at least one", self.designs)
        shares_ok = all(0 < q <= 1 for q in self.audience_shares) and len(set(self.audience_shares)) > 1
        if not shares_ok or list(self.audience_shares) != sorted(self.audience_shares):
            raise invalid(owner, "audience_shares", "two or more increasing shares in (0, 1]", self.audience_shares)
        check_choice(owner, "matched_share", self.matched_share, self.audience_shares)
        check_int(owner, "reserve_cpm_micros", self.reserve_cpm_micros, low=0)
        for name in ("draw_seed", "inventory_seed"):
            check_int(owner, name, getattr(self, name), low=0)

    def model_path(self, arm: str, seed: int) -> str:
        given = self.control if arm == "control" else self.treatment
        setup = "baseline" if arm == "control" else "joint"
        return given or artifacts.join(self.models, f"{setup}-s{seed}")


def draw_outcomes(
    world: World,
    users: np.ndarray,
    podcasts: np.ndarray,
    creatives: np.ndarray,
    ad_slots: np.ndarray,
    surfaces: np.ndarray,
    hours: np.ndarray,
    prior_exposures: np.ndarray,
    uniforms: np.ndarray,
) -> dict[str, np.ndarray]:
    """Clicks and streams of impressions, drawn from the ground truth with the given random numbers
    (``uniforms[impression] = (click draw, stream draw)``, e.g. the slot's, the same in every arm). Ids are 1-based
    (``user_id`` etc.); ``ad_slots`` and ``surfaces`` are codes into ``AD_SLOTS`` and ``SURFACES``."""
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
    click = uniforms[:, 0] < p.click
    stream = uniforms[:, 1] < np.where(click, p.stream_if_click, p.stream_if_no_click)
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
    """The day's ad slots of every user (ids, 1-based), the same for every model seed and arm, with each slot's
    random numbers for its outcomes (``uniforms``: click and stream draws)."""
    users = np.arange(world.config.n_users)
    slots = ad_opportunities(world, world.day_offset(day), users, rng_for(config.inventory_seed, day.toordinal()))
    uniforms = rng_for(config.draw_seed, day.toordinal()).random((len(slots["user"]), 2))
    return {**slots, "user": slots["user"] + 1, "uniforms": uniforms}


@dataclasses.dataclass
class DayMarket:
    """What every arm of one day shares: the campaigns with their serving context and money, the eligible (user,
    campaign) pairs (campaign-major, as scored), and the slots."""

    campaigns: list[dict]
    pair_campaign: np.ndarray  # index into campaigns
    pair_user: np.ndarray  # user_id (1-based)
    slots: dict[str, np.ndarray]
    cap: int

    @property
    def budget(self) -> np.ndarray:
        """Each campaign's daily budget (``budget / campaign days``, as the simulator paces it)."""
        return np.array([c["budget_micros"] / ((c["end_date"] - c["start_date"]).days + 1) for c in self.campaigns])

    def column(self, key: str) -> np.ndarray:
        return np.array([c[key] for c in self.campaigns])


def reference_scores(
    world: World, market: DayMarket, config: ABTestConfig, day: datetime.date
) -> dict[str, np.ndarray]:
    """The reference arms' scores of the day's pairs: the true stream probability in the serving context (the
    campaign's creative, slot, surface and hour, the user's primary device, no earlier impression), its terms
    both channels share, and a uniform random number."""
    user = market.pair_user - 1
    podcast = market.column("podcast_id")[market.pair_campaign] - 1
    ad_slot = np.array([AD_SLOTS.index(c["ad_slot"]) for c in market.campaigns], np.int64)[market.pair_campaign]
    surface = np.array([SURFACES.index(c["surface"]) for c in market.campaigns], np.int64)[market.pair_campaign]
    p = world.outcome_probabilities(
        user,
        podcast,
        "ad",
        surface=surface,
        device=world.users.device[user],
        hour=np.full(len(user), config.hour),
        creative=market.column("creative_id")[market.pair_campaign] - 1,
        ad_slot=ad_slot,
        prior_exposures=np.zeros(len(user), np.int64),
    )
    intercept = world.config.ground_truth.stream_intercept_ad
    shared = 1.0 / (1.0 + np.exp(-(intercept + shared_stream_logit(world, user, podcast))))
    random = rng_for(config.draw_seed, day.toordinal(), 0xA4D).random(len(user))
    return {"oracle": p.stream, "truth_shared": shared, "random": random}


def serve(world: World, market: DayMarket, config: ABTestConfig, pairs: np.ndarray, score: np.ndarray) -> list[dict]:
    """One arm's day on every slot: the auctions among the given pairs (positions into the market's pairs) bidding
    value from ``score`` (one per given pair); per campaign its counters (and the users it served and the prices
    paid, for the tests)."""
    pair_campaign, pair_user = market.pair_campaign[pairs], market.pair_user[pairs]
    cpm = market.column("cpm_micros").astype(np.float64)
    bids = value_bids(pair_campaign, score, cpm)
    slots = market.slots
    won = run_auction(
        slots["user"], pair_user, pair_campaign, bids, market.budget, market.cap, config.reserve_cpm_micros
    )
    camp = pair_campaign[won.pair]
    served_users = pair_user[won.pair]
    codes = {
        "ad_slot": np.array([AD_SLOTS.index(c["ad_slot"]) for c in market.campaigns], np.int64),
        "surface": np.array([SURFACES.index(c["surface"]) for c in market.campaigns], np.int64),
    }
    drawn = draw_outcomes(
        world,
        served_users,
        market.column("podcast_id")[camp] if len(camp) else camp,
        market.column("creative_id")[camp] if len(camp) else camp,
        codes["ad_slot"][camp],
        codes["surface"][camp],
        slots["hour"][won.slot],
        won.prior_exposures,
        slots["uniforms"][won.slot],
    )
    n = len(market.campaigns)
    eligible = np.bincount(market.pair_campaign, minlength=n)
    bidding = np.bincount(pair_campaign, minlength=n)

    def per_campaign(values: np.ndarray) -> np.ndarray:
        return np.bincount(camp, weights=values.astype(np.float64), minlength=n)

    counters = {
        "impressions": np.bincount(camp, minlength=n),
        "spend_micros": per_campaign(won.price_micros),
        "clicks": per_campaign(drawn["click"]),
        "streams": per_campaign(drawn["stream"]),
        "expected_streams": per_campaign(drawn["p_stream"]),
    }
    order = np.argsort(camp, kind="stable")
    bounds = np.searchsorted(camp[order], np.arange(n + 1))
    out = []
    for c in range(n):
        mine = order[bounds[c] : bounds[c + 1]]
        users_c = served_users[mine]
        out.append(
            {
                "eligible_users": int(eligible[c]),
                "bidding_users": int(bidding[c]),  # the audience, in the audience design
                "budget_micros": float(market.budget[c]),
                "impressions": int(counters["impressions"][c]),
                "reach": int(len(np.unique(users_c))),
                "spend_micros": float(counters["spend_micros"][c]),
                "clicks": int(counters["clicks"][c]),
                "streams": int(counters["streams"][c]),
                "expected_streams": float(counters["expected_streams"][c]),
                "max_per_user": int(np.unique(users_c, return_counts=True)[1].max()) if len(mine) else 0,
                "served_users": users_c,  # dropped before writing; the tests check them
                "prices_micros": won.price_micros[mine],  # dropped before writing
            }
        )
    return out


def serve_designs(world: World, market: DayMarket, config: ABTestConfig, score: np.ndarray) -> dict[str, Any]:
    """One arm's day in every design: per design (and audience share) the per-campaign counters."""
    out: dict[str, Any] = {}
    every = np.arange(len(market.pair_user))
    if "auction" in config.designs:
        out["auction"] = serve(world, market, config, every, score)
    if "audience" in config.designs:
        out["audience"] = {}
        ranks = audience_ranks(market.pair_campaign, market.pair_user, score)
        for share in config.audience_shares:
            bought = audience_pairs(market.pair_campaign, market.pair_user, score, share, ranks)
            out["audience"][str(share)] = serve(world, market, config, bought, score[bought])
    return out


def day_market(
    config: ABTestConfig, world: World, day: datetime.date, scored: pa.Table
) -> tuple[DayMarket, np.ndarray]:
    """The day's campaigns (those with a budget and a price: the others buy nothing in any arm), the scored pairs
    of those campaigns (user-major) and the slots; and the scored rows those pairs are, in their order."""
    context = campaign_context(config.data_root, day, config).to_pylist()
    campaigns = [c for c in context if c["budget_micros"] and c["cpm_micros"]]
    index = {c["campaign_id"]: i for i, c in enumerate(campaigns)}
    campaign_ids = scored.column("campaign_id").to_numpy()
    user_ids = scored.column("user_id").to_numpy().astype(np.int64)
    rows = np.flatnonzero(np.isin(campaign_ids, list(index)))
    # User-major: every auction sorts its pairs by user, which is then a pass over sorted data.
    rows = rows[np.lexsort((campaign_ids[rows], user_ids[rows]))]
    lookup = np.zeros(int(campaign_ids.max(initial=0)) + 1, np.int64)
    lookup[list(index)] = list(index.values())
    slots = day_slots(world, day, config)
    market = DayMarket(campaigns, lookup[campaign_ids[rows]], user_ids[rows], slots, world.config.frequency_cap_per_day)
    return market, rows


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


# ------------------------------------------------------------------------------------------ figures


def summarize(units: list[dict], config: ABTestConfig) -> dict:
    """Per design and segment (all, less-streamed = tiers 3-5, more-streamed = tiers 0-2, each tier): the arms'
    figures with bootstrap intervals over model seeds and campaign-days (``evaluation/abtest_figures.py``)."""
    seeds = sorted({u["seed"] for u in units})
    keys = sorted({(u["day"], u["campaign_id"]) for u in units})
    position = {k: i for i, k in enumerate(keys)}
    tiers = np.full(len(keys), -1)
    shares = [str(q) for q in config.audience_shares]
    shapes = {"auction": (len(config.arms),), "audience": (len(config.arms), len(shares))}
    counts = {d: np.zeros((len(seeds), len(keys), *shapes[d], len(COUNTERS))) for d in config.designs}
    for u in units:
        j = position[(u["day"], u["campaign_id"])]
        tiers[j] = -1 if u["tier"] is None else u["tier"]
        s = seeds.index(u["seed"])
        if "auction" in counts:
            counts["auction"][s, j] = [[u["auction"][arm][k] for k in COUNTERS] for arm in config.arms]
        if "audience" in counts:
            counts["audience"][s, j] = [
                [[u["audience"][arm][q][k] for k in COUNTERS] for q in shares] for arm in config.arms
            ]
    out: dict[str, Any] = {}
    for design, c in counts.items():
        rng = np.random.default_rng([config.draw_seed, 0xB007, DESIGNS.index(design)])
        segments = {}
        for name, mask in abtest_figures.segment_masks(tiers).items():
            if design == "auction":
                segments[name] = abtest_figures.auction_segment(
                    c[:, mask], config.arms, config.bootstrap, config.confidence, rng
                )
            else:
                segments[name] = abtest_figures.audience_segment(
                    c[:, mask],
                    config.arms,
                    config.audience_shares,
                    config.matched_share,
                    config.bootstrap,
                    config.confidence,
                    rng,
                )
        out[design] = {"segments": segments, "inventory": inventory_summary(units, design, config)}
    return out


def inventory_summary(units: list[dict], design: str, config: ABTestConfig) -> dict:
    """How scarce the inventory was in a design (the audience design at its matched share): per arm, impressions
    sold and the share of the slots, and how much of the budgets and audiences it reached."""
    out: dict[str, Any] = {"arms": {}}
    slots = sum({(u["seed"], u["day"]): u.get("slots", 0) for u in units}.values())
    for arm in config.arms:
        shares, spent = [], []
        sold = 0
        for u in units:
            a = u["auction"][arm] if design == "auction" else u["audience"][arm][str(config.matched_share)]
            sold += a["impressions"]
            if a["eligible_users"]:
                shares.append(a["reach"] / a["eligible_users"])
            if a["budget_micros"]:
                spent.append(a["spend_micros"] / a["budget_micros"])
        shares_a, spent_a = np.array(shares), np.array(spent)
        out["arms"][arm] = {
            "impressions": int(sold),
            "sold_share": sold / slots if slots else None,
            "reach_share_median": float(np.median(shares_a)) if shares_a.size else None,
            "budget_spent_median": float(np.median(spent_a)) if spent_a.size else None,
            "budget_exhausted_share": float((spent_a >= 0.99).mean()) if spent_a.size else None,
        }
    out["slots"] = int(slots)
    return out


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
    artifacts.write_bytes(artifacts.join(config.out, "abtest.json"), artifacts.dumps(result))
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


def _days(text: str) -> tuple[datetime.date, ...]:
    try:
        return tuple(parse_days(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


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
    p.add_argument("--model_seeds", type=parse_ints, default=d.model_seeds, help="Seeds of the ablation runs used.")
    p.add_argument("--control", default=None)
    p.add_argument("--treatment", default=None)
    p.add_argument(
        "--arms", type=_names, default=d.arms, help=f"control,treatment and any of {','.join(REFERENCE_ARMS)}."
    )
    p.add_argument("--designs", type=_names, default=d.designs, help=f"Some of {','.join(DESIGNS)}.")
    p.add_argument("--audience_shares", type=_floats, default=d.audience_shares, help="Audience design's shares.")
    p.add_argument("--matched_share", type=float, default=d.matched_share, help="Control's share arms are matched at.")
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
        from podtarget.evaluation.report import write_report

        print(f"report written to {write_report(config.out, world_dir=layout.world_dir(config.data_root))}")
    return 0


if __name__ == "__main__":
    from podtarget.common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

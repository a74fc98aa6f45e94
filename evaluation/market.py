"""One day of the simulated A/B test's market, the same for every arm: the ad campaigns with their serving context
and money, the eligible (user, campaign) pairs, the users' ad slots with each slot's random numbers; each arm's day in
each design (value bids, the auction or the audiences of :mod:`podtarget.evaluation.auction`), the reference arms'
scores, and the served impressions' outcomes drawn from the ground truth."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ..schemas import layout
from ..simulator.config import AD_SLOTS, SURFACES
from ..simulator.sessions import ad_opportunities
from ..simulator.world import World, rng_for
from ..transforms.arrow.candidates import plan_campaigns
from ..transforms.arrow.scoring_config import ScoringConfig
from ..transforms.runtime.day_inputs import load_podcast_features, read_snapshot
from .abtest_config import HEADS, ABTestConfig
from .auction import audience_pairs, audience_ranks, run_auction, value_bids
from .truth import shared_stream_logit


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

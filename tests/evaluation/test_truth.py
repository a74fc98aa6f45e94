"""The ground truth as scores of example rows: ids, codes and the fatigue count reach World.outcome_probabilities as
the simulator passed them."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pytest

from podtarget.evaluation.truth import (
    logged_stream_probability,
    reference_scores,
    same_day_exposures,
    shared_stream_logit,
)
from podtarget.simulator import World, WorldConfig
from podtarget.simulator.config import AD_SLOTS, DEVICES, PROMO_LAYOUTS, PROMO_SLOTS, SURFACES


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(WorldConfig.preset("tiny"))


def _ms(day: int, hour: int, minute: int = 0) -> int:
    start = datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC) + datetime.timedelta(
        days=day, hours=hour, minutes=minute
    )
    return int(start.timestamp() * 1000)


def _rows() -> pa.Table:
    """Three ad impressions of campaign 5 to user 3 (two the same day), one of another campaign, two promotions."""
    rows = [
        # source, ts, user, podcast, campaign, creative, hour, surface, device, ad_slot, promo_slot, layout, position
        ("ad", _ms(0, 20, 5), 3, 11, 5, 7, 20, "now_playing", DEVICES[1], "midroll", None, None, None),
        ("ad", _ms(0, 9), 3, 11, 5, 8, 9, "home", DEVICES[0], "home_banner", None, None, None),
        ("ad", _ms(1, 9), 3, 11, 5, 7, 9, "now_playing", DEVICES[0], "preroll", None, None, None),
        ("ad", _ms(0, 21), 3, 12, 6, 9, 21, "now_playing", DEVICES[2], "postroll", None, None, None),
        ("promo", _ms(0, 8), 4, 13, 30, None, 8, "home", DEVICES[3], None, "hero_banner", "carousel", 2),
        ("promo", _ms(0, 8), 1, 1, 30, None, 8, "search", DEVICES[0], None, "search_card", "card", 0),
    ]
    names = "source event_ts user_id podcast_id campaign_id creative_id hour surface device ad_slot promo_slot"
    names = names.split() + ["promo_layout", "promo_position"]
    columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    columns["event_ts"] = pa.array(columns["event_ts"], pa.timestamp("ms", tz="UTC"))
    return pa.table(columns)


def test_same_day_exposures_count_earlier_impressions_of_the_campaign_that_day():
    assert same_day_exposures(_rows().slice(0, 4)).tolist() == [1, 0, 0, 0]


def test_each_row_gets_the_worlds_probability_in_its_logged_context(world):
    table = _rows()
    p = logged_stream_probability(world, table)
    ad = world.outcome_probabilities(
        np.array([2, 2, 2, 2]),
        np.array([10, 10, 10, 11]),
        "ad",
        surface=np.array([SURFACES.index(s) for s in ("now_playing", "home", "now_playing", "now_playing")]),
        device=np.array([1, 0, 0, 2]),
        hour=np.array([20, 9, 9, 21]),
        creative=np.array([6, 7, 6, 8]),
        ad_slot=np.array([AD_SLOTS.index(s) for s in ("midroll", "home_banner", "preroll", "postroll")]),
        prior_exposures=np.array([1, 0, 0, 0]),
    )
    promo = world.outcome_probabilities(
        np.array([3, 0]),
        np.array([12, 0]),
        "promo",
        surface=np.array([SURFACES.index("home"), SURFACES.index("search")]),
        device=np.array([3, 0]),
        hour=np.array([8, 8]),
        promo_slot=np.array([PROMO_SLOTS.index("hero_banner"), PROMO_SLOTS.index("search_card")]),
        layout=np.array([PROMO_LAYOUTS.index("carousel"), PROMO_LAYOUTS.index("card")]),
        position=np.array([2, 0]),
    )
    np.testing.assert_allclose(p, np.r_[ad.stream, promo.stream], rtol=1e-12)


def test_shared_terms_are_affinity_appeal_and_language(world):
    gt = world.config.ground_truth
    user, podcast = np.array([0, 5]), np.array([3, 9])
    expected = (
        gt.affinity_stream * world.affinity(user, podcast)
        + gt.appeal_stream * world.appeal(podcast)
        - gt.language_mismatch * (world.user_language[user] != world.podcasts.language[podcast])
    )
    np.testing.assert_allclose(shared_stream_logit(world, user, podcast), expected)
    scores = reference_scores(world, _rows())
    assert set(scores) == {"constant", "truth_shared", "truth"}
    assert reference_scores(None, _rows()).keys() == {"constant"}
    shared = shared_stream_logit(world, np.array([2, 3]), np.array([10, 12]))
    gt = world.config.ground_truth
    expected = 1 / (1 + np.exp(-(np.array([gt.stream_intercept_ad, gt.stream_intercept_promo]) + shared)))
    np.testing.assert_allclose(scores["truth_shared"][[0, 4]], expected)

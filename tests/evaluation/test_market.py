"""One day's market of the A/B test on a real day: the campaigns' serving context is the scoring plan's, and
outcomes follow each slot's random numbers and the ground truth. Every arm's accounting over whole days is checked
in test_abtest.py, the auction's rules in test_auction.py."""

from __future__ import annotations

import numpy as np

from podtarget.evaluation.abtest_config import ABTestConfig
from podtarget.evaluation.market import campaign_context, draw_outcomes
from podtarget.simulator import World
from podtarget.simulator.config import AD_SLOTS, SURFACES
from tests.evaluation.conftest import AB_DAY


def test_outcomes_follow_the_slots_random_numbers_and_the_ground_truth(eval_world):
    world = World.load(f"{eval_world}/world")
    users = np.tile(np.arange(1, 501), 3)
    prior = np.repeat(np.arange(3), 500)
    n = len(users)
    args = (
        world,
        users,
        np.ones(n, np.int64),
        np.ones(n, np.int64),
        np.full(n, AD_SLOTS.index("midroll")),
        np.full(n, SURFACES.index("now_playing")),
        np.full(n, 19),
        prior,
    )
    uniforms = np.random.default_rng(2).random((n, 2))
    first = draw_outcomes(*args, uniforms)
    p = first["p_stream"]
    # A stream is drawn below its probability given the click drawn first; the same numbers, the same outcomes.
    assert all(np.array_equal(first[k], draw_outcomes(*args, uniforms)[k]) for k in first)
    assert not np.array_equal(first["stream"], draw_outcomes(*args, uniforms[::-1])["stream"])
    assert abs(first["stream"].mean() - p.mean()) < 4 * np.sqrt(p.mean() / n)
    # Fatigue: later impressions to the same users have lower true stream probabilities.
    p = p.reshape(3, 500)
    assert (p[0] > p[1]).all() and (p[1] > p[2]).all()


def test_campaign_context_is_the_scoring_plans(eval_world):
    config = ABTestConfig(data_root=eval_world)
    context = campaign_context(eval_world, AB_DAY, config)
    assert context.num_rows > 0
    assert set(context.column("hour").to_pylist()) == {config.hour}
    assert set(context.column("ad_slot").to_pylist()) <= {"midroll", "home_banner"}

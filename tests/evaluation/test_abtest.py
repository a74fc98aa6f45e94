"""The simulated A/B test: the auction's rules (second price, reserve, cap, budget, time order) checked exactly,
its accounting on a real day (budget, frequency cap, eligibility, eCPS), inventory from the world's sessions, the
same seeds giving the same results, and bootstrap intervals around their estimates."""

from __future__ import annotations

import datetime
import json
import pathlib

import numpy as np
import pytest

from podtarget.evaluation.abtest import (
    ARMS,
    ABTestConfig,
    arm_of_users,
    campaign_context,
    draw_outcomes,
    held_out_days,
    run_abtest,
    run_auction,
    value_bids,
)
from podtarget.pipelines.daily import load_podcast_features, read_snapshot
from podtarget.schemas import layout
from podtarget.simulator import World
from podtarget.simulator.config import AD_SLOTS, SURFACES
from podtarget.simulator.world import rng_for
from podtarget.transforms.arrow.candidates import ScoringConfig, find_candidates, plan_campaigns
from podtarget.transforms.runtime.storage import read_parquet
from tests.evaluation.conftest import AB_DAY, SEEDS, TRAIN, ab_config


def test_each_slot_goes_to_the_highest_bid_at_the_second_price():
    # Two users; campaign 0 bids 10 / 4 (CPM, micros x 1e6), campaign 1 bids 8 / 9.
    pair_user = np.array([1, 1, 2, 2])
    pair_campaign = np.array([0, 1, 0, 1])
    bids = np.array([10e6, 8e6, 4e6, 9e6])
    won = run_auction(np.array([1, 2]), pair_user, pair_campaign, bids, np.array([1e9, 1e9]), 3, 5e6)
    assert won.pair.tolist() == [0, 3]  # user 1 -> campaign 0, user 2 -> campaign 1
    assert won.price_micros.tolist() == [8e3, 5e3]  # the second bid, or the reserve (campaign 0's 4 is below it)
    assert won.slot.tolist() == [0, 1] and won.prior_exposures.tolist() == [0, 0]


def test_the_cap_the_budget_and_the_reserve_bind():
    pair_user, pair_campaign = np.array([1, 1]), np.array([0, 1])
    bids = np.array([10e6, 6e6])
    slots = np.array([1, 1, 1, 1, 1])
    # Cap 2: campaign 0 wins twice, then campaign 1 twice (alone: pays the reserve), then nobody.
    won = run_auction(slots, pair_user, pair_campaign, bids, np.array([1e9, 1e9]), 2, 5e6)
    assert won.pair.tolist() == [0, 0, 1, 1] and won.prior_exposures.tolist() == [0, 1, 0, 1]
    assert won.price_micros.tolist() == [6e3, 6e3, 5e3, 5e3]
    # Campaign 0 can pay its bid (10e3 per impression) once: then campaign 1 takes over.
    won = run_auction(slots, pair_user, pair_campaign, bids, np.array([15e3, 1e9]), 5, 5e6)
    assert won.pair.tolist() == [0, 1, 1, 1, 1]
    # Bids below the reserve never enter.
    assert len(run_auction(slots, pair_user, pair_campaign, bids, np.array([1e9, 1e9]), 5, 11e6).pair) == 0
    with pytest.raises(ValueError, match="cap must be >= 1"):
        run_auction(slots, pair_user, pair_campaign, bids, np.array([1e9, 1e9]), 0, 5e6)
    with pytest.raises(ValueError, match="one entry per pair"):
        run_auction(slots, pair_user, pair_campaign[:1], bids, np.array([1e9, 1e9]), 1, 5e6)


def test_value_bids_average_the_cpm_and_follow_the_ranking():
    pair_campaign = np.array([0, 0, 0, 1, 1])
    score = np.array([0.01, 0.02, 0.03, 0.5, 0.5])
    bids = value_bids(pair_campaign, score, np.array([12e6, 7e6]))
    assert bids[:3].mean() == pytest.approx(12e6) and bids[3:].tolist() == [7e6, 7e6]
    assert bids[0] < bids[1] < bids[2]
    assert value_bids(np.array([0, 0]), np.zeros(2), np.array([9e6])).tolist() == [9e6, 9e6]


def test_users_split_in_halves_by_a_stable_hash():
    users = np.arange(1, 20_001)
    arms = arm_of_users(users, 11)
    assert abs(arms.mean() - 0.5) < 0.02
    assert np.array_equal(arms, arm_of_users(users, 11)) and not np.array_equal(arms, arm_of_users(users, 12))


def test_spend_cap_and_ecps_add_up_for_every_campaign_and_arm(abtest, eval_world):
    config, result = abtest
    cap = World.load(f"{eval_world}/world").config.frequency_cap_per_day
    assert result["units"], "the held-out day has active ad campaigns"
    assert {u["seed"] for u in result["units"]} == set(SEEDS)
    sold = 0
    for unit in result["units"]:
        key = (unit["seed"], unit["day"], unit["campaign_id"])
        served, prices = result["served"][key], result["prices"][key]
        for arm in ARMS:
            a = unit[arm]
            sold += a["impressions"]
            assert a["spend_micros"] <= a["budget_micros"] + 1e-6
            assert a["spend_micros"] == pytest.approx(prices[arm].sum())
            # Second price: at least the reserve, at most the campaign's own bid (its CPM times its relative score,
            # bounded here by the CPM times the number of its eligible users).
            assert (prices[arm] >= config.reserve_cpm_micros / 1000 - 1e-9).all()
            counts = np.bincount(served[arm]) if len(served[arm]) else np.zeros(1)
            assert counts.max() <= cap and a["max_per_user"] <= cap
            assert a["reach"] == len(np.unique(served[arm])) <= a["eligible_users"]
            assert a["streams"] <= a["impressions"] and a["clicks"] <= a["impressions"]
    assert sold > 0
    for segment in result["segments"].values():
        for arm in ARMS:
            a = segment["arms"][arm]
            if a["streams"]:
                assert a["ecps"] == pytest.approx(a["spend_micros"] / 1e6 / a["streams"])
            else:
                assert a["ecps"] is None  # no streams: no cost per stream, never a division by zero
            if a["impressions"]:
                assert a["i2s"] == pytest.approx(a["streams"] / a["impressions"])


def test_inventory_limits_what_the_arms_sell(abtest, eval_world):
    """No user gets more impressions in a day than the slots drawn for them, across all campaigns."""
    config, result = abtest
    world = World.load(f"{eval_world}/world")
    from podtarget.evaluation.abtest import day_slots

    slots = np.bincount(day_slots(world, AB_DAY, config)["user"], minlength=world.config.n_users + 1)
    for seed in SEEDS:
        per_user = np.zeros_like(slots)
        for (s, _, _), by_arm in result["served"].items():
            if s == seed:
                for arm in ARMS:
                    np.add.at(per_user, by_arm[arm], 1)
        assert (per_user <= slots).all() and per_user.sum() > 0
    inventory = result["inventory"]
    assert inventory["impressions"] <= inventory["slots"] and inventory["slots"] == len(SEEDS) * slots.sum()


def test_only_eligible_users_of_the_arm_are_served(abtest, eval_world):
    config, result = abtest
    day = AB_DAY
    plan = plan_campaigns(
        read_snapshot(eval_world, "campaign", day),
        read_snapshot(eval_world, "creative", day),
        load_podcast_features(day.isoformat(), eval_world),
        day,
        ScoringConfig(heads="ad:*=AdStream"),
        layout.raw_partition(eval_world, "campaign", day),
    )
    users = read_parquet(layout.join(layout.feature_partition(eval_world, "user", day), "part-*.parquet"))
    found = find_candidates(users, plan)
    user_ids = users.column("user_id").to_numpy()
    campaign_ids = plan.campaigns.column("campaign_id").to_numpy()
    eligible = set(zip(campaign_ids[found.pair_campaign].tolist(), user_ids[found.pair_user].tolist(), strict=True))
    served_any = 0
    for (_, _, campaign), by_arm in result["served"].items():
        for index, arm in enumerate(ARMS):
            users_served = np.unique(by_arm[arm])
            served_any += len(users_served)
            assert all((campaign, int(u)) in eligible for u in users_served), (campaign, arm)
            assert (arm_of_users(users_served, config.split_seed) == index).all()
    assert served_any > 0


def test_the_same_seed_gives_identical_results(abtest, eval_world, tmp_path):
    config, result = abtest
    again = run_abtest(ab_config(eval_world, config, str(tmp_path)))
    assert again["units"] == result["units"] and again["segments"] == result["segments"]


def test_outcomes_follow_the_draw_seed_and_the_ground_truth(eval_world):
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
    first = draw_outcomes(*args, rng_for(1, 2))
    assert all(np.array_equal(first[k], draw_outcomes(*args, rng_for(1, 2))[k]) for k in first)
    assert not np.array_equal(first["stream"], draw_outcomes(*args, rng_for(1, 3))["stream"])
    # Fatigue: later impressions to the same users have lower true stream probabilities.
    p = first["p_stream"].reshape(3, 500)
    assert (p[0] > p[1]).all() and (p[1] > p[2]).all()


def test_bootstrap_intervals_contain_their_estimates(abtest):
    _, result = abtest
    checked = 0
    for segment in result["segments"].values():
        assert segment["seeds"] == len(SEEDS)
        for metric, (lo, hi) in segment["ci_pct"].items():
            assert lo <= segment["lift_pct"][metric] <= hi, metric
            checked += 1
    assert checked > 0
    written = json.loads(pathlib.Path(f"{abtest[0].out}/abtest.json").read_text())
    assert written["segments"] == json.loads(json.dumps(result["segments"]))
    assert "served_users" not in written["units"][0]["control"]


def test_the_ab_days_must_be_held_out(abtest, eval_world):
    config, _ = abtest
    with pytest.raises(ValueError, match="not held out"):
        held_out_days(ABTestConfig(**{**_fields(config), "days": (TRAIN,)}))
    assert held_out_days(config)[0] == [AB_DAY]


def test_campaign_context_is_the_scoring_plans(eval_world):
    config = ABTestConfig(data_root=eval_world)
    context = campaign_context(eval_world, AB_DAY, config)
    assert context.num_rows > 0
    assert set(context.column("hour").to_pylist()) == {config.hour}
    assert set(context.column("ad_slot").to_pylist()) <= {"midroll", "home_banner"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"bootstrap": 10},
            r"^The 'bootstrap' parameter of ABTestConfig must be an int in the range \[100, inf\)\. Got 10 ",
        ),
        (
            {"confidence": 1.0},
            r"'confidence' parameter of ABTestConfig must be a float in the range \[0.5, 1\)\. Got 1.0",
        ),
        ({"data_root": "gs://b/x"}, r"'data_root' parameter of ABTestConfig must be a local folder .* Got 'gs://b/x' "),
        ({"data_root": ""}, r"'data_root' parameter of ABTestConfig must be a local folder .*, e.g. ./data\. Got '' "),
        ({"days": (AB_DAY, AB_DAY)}, r"'days' parameter of ABTestConfig must be distinct days\. Got \['20"),
        ({"hour": 24}, r"'hour' parameter of ABTestConfig must be an int in the range \[0, 23\]\. Got 24 instead"),
        (
            {"model_seeds": ()},
            r"'model_seeds' parameter of ABTestConfig must be distinct ints, at least one\. Got \(\)",
        ),
        (
            {"model_seeds": (1, 2), "control": "models/x"},
            r"'model_seeds' parameter of ABTestConfig must be a single seed when control or treatment is given",
        ),
        (
            {"reserve_cpm_micros": -1},
            r"'reserve_cpm_micros' parameter of ABTestConfig must be an int in the range \[0, inf\)",
        ),
        ({"draw_seed": -1}, r"'draw_seed' parameter of ABTestConfig must be an int in the range \[0, inf\)\. Got -1"),
    ],
)
def test_bad_settings_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        ABTestConfig(**{"data_root": "./data", **changes})


def _fields(config: ABTestConfig) -> dict:
    return {k: getattr(config, k) for k in config.__dataclass_fields__}


def test_days_are_dates():
    assert ABTestConfig(data_root="x", days=[datetime.date(2026, 3, 4)]).days == (datetime.date(2026, 3, 4),)

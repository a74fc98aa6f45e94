"""The simulated A/B test: its accounting (budget, frequency cap, eligibility, eCPS) checked exactly, the same
seed giving the same results, bootstrap intervals around their estimates, and the serving rule itself."""

from __future__ import annotations

import datetime
import json
import pathlib

import numpy as np
import pytest

from evaluation.abtest import (
    ARMS,
    ABTestConfig,
    arm_of_users,
    campaign_context,
    draw_outcomes,
    held_out_days,
    run_abtest,
    serve,
)
from pipelines.daily import load_podcast_features, read_snapshot
from schemas import layout
from simulator import World
from simulator.world import rng_for
from tests.evaluation.conftest import AB_DAY, TRAIN, ab_config
from transforms.candidates import ScoringConfig, find_candidates, plan_campaigns
from transforms.storage import read_parquet


def test_serving_goes_down_the_ranking_then_around_again_within_budget_and_cap():
    ranked = np.array([30, 10, 20])
    served = serve(ranked, budget_micros=10 * 5_000 + 4_999, cpm_micros=5_000_000, cap=3)  # 10 impressions' worth
    assert served.users.tolist() == [30, 10, 20, 30, 10, 20, 30, 10, 20]  # the cap (3 each) binds before the budget
    assert served.prior_exposures.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    partial = serve(ranked, budget_micros=2 * 5_000, cpm_micros=5_000_000, cap=3)
    assert partial.users.tolist() == [30, 10] and partial.spend_micros == 10_000
    assert len(serve(ranked, budget_micros=4_999, cpm_micros=5_000_000, cap=3).users) == 0
    assert len(serve(np.array([], np.int64), budget_micros=1e9, cpm_micros=5_000_000, cap=3).users) == 0
    with pytest.raises(ValueError, match="cap must be >= 1"):
        serve(ranked, 1e6, 5e6, cap=0)


def test_users_split_in_halves_by_a_stable_hash():
    users = np.arange(1, 20_001)
    arms = arm_of_users(users, 11)
    assert abs(arms.mean() - 0.5) < 0.02
    assert np.array_equal(arms, arm_of_users(users, 11)) and not np.array_equal(arms, arm_of_users(users, 12))


def test_spend_cap_and_ecps_add_up_for_every_campaign_and_arm(abtest, eval_world):
    config, result = abtest
    cap = World.load(f"{eval_world}/world").config.frequency_cap_per_day
    assert result["units"], "the held-out day has active ad campaigns"
    for unit in result["units"]:
        served = result["served"][(unit["day"], unit["campaign_id"])]
        for arm in ARMS:
            a = unit[arm]
            assert a["spend_micros"] <= unit["arm_budget_micros"] + 1e-6
            assert a["spend_micros"] == pytest.approx(a["impressions"] * unit["cpm_micros"] / 1000)
            # Out of budget, or out of users: the cap times the arm's eligible users.
            price = unit["cpm_micros"] / 1000
            assert (
                unit["arm_budget_micros"] - a["spend_micros"] < price or a["impressions"] == cap * a["eligible_users"]
            )
            counts = np.bincount(served[arm]) if len(served[arm]) else np.zeros(1)
            assert counts.max() <= cap and a["max_per_user"] <= cap
            assert a["streams"] <= a["impressions"] and a["clicks"] <= a["impressions"]
    for segment in result["segments"].values():
        for arm in ARMS:
            a = segment["arms"][arm]
            if a["streams"]:
                assert a["ecps"] == pytest.approx(a["spend_micros"] / 1e6 / a["streams"])
            else:
                assert a["ecps"] is None  # no streams: no cost per stream, never a division by zero
            if a["impressions"]:
                assert a["i2s"] == pytest.approx(a["streams"] / a["impressions"])


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
    for (_, campaign), by_arm in result["served"].items():
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
    served = serve(np.arange(1, 501), budget_micros=3_000 * 5_000, cpm_micros=5_000_000, cap=3)
    args = (world, served, 1, 1, "midroll", "now_playing", 19)
    first = draw_outcomes(*args, rng_for(1, 2))
    assert all(np.array_equal(first[k], draw_outcomes(*args, rng_for(1, 2))[k]) for k in first)
    assert not np.array_equal(first["stream"], draw_outcomes(*args, rng_for(1, 3))["stream"])
    # Fatigue: later passes over the same users have lower true stream probabilities.
    p = first["p_stream"].reshape(3, 500)
    assert (p[0] > p[1]).all() and (p[1] > p[2]).all()


def test_bootstrap_intervals_contain_their_estimates(abtest):
    _, result = abtest
    checked = 0
    for segment in result["segments"].values():
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
        ({"bootstrap": 10}, "bootstrap must be an integer >= 100"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"data_root": "gs://b/x"}, "must be a local folder"),
        ({"days": (AB_DAY, AB_DAY)}, "days must be distinct"),
        ({"hour": 24}, "hour must be an integer"),
    ],
)
def test_bad_settings_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        ABTestConfig(**{"data_root": "./data", **changes})


def _fields(config: ABTestConfig) -> dict:
    return {k: getattr(config, k) for k in config.__dataclass_fields__}


def test_days_are_dates():
    assert ABTestConfig(data_root="x", days=[datetime.date(2026, 3, 4)]).days == (datetime.date(2026, 3, 4),)

"""The simulated A/B test on a real day: every arm's accounting in both designs (budget, frequency cap,
eligibility, eCPS), the reference arms, inventory from the world's sessions, the same seeds giving the same
results, and bootstrap intervals around their estimates. The market's rules are checked exactly in
test_auction.py, one day's serving context and outcome draws in test_market.py, the configuration in
test_abtest_config.py, the figures' arithmetic in test_abtest_figures.py."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from podtarget.evaluation.abtest import held_out_days, load_units, run_abtest
from podtarget.evaluation.abtest_config import ARMS, ABTestConfig
from podtarget.evaluation.auction import audience_size
from podtarget.schemas import layout
from podtarget.simulator import World
from podtarget.transforms.arrow.candidates import find_candidates, plan_campaigns
from podtarget.transforms.arrow.scoring_config import ScoringConfig
from podtarget.transforms.runtime.day_inputs import load_podcast_features, read_snapshot
from podtarget.transforms.runtime.storage import read_parquet
from tests.evaluation.conftest import AB_DAY, SEEDS, TRAIN, ab_config


def _arm_days(result):
    """Every (unit, design, share, arm, counters, served users, prices) of the test."""
    for unit in result["units"]:
        key = (unit["seed"], unit["day"], unit["campaign_id"])
        served, prices = result["served"][key], result["prices"][key]
        for arm in ARMS:
            yield unit, "auction", None, arm, unit["auction"][arm], served["auction"][arm], prices["auction"][arm]
            for share, a in unit["audience"][arm].items():
                users, paid = served["audience"][arm][share], prices["audience"][arm][share]
                yield unit, "audience", share, arm, a, users, paid


def test_spend_cap_and_ecps_add_up_for_every_campaign_arm_and_design(abtest, eval_world):
    config, result = abtest
    cap = World.load(f"{eval_world}/world").config.frequency_cap_per_day
    assert result["units"], "the held-out day has active ad campaigns"
    assert {u["seed"] for u in result["units"]} == set(SEEDS)
    sold = 0
    for _, _, _, _, a, served, prices in _arm_days(result):
        sold += a["impressions"]
        assert a["spend_micros"] <= a["budget_micros"] + 1e-6
        assert a["spend_micros"] == pytest.approx(prices.sum())
        assert (prices >= config.reserve_cpm_micros / 1000 - 1e-9).all()  # second price, at least the reserve
        counts = np.bincount(served) if len(served) else np.zeros(1)
        assert counts.max() <= cap and a["max_per_user"] <= cap
        assert a["reach"] == len(np.unique(served)) <= a["eligible_users"]
        assert a["streams"] <= a["impressions"] and a["clicks"] <= a["impressions"]
    assert sold > 0
    for segment in result["designs"]["auction"]["segments"].values():
        for a in segment["arms"].values():
            if a["streams"]:
                assert a["ecps"] == pytest.approx(a["spend_micros"] / 1e6 / a["streams"])
            else:
                assert a["ecps"] is None  # no streams: no cost per stream, never a division by zero
            if a["impressions"]:
                assert a["i2s"] == pytest.approx(a["streams"] / a["impressions"])


def test_every_arm_serves_the_same_slots_and_audiences_buy_the_top_share(abtest, eval_world):
    """No user gets more impressions in a day than the slots drawn for them, in any arm; every arm can use every
    slot (no user split); a larger audience share never sells fewer impressions in total."""
    config, result = abtest
    world = World.load(f"{eval_world}/world")
    from podtarget.evaluation.market import day_slots

    slots = np.bincount(day_slots(world, AB_DAY, config)["user"], minlength=world.config.n_users + 1)
    per_arm: dict = {}
    for unit, design, share, arm, _, served, _ in _arm_days(result):
        key = (unit["seed"], design, share, arm)
        per_arm.setdefault(key, np.zeros_like(slots))
        np.add.at(per_arm[key], served, 1)
    for key, per_user in per_arm.items():
        assert (per_user <= slots).all(), key
    auction_sold = {k: v.sum() for k, v in per_arm.items() if k[1] == "auction"}
    for seed in SEEDS:
        for arm in ARMS:
            # Audiences leave slots to outside demand: the smallest sells less than the largest, and than the
            # auction design, where every eligible campaign bids on every slot.
            totals = [per_arm[(seed, "audience", str(q), arm)].sum() for q in config.audience_shares]
            assert 0 < totals[0] < totals[-1] <= auction_sold[(seed, "auction", None, arm)], (seed, arm, totals)
    inventory = result["designs"]["auction"]["inventory"]
    assert inventory["slots"] == len(SEEDS) * slots.sum()
    assert all(a["impressions"] <= inventory["slots"] for a in inventory["arms"].values())


def test_only_eligible_users_are_served_and_audiences_hold_their_share(abtest, eval_world):
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
    for unit, _, share, arm, a, served, _ in _arm_days(result):
        users_served = np.unique(served)
        served_any += len(users_served)
        assert all((unit["campaign_id"], int(u)) in eligible for u in users_served), (unit["campaign_id"], arm)
        if share is not None:  # an audience: ceil(share x eligible users), each of whom may be served
            assert a["reach"] <= a["bidding_users"] == audience_size(float(share), a["eligible_users"])
        else:
            assert a["bidding_users"] == a["eligible_users"]
    assert served_any > 0


def test_the_oracle_beats_random_and_positions_are_relative_to_them(abtest):
    _, result = abtest
    seg = result["designs"]["auction"]["segments"]["all"]
    e = {arm: a["expected_i2s"] for arm, a in seg["arms"].items()}
    assert e["oracle"] > e["truth_shared"] > e["random"]
    pos = seg["position"]
    assert pos["random"]["point"] == pytest.approx(0) and pos["oracle"]["point"] == pytest.approx(1)
    assert pos["treatment"]["point"] == pytest.approx((e["treatment"] - e["random"]) / (e["oracle"] - e["random"]))
    audience = result["designs"]["audience"]["segments"]["all"]["matched"]["impressions"]["arms"]
    assert audience["oracle"]["position"]["point"] == pytest.approx(1)


def test_the_same_seed_gives_identical_results(abtest, eval_world, tmp_path):
    config, result = abtest
    again = run_abtest(ab_config(eval_world, config, str(tmp_path)))
    assert again["units"] == result["units"] and again["designs"] == result["designs"]


def test_bootstrap_intervals_contain_their_estimates(abtest):
    _, result = abtest
    checked = 0
    for segment in result["designs"]["auction"]["segments"].values():
        assert segment["seeds"] == len(SEEDS)
        for arm, cis in segment.get("ci_pct", {}).items():
            for metric, ci in cis.items():
                if ci is not None:
                    assert ci[0] <= segment["lift_pct"][arm][metric] <= ci[1], (arm, metric)
                    checked += 1
    for segment in result["designs"]["audience"]["segments"].values():
        for block in segment.get("matched", {}).values():
            for arm, entry in block["arms"].items():
                for metric, ci in (entry.get("ci_pct") or {}).items():
                    if ci is not None:
                        assert ci[0] <= entry["lift_pct"][metric] <= ci[1], (arm, metric)
                        checked += 1
    assert checked > 0
    text = pathlib.Path(f"{abtest[0].out}/abtest.json").read_text()
    assert abtest[0].data_root not in text and abtest[0].out not in text  # a committed report names no machine path
    written = json.loads(text)
    assert written["designs"] == json.loads(json.dumps(result["designs"]))
    assert "units" not in written and written["units_file"] == "abtest_units.json.gz"
    units = load_units(abtest[0].out)
    assert units == json.loads(json.dumps(result["units"])) and "served_users" not in units[0]["auction"]["control"]


def test_the_ab_days_must_be_held_out(abtest, eval_world):
    config, _ = abtest
    with pytest.raises(ValueError, match="not held out"):
        held_out_days(ABTestConfig(**{**_fields(config), "days": (TRAIN,)}))
    assert held_out_days(config)[0] == [AB_DAY]


def _fields(config: ABTestConfig) -> dict:
    return {k: getattr(config, k) for k in config.__dataclass_fields__}

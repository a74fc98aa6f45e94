"""The market of the A/B test: second-price auctions with cap, budget and reserve, checked exactly on handmade
cases and against the slot-by-slot sale on random days; value bids; each campaign's audience."""

from __future__ import annotations

import numpy as np
import pytest

from podtarget.evaluation import auction
from podtarget.evaluation.auction import audience_pairs, audience_size, run_auction, value_bids


def sold_one_by_one(slot_users, pair_user, pair_campaign, pair_bid, budget, cap, reserve):
    """The auction's definition, one slot at a time (what run_auction computes in blocks)."""
    remaining = np.asarray(budget, float).copy()
    shown = np.zeros(len(pair_user), int)
    out = []
    for i, user in enumerate(slot_users):
        pairs = [p for p in range(len(pair_user)) if pair_user[p] == user and pair_bid[p] >= reserve]
        ok = [p for p in pairs if shown[p] < cap and remaining[pair_campaign[p]] >= pair_bid[p] / 1000]
        if not ok:
            continue
        best = max(ok, key=lambda p: (pair_bid[p], -p))
        others = [pair_bid[p] for p in ok if p != best]
        price = max(max(others, default=-np.inf), reserve) / 1000
        out.append((i, best, price, shown[best]))
        shown[best] += 1
        remaining[pair_campaign[best]] -= price
    return out


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


def test_a_budget_spent_by_other_users_earlier_in_a_block_keeps_the_campaign_out_later_in_it():
    # Three users with one slot each (one block): campaign 0 bids 10 and pays the second bid, 7, per thousand; its
    # 20e3 budget covers two impressions (6e3 left < its 10e3 bid), so the third slot goes to campaign 1, alone.
    pair_user = np.array([1, 1, 2, 2, 3, 3])
    pair_campaign = np.array([0, 1, 0, 1, 0, 1])
    bids = np.array([10e6, 7e6, 10e6, 7e6, 10e6, 7e6])
    won = run_auction(np.array([1, 2, 3]), pair_user, pair_campaign, bids, np.array([20e3, 1e9]), 3, 5e6)
    assert won.pair.tolist() == [0, 2, 5]
    assert won.price_micros.tolist() == [7e3, 7e3, 5e3]


@pytest.mark.parametrize("seed", range(6))
def test_blocks_sell_exactly_what_the_slot_by_slot_sale_sells(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n_users, n_campaigns = 30, 6
    pair_user = np.repeat(np.arange(n_users), n_campaigns)
    pair_campaign = np.tile(np.arange(n_campaigns), n_users)
    keep = rng.random(len(pair_user)) < 0.7
    pair_user, pair_campaign = pair_user[keep], pair_campaign[keep]
    bids = np.round(rng.uniform(3e6, 15e6, len(pair_user)), -6)  # coarse: ties happen
    slot_users = rng.integers(0, n_users + 3, 200)  # some users have no pair
    budget = rng.uniform(20e3, 300e3, n_campaigns)  # tight: budgets run out during the day
    monkeypatch.setattr(auction, "BLOCK_SLOTS", int(rng.integers(2, 40)))
    won = run_auction(slot_users, pair_user, pair_campaign, bids, budget, 2, 5e6)
    expected = sold_one_by_one(slot_users, pair_user, pair_campaign, bids, budget, 2, 5e6)
    assert won.slot.tolist() == [s for s, _, _, _ in expected]
    assert won.pair.tolist() == [p for _, p, _, _ in expected]
    np.testing.assert_allclose(won.price_micros, [c for _, _, c, _ in expected])
    assert won.prior_exposures.tolist() == [e for _, _, _, e in expected]
    spent = np.bincount(pair_campaign[won.pair], weights=won.price_micros, minlength=n_campaigns)
    assert (spent <= budget + 1e-6).all() and (spent > 0.8 * budget).any()  # some budget did bind


def test_value_bids_average_the_cpm_and_follow_the_ranking():
    pair_campaign = np.array([0, 0, 0, 1, 1])
    score = np.array([0.01, 0.02, 0.03, 0.5, 0.5])
    bids = value_bids(pair_campaign, score, np.array([12e6, 7e6]))
    assert bids[:3].mean() == pytest.approx(12e6) and bids[3:].tolist() == [7e6, 7e6]
    assert bids[0] < bids[1] < bids[2]
    assert value_bids(np.array([0, 0]), np.zeros(2), np.array([9e6])).tolist() == [9e6, 9e6]


def test_each_campaign_buys_the_top_share_of_its_eligible_users():
    pair_campaign = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    pair_user = np.array([5, 6, 7, 8, 5, 6, 7, 9])
    score = np.array([0.1, 0.4, 0.3, 0.4, 0.9, 0.1, 0.2, 0.05])
    # Campaign 0 has 5 users: 40% -> 2 (users 6 and 8 tie at 0.4); campaign 1 has 3: ceil(1.2) -> 2.
    assert audience_pairs(pair_campaign, pair_user, score, 0.4).tolist() == [1, 3, 4, 6]
    assert audience_pairs(pair_campaign, pair_user, score, 1.0).tolist() == list(range(8))
    assert audience_pairs(pair_campaign, pair_user, score, 0.01).tolist() == [1, 4]  # at least one user each
    assert audience_size(0.05, 20) == 1 and audience_size(0.05, 21) == 2  # 0.05 x 20 is 1, not 1.0000000000000002
    with pytest.raises(ValueError, match="share must be in"):
        audience_pairs(pair_campaign, pair_user, score, 0.0)

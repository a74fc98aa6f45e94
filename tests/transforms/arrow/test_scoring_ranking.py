"""Rankings from scored pairs: exact order with ties, partial top-K per block merged into the global top-K, and
each user's top-N, all checked against a brute-force sort."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from podtarget.transforms.arrow.ranking import (
    TopUsers,
    block_top_users,
    merge_top_users,
    rank_keys,
    top_campaigns_per_user,
)
from podtarget.transforms.beam.scoring import MergeTopUsersFn


def test_rank_keys_order_by_score_descending_then_tie_ascending():
    scores = np.array([0.5, -1.0, 0.5, 2.0, 0.0, -0.5, 1e-30, np.inf], np.float32)
    keys = rank_keys(scores, np.array([3, 0, 1, 9, 4, 2, 8, 5]))
    assert np.argsort(keys).tolist() == [7, 3, 2, 0, 6, 4, 5, 1]
    with pytest.raises(ValueError, match="NaN"):
        rank_keys(np.array([0.1, np.nan], np.float32), np.arange(2))


def _random_block(rng, n_users=60, n_campaigns=7, levels=5):
    eligible = rng.random((n_users, n_campaigns)) < 0.6
    pair_campaign, pair_user = np.nonzero(eligible.T)
    scores = (rng.integers(0, levels, len(pair_user)) / levels).astype(np.float32)  # few levels: many ties
    return scores, pair_user, pair_campaign


def test_block_top_users_match_a_full_sort():
    rng = np.random.default_rng(3)
    scores, pair_user, pair_campaign = _random_block(rng)
    user_ids = np.sort(rng.choice(10_000, 60, replace=False))
    campaign_ids = np.array([4, 8, 15, 16, 23, 42, 99])
    limits = np.array([5, 0, 100, 1, 3, 10, 7])
    tops = {t.campaign_id: t for t in block_top_users(scores, pair_user, pair_campaign, user_ids, campaign_ids, limits)}
    for c, campaign_id in enumerate(campaign_ids):
        mine = pair_campaign == c
        expected = sorted(zip(-scores[mine], user_ids[pair_user[mine]], strict=True))[: limits[c]]
        top = tops[campaign_id]
        assert top.eligible == mine.sum() and top.limit == limits[c]
        assert list(zip(-top.scores, top.user_ids, strict=True)) == expected


def test_merged_partials_are_the_global_top_k_in_any_grouping():
    rng = np.random.default_rng(5)
    ids = rng.choice(100_000, 400, replace=False)
    scores = (rng.integers(0, 8, 400) / 8).astype(np.float32)
    k = 25

    def partial(sel):
        order = np.lexsort((ids[sel], -scores[sel]))[:k]
        return TopUsers(7, k, len(sel), ids[sel][order], scores[sel][order])

    parts = [partial(np.arange(i, 400, 4)) for i in range(4)]
    want = np.lexsort((ids, -scores))[:k]
    for grouping in ([parts], [parts[::-1]], [[parts[0], parts[2]], [parts[3], parts[1]]]):
        merged = merge_top_users([merge_top_users(g) for g in grouping])
        assert merged.user_ids.tolist() == ids[want].tolist() and merged.eligible == 400
    with pytest.raises(ValueError, match="different campaigns"):
        merge_top_users([parts[0], TopUsers(8, k, 0, ids[:0], scores[:0])])


def test_merge_per_campaign_in_a_pipeline():
    def top(campaign, users, scores):
        return campaign, TopUsers(campaign, 2, len(users), np.array(users), np.array(scores, np.float32))

    partials = [top(1, [5, 9], [0.9, 0.1]), top(1, [3], [0.9]), top(2, [4], [0.2]), top(2, [], [])]
    with test_pipeline.TestPipeline("FnApiRunner") as p:
        merged = (
            p
            | beam.Create(partials)
            | beam.CombinePerKey(MergeTopUsersFn())
            | beam.MapTuple(lambda c, t: (c, t.user_ids.tolist(), t.scores.tolist(), t.eligible))
        )
        assert_that(merged, equal_to([(1, [3, 5], [np.float32(0.9)] * 2, 3), (2, [4], [np.float32(0.2)], 1)]))


def test_top_campaigns_per_user_match_a_full_sort():
    rng = np.random.default_rng(11)
    scores, pair_user, pair_campaign = _random_block(rng, n_users=40, n_campaigns=9, levels=3)
    users, ranks, pairs = top_campaigns_per_user(scores, pair_user, pair_campaign, 40, 9, n=4)
    for u in range(40):
        mine = np.flatnonzero(pair_user == u)
        expected = sorted(zip(-scores[mine], pair_campaign[mine], strict=True))[:4]
        got = pairs[users == u]
        assert ranks[users == u].tolist() == list(range(1, len(got) + 1))
        assert list(zip(-scores[got], pair_campaign[got], strict=True)) == expected
    # More campaigns asked for than exist: every eligible one, in order.
    users, ranks, pairs = top_campaigns_per_user(scores, pair_user, pair_campaign, 40, 9, n=50)
    assert len(pairs) == len(scores)

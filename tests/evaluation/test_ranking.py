"""The offline metrics matched to the A/B designs, against brute-force computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from podtarget.evaluation import ranking


def _data(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 40, n)
    campaign = rng.integers(0, 12, n)
    score = np.round(rng.random(n), 1)  # coarse: ties happen
    y = (rng.random(n) < 0.2 + 0.4 * score).astype(float)
    return y, score, campaign, user


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_within_user_auc_is_the_brute_force_pair_count(seed):
    y, score, campaign, user = _data(seed)
    means = {c: score[campaign == c].mean() for c in np.unique(campaign)}
    relative = np.array([s / means[c] if means[c] else 1.0 for s, c in zip(score, campaign, strict=True)])
    right = pairs = 0.0
    for i, j in itertools.product(range(len(y)), repeat=2):
        if user[i] == user[j] and campaign[i] != campaign[j] and y[i] == 1 and y[j] == 0:
            pairs += 1
            right += 1.0 if relative[i] > relative[j] else 0.5 if relative[i] == relative[j] else 0.0
    concordant, counted = ranking.within_user_pairs(y, score, campaign, user)
    assert counted.sum() == pairs > 0
    assert concordant.sum() == pytest.approx(right)


def test_a_factor_shared_by_a_campaigns_users_does_not_move_the_within_user_auc():
    y, score, campaign, user = _data(3)
    score = score + 0.05
    base = ranking.within_user_pairs(y, score, campaign, user)
    by_campaign = np.random.default_rng(9).uniform(0.5, 3, 12)
    scaled = ranking.within_user_pairs(y, score * by_campaign[campaign], campaign, user)
    np.testing.assert_allclose(scaled[0], base[0])
    np.testing.assert_array_equal(scaled[1], base[1])
    # Without the division by the campaign's mean it would: the scaled scores' raw order differs.
    assert not np.array_equal(np.argsort(score * by_campaign[campaign]), np.argsort(score))


@pytest.mark.parametrize("seed", [0, 4])
def test_within_campaign_ap_is_sklearns_ap_per_campaign_weighted_by_positives(seed):
    y, score, campaign, _ = _data(seed)
    expected_num = expected_den = 0.0
    for c in np.unique(campaign):
        rows = campaign == c
        if 0 < y[rows].sum() < rows.sum():
            expected_num += y[rows].sum() * average_precision_score(y[rows], score[rows])
            expected_den += y[rows].sum()
    ap, positives = ranking.within_campaign_ap(y, score, campaign)
    assert (ap * positives).sum() / positives.sum() == pytest.approx(expected_num / expected_den)
    # A campaign's constant score gives its positive rate; a perfect score 1.
    const_ap, _ = ranking.within_campaign_ap(y, np.zeros_like(score), campaign)
    groups = ranking.campaign_groups(y, campaign)
    np.testing.assert_allclose(const_ap, [y[g].mean() for g in groups])
    np.testing.assert_allclose(ranking.within_campaign_ap(y, y, campaign)[0], 1.0)


def test_the_cluster_bootstrap_resamples_clusters_and_seeds():
    rng = np.random.default_rng(0)
    num = {"a": np.ones((50, 3)) * [1, 2, 3], "b": np.ones(50)}
    den = {"a": np.full((50, 3), 2.0), "b": np.ones(50) * 4}
    draws, seed_w = ranking.cluster_bootstrap(num, den, 100, rng)
    np.testing.assert_allclose(draws["a"], np.tile([0.5, 1.0, 1.5], (100, 1)))  # ratios of constant clusters
    np.testing.assert_allclose(draws["b"], 0.25)
    assert seed_w.shape == (100, 3) and (seed_w.sum(axis=1) == 3).all()

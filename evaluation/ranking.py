"""Offline metrics that see what the simulated auctions see, beside pooled AP.

Pooled AP ranks every test impression against every other, so a model gains by knowing which *users* stream
after any ad (their responsiveness) and which *campaigns* get streams from anyone (show appeal, creative quality).
The A/B test's designs ignore some of that:

- **Within-user ranking** (:func:`within_user_pairs`), for the auction design: each ad slot goes to the campaign
  whose bid, the CPM times the score over the campaign's mean score, is highest among the user's campaigns. A
  factor shared by all of a user's campaigns cancels, and the division cancels one shared by all of a campaign's
  users. The metric: over every pair of test impressions of one user, of two different campaigns, one streamed
  and one not, the share where the streamed one has the higher campaign-normalised score (ties count half), i.e.
  an AUC within users. 0.5 is chance.
- **Within-campaign AP** (:func:`within_campaign_ap`), for the audience design: each campaign buys its top-scored
  users, so only the ranking of users within a campaign matters (a user factor does). The metric: AP over each
  campaign's test impressions, averaged over the campaigns with both outcomes, weighted by their streams. A
  constant scores the campaigns' stream rates.

Both come with cluster-bootstrap intervals (:func:`cluster_bootstrap`) that resample users or campaigns, and the
training seeds, with replacement.

    >>> concordant, pairs = within_user_pairs(y, scores, campaign, user)
    >>> float(concordant.sum() / pairs.sum())        # the within-user AUC
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .intervals import average_precision, seed_draws


def campaign_normalised(score: np.ndarray, campaign: np.ndarray) -> np.ndarray:
    """Each score over the mean score of its campaign's rows (1 where that mean is 0): the relative value bid."""
    _, inverse = np.unique(campaign, return_inverse=True)
    sums = np.bincount(inverse, weights=score)
    counts = np.bincount(inverse)
    mean = (sums / counts)[inverse]
    return np.divide(score, mean, out=np.ones_like(score, dtype=np.float64), where=mean != 0)


def user_pairs(y: np.ndarray, campaign: np.ndarray, user: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (positive row, negative row) pair of one user and two different campaigns: the positive's and the
    negative's row positions and the pair's user (a group index, 0..users-1 over users with a pair)."""
    y = np.asarray(y) > 0
    order = np.lexsort((~y, user))  # per user, positives first
    u, pos = user[order], y[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], len(u)]
    first, second, owner = [], [], []
    for s, e in zip(starts, ends, strict=True):
        n_pos = int(pos[s:e].sum())
        if n_pos == 0 or n_pos == e - s:
            continue
        p_rows, n_rows = order[s : s + n_pos], order[s + n_pos : e]
        i, j = np.repeat(p_rows, len(n_rows)), np.tile(n_rows, len(p_rows))
        keep = campaign[i] != campaign[j]
        first.append(i[keep])
        second.append(j[keep])
        owner.append(np.full(int(keep.sum()), int(u[s])))
    if not first:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    users = np.concatenate(owner)
    _, group = np.unique(users, return_inverse=True)
    return np.concatenate(first), np.concatenate(second), group


def within_user_pairs(
    y: np.ndarray, score: np.ndarray, campaign: np.ndarray, user: np.ndarray, pairs=None
) -> tuple[np.ndarray, np.ndarray]:
    """Per user with a pair (see :func:`user_pairs`, which ``pairs`` may hold precomputed): the concordant pairs
    of campaign-normalised scores (ties half) and the pairs. Their sums' ratio is the within-user AUC."""
    first, second, group = pairs if pairs is not None else user_pairs(y, campaign, user)
    s = campaign_normalised(np.asarray(score, np.float64), campaign)
    right = (s[first] > s[second]) + 0.5 * (s[first] == s[second])
    n_groups = int(group.max()) + 1 if group.size else 0
    return np.bincount(group, weights=right, minlength=n_groups), np.bincount(group, minlength=n_groups).astype(float)


def campaign_groups(y: np.ndarray, campaign: np.ndarray) -> list[np.ndarray]:
    """The row positions of each campaign with both a positive and a negative row (in campaign id order)."""
    y = np.asarray(y) > 0
    order = np.argsort(campaign, kind="stable")
    c = campaign[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    groups = np.split(order, starts[1:])
    return [g for g in groups if 0 < y[g].sum() < g.size]


def within_campaign_ap(
    y: np.ndarray, score: np.ndarray, campaign: np.ndarray, groups=None
) -> tuple[np.ndarray, np.ndarray]:
    """Per campaign with both outcomes (see :func:`campaign_groups`, which ``groups`` may hold): its AP and its
    positives. The positive-weighted mean of the APs is the within-campaign AP."""
    groups = campaign_groups(y, campaign) if groups is None else groups
    y = np.asarray(y, np.float64)
    ap = np.array([average_precision(y[g], np.asarray(score, np.float64)[g]) for g in groups])
    return ap, np.array([y[g].sum() for g in groups])


def cluster_bootstrap(
    numerators: Mapping[str, np.ndarray],
    denominators: Mapping[str, np.ndarray],
    resamples: int,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Ratio-of-sums figures under resampling of the clusters (users or campaigns, axis 0 of every array, shared by
    every model: paired). ``numerators[k]``, ``denominators[k]``: ``[clusters]`` or ``[clusters, seeds]``.
    Returns per key the ``[resamples, seeds]`` (or ``[resamples, 1]``) ratios, and the ``[resamples, seeds]``
    seed draws for seed means (one per resample, shared by every key)."""
    n = next(iter(numerators.values())).shape[0]
    n_seeds = max((v.shape[1] for v in numerators.values() if v.ndim == 2), default=1)
    weights = np.stack([np.bincount(p, minlength=n) for p in rng.integers(0, n, size=(resamples, n))]).astype(float)
    out = {}
    for k, num in numerators.items():
        num2 = num if num.ndim == 2 else num[:, None]
        den2 = denominators[k] if denominators[k].ndim == 2 else denominators[k][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = (weights @ num2) / (weights @ den2)
    return out, seed_draws(rng, resamples, n_seeds)

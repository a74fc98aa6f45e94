"""Rankings from scored pairs: per campaign its best users (merged across user blocks), per user its best campaigns.

Order everywhere: score descending, ties by id ascending (``user_id`` within a campaign, ``campaign_id`` within a
user), so a ranking never depends on the order pairs arrive in. A campaign's audience is a global top-K over every
user block: each block keeps its own best ``limit`` users per campaign (:func:`block_top_users`), and
:func:`merge_top_users` merges those partial lists; both keep at most ``limit`` users, so memory is bounded by the
audience size, never by the number of users::

    >>> a = TopUsers(campaign_id=7, limit=2, eligible=2, user_ids=np.array([5, 9]), scores=np.array([.9, .1], "f4"))
    >>> b = TopUsers(campaign_id=7, limit=2, eligible=1, user_ids=np.array([3]), scores=np.array([.9], "f4"))
    >>> merged = merge_top_users([a, b])
    >>> merged.user_ids.tolist(), merged.eligible
    ([3, 5], 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

_WORST = np.uint64(np.iinfo(np.uint64).max)


@dataclasses.dataclass
class TopUsers:
    """A campaign's best users so far, best first; ``eligible`` counts every eligible user seen, kept or not."""

    campaign_id: int
    limit: int
    eligible: int
    user_ids: np.ndarray  # int64
    scores: np.ndarray  # float32


def rank_keys(scores: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is score descending, then ``tie`` ascending (``0 <= tie < 2**32``).

    The float32 bits are mapped to an unsigned integer of the same order, so ties are exact, and a partial sort
    (``argpartition``) of the keys picks the same rows as a full sort would.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; a model must give a probability for every pair")
    bits = scores.view(np.uint32)
    ordered = np.where((bits >> 31).astype(bool), ~bits, bits | np.uint32(0x80000000))  # ascending with the float value
    return (~ordered).astype(np.uint64) << np.uint64(32) | tie.astype(np.uint64)


def _best(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest keys, smallest first."""
    if k < len(keys):
        part = np.argpartition(keys, k - 1)[:k]
        return part[np.argsort(keys[part], kind="stable")]
    return np.argsort(keys, kind="stable")


def block_top_users(
    scores: np.ndarray,
    pair_user: np.ndarray,
    pair_campaign: np.ndarray,
    user_ids: np.ndarray,
    campaign_ids: np.ndarray,
    limits: np.ndarray,
) -> list[TopUsers]:
    """Per campaign with eligible users in the block, its best ``limits[c]`` of them.

    Pairs must be sorted by campaign (as :func:`podtarget.transforms.arrow.candidates.find_candidates` gives them) and
    the block's users sorted by id, so that a user's index breaks ties like its id.
    """
    bounds = np.searchsorted(pair_campaign, np.arange(len(campaign_ids) + 1))
    out = []
    for c in np.flatnonzero(np.diff(bounds)):
        lo, hi = bounds[c], bounds[c + 1]
        limit = int(limits[c])
        keys = rank_keys(scores[lo:hi], pair_user[lo:hi])
        best = _best(keys, limit) if limit else np.empty(0, np.int64)
        out.append(
            TopUsers(
                campaign_id=int(campaign_ids[c]),
                limit=limit,
                eligible=int(hi - lo),
                user_ids=user_ids[pair_user[lo:hi][best]].astype(np.int64),
                scores=scores[lo:hi][best].astype(np.float32),
            )
        )
    return out


def merge_top_users(parts: Iterable[TopUsers]) -> TopUsers:
    """One campaign's partial lists merged into its best ``limit`` users (associative and commutative)."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_top_users needs at least one partial list")
    first = parts[0]
    if any(p.campaign_id != first.campaign_id or p.limit != first.limit for p in parts):
        raise ValueError(f"partial lists of different campaigns or limits: {[(p.campaign_id, p.limit) for p in parts]}")
    user_ids = np.concatenate([p.user_ids for p in parts]).astype(np.int64)
    scores = np.concatenate([p.scores for p in parts]).astype(np.float32)
    order = np.lexsort((user_ids, -scores))[: first.limit]
    return TopUsers(first.campaign_id, first.limit, sum(p.eligible for p in parts), user_ids[order], scores[order])


def top_campaigns_per_user(
    scores: np.ndarray, pair_user: np.ndarray, pair_campaign: np.ndarray, n_users: int, n_campaigns: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's best ``n`` campaigns of a block: ``(user index, rank from 1, pair index)`` arrays, by user then
    rank. Campaign indices must follow campaign ids (ties go to the lower id). Memory: one key per (user, campaign)
    of the block."""
    keys = np.full((n_users, n_campaigns), _WORST, np.uint64)
    keys[pair_user, pair_campaign] = rank_keys(scores, pair_campaign)
    pair_of = np.full((n_users, n_campaigns), -1, np.int64)
    pair_of[pair_user, pair_campaign] = np.arange(len(scores))
    k = min(n, n_campaigns)
    if k == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    cols = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n_campaigns else np.tile(np.arange(k), (n_users, 1))
    chosen = np.take_along_axis(keys, cols, axis=1)
    order = np.argsort(chosen, axis=1, kind="stable")
    cols, chosen = np.take_along_axis(cols, order, axis=1), np.take_along_axis(chosen, order, axis=1)
    valid = chosen != _WORST
    users = np.broadcast_to(np.arange(n_users)[:, None], cols.shape)[valid]
    ranks = np.broadcast_to(np.arange(1, k + 1)[None, :], cols.shape)[valid]
    pairs = pair_of[users, cols[valid]]
    return users.astype(np.int64), ranks.astype(np.int64), pairs

"""The world's ground truth as scores: the yardsticks the evaluation measures models against (only the evaluation
reads ``world/``; training, features and scoring never do).

- :func:`logged_stream_probability`: each example row's true stream probability in the context it was logged in
  (its device, hour, surface, slot, creative or promotion placement, and, for ads, the user's earlier impressions
  of the campaign that day as fatigue). Ranking the test rows by it gives the highest AP any model can expect.
- :func:`shared_stream_logit`: only the terms both channels share (the user x show affinity, the language match,
  the show's appeal): what a model could learn from promotions alone, at best, about ads.
- :func:`reference_scores`: both (the shared terms as a probability, with the channel's intercept), and a
  constant (AP = the positive rate), for rows of the example table.

Ids in the examples are 1-based: ``user_id - 1`` is the world's user index, and so on for shows and creatives.

    >>> scores = reference_scores(world, test_rows)        # {"constant": ..., "truth_shared": ..., "truth": ...}
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..simulator.config import AD_SLOTS, DEVICES, PROMO_LAYOUTS, PROMO_SLOTS, SURFACES
from ..simulator.world import World

# Reference scores of test rows, in report order: (name, label).
REFERENCES = (
    ("constant", "a constant (AP = the positive rate)"),
    ("truth_shared", "ground truth, shared terms only (user x show affinity, language match, show appeal)"),
    ("truth", "ground truth, every term, in the logged context"),
)


def shared_stream_logit(world: World, user: np.ndarray, podcast: np.ndarray) -> np.ndarray:
    """The stream logit's terms that ads and promotions share, without intercept, context or channel effects
    (world indices, 0-based)."""
    gt = world.config.ground_truth
    mismatch = world.user_language[user] != world.podcasts.language[podcast]
    return (
        gt.affinity_stream * world.affinity(user, podcast)
        + gt.appeal_stream * world.appeal(podcast)
        - gt.language_mismatch * mismatch
    )


def _codes(column: pa.ChunkedArray | pa.Array, vocabulary: tuple[str, ...] | list[str]) -> np.ndarray:
    """Codes of a string column into ``vocabulary`` (0 where null or unknown: such rows are not of the channel)."""
    values = column.to_pylist()
    index = {v: i for i, v in enumerate(vocabulary)}
    return np.array([index.get(v, 0) for v in values], np.int64)


def same_day_exposures(table: pa.Table) -> np.ndarray:
    """Per row, the earlier impressions of its campaign to its user on its UTC day (the simulator's ad fatigue
    count), from the rows' own timestamps."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, np.int64)
    ts = pc.cast(table.column("event_ts"), pa.int64()).to_numpy(zero_copy_only=False)
    day = ts // 86_400_000
    user = table.column("user_id").to_numpy(zero_copy_only=False)
    campaign = table.column("campaign_id").to_numpy(zero_copy_only=False)
    order = np.lexsort((ts, campaign, user, day))
    key = np.stack([day[order], user[order], campaign[order]], axis=1)
    new_group = np.r_[True, (key[1:] != key[:-1]).any(axis=1)]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    out = np.empty(n, np.int64)
    out[order] = np.arange(n) - group_start
    return out


def logged_stream_probability(world: World, table: pa.Table) -> np.ndarray:
    """The true stream probability of each example row (ad or promotion) in its logged context."""
    n = table.num_rows
    out = np.zeros(n)
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    user = table.column("user_id").to_numpy(zero_copy_only=False).astype(np.int64) - 1
    podcast = table.column("podcast_id").to_numpy(zero_copy_only=False).astype(np.int64) - 1
    context = {
        "surface": _codes(table.column("surface"), SURFACES),
        "device": _codes(table.column("device"), DEVICES),
        "hour": table.column("hour").to_numpy(zero_copy_only=False).astype(np.int64),
    }

    def ad_context(rows: pa.Table) -> dict[str, np.ndarray]:
        return {
            "creative": rows.column("creative_id").to_numpy(zero_copy_only=False).astype(np.int64) - 1,
            "ad_slot": _codes(rows.column("ad_slot"), AD_SLOTS),
            "prior_exposures": same_day_exposures(rows),
        }

    def promo_context(rows: pa.Table) -> dict[str, np.ndarray]:
        return {
            "promo_slot": _codes(rows.column("promo_slot"), PROMO_SLOTS),
            "layout": _codes(rows.column("promo_layout"), PROMO_LAYOUTS),
            "position": rows.column("promo_position").to_numpy(zero_copy_only=False).astype(np.int64),
        }

    for channel, own_context in (("ad", ad_context), ("promo", promo_context)):
        mine = np.flatnonzero(source == channel)
        if mine.size:
            p = world.outcome_probabilities(
                user[mine],
                podcast[mine],
                channel,
                **{k: v[mine] for k, v in context.items()},
                **own_context(table.take(pa.array(mine))),
            )
            out[mine] = p.stream
    return out


def reference_scores(world: World | None, table: pa.Table) -> dict[str, np.ndarray]:
    """The reference scores of ``table``'s rows (every name of :data:`REFERENCES`; only ``constant`` without a
    world, e.g. for logs of your own)."""
    out = {"constant": np.zeros(table.num_rows)}
    if world is None:
        return out
    user = table.column("user_id").to_numpy(zero_copy_only=False).astype(np.int64) - 1
    podcast = table.column("podcast_id").to_numpy(zero_copy_only=False).astype(np.int64) - 1
    gt = world.config.ground_truth
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    intercept = np.where(source == "ad", gt.stream_intercept_ad, gt.stream_intercept_promo)
    # As a probability (the channel's intercept added; it ranks the rows of a channel as the logit does), so that
    # scores over a campaign's mean (the auction's relative bids, evaluation/ranking.py) mean what they say.
    out["truth_shared"] = 1.0 / (1.0 + np.exp(-(intercept + shared_stream_logit(world, user, podcast))))
    out["truth"] = logged_stream_probability(world, table)
    return out

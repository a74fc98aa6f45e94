"""Assemble model inputs: impressions joined point-in-time with features, context and campaign metadata.

The one place where a (user, show, campaign, context) row becomes a row of ``podtarget.schemas.derived.EXAMPLES``: the
examples pipeline calls it with labels, the scoring pipeline with candidate pairs and no labels, so training and
serving inputs are built by the same code::

    >>> impressions = unify_impressions(ad_rows, promo_rows)                       # doctest: +SKIP
    >>> examples = assemble_examples(impressions, labels, user_features, podcast_features,
    ...                              campaigns, creatives, day)                      # doctest: +SKIP

Joins use sorted-id lookups (``take``) rather than Acero's hash join, which cannot carry list-typed columns.
"""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...schemas.derived import EXAMPLES, LABELS, PODCAST_FEATURES, USER_FEATURES
from ...schemas.units import MS_PER_DAY, MS_PER_HOUR
from .arrays import positions_of

# Impressions of both channels in one shape (ad-only columns null for promotions and vice versa).
IMPRESSIONS = pa.schema(
    [
        ("impression_id", pa.string()),
        ("source", pa.string()),
        ("event_ts", pa.int64()),
        ("user_id", pa.int64()),
        ("podcast_id", pa.int64()),
        ("campaign_id", pa.int64()),
        ("creative_id", pa.int64()),
        ("surface", pa.string()),
        ("device", pa.string()),
        ("country", pa.string()),
        ("ad_slot", pa.string()),
        ("ad_format", pa.string()),
        ("promo_slot", pa.string()),
        ("promo_layout", pa.string()),
        ("promo_position", pa.int16()),
    ]
)

_CONTEXT_COLUMNS = (
    "surface",
    "device",
    "country",
    "ad_slot",
    "ad_format",
    "promo_slot",
    "promo_layout",
    "promo_position",
)
_AD_RENAMES = {"slot": "ad_slot"}
_PROMO_RENAMES = {"slot": "promo_slot", "layout": "promo_layout", "position": "promo_position"}


def _to_impressions(rows: pa.Table, source: str, renames: dict[str, str]) -> pa.Table:
    columns = {renames.get(name, name): rows.column(name) for name in rows.column_names}
    n = rows.num_rows
    arrays = []
    for field in IMPRESSIONS:
        if field.name == "source":
            arrays.append(pa.array([source] * n, pa.string()))
        elif field.name in columns:
            arrays.append(columns[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=IMPRESSIONS)


def unify_impressions(ad: pa.Table | None, promo: pa.Table | None) -> pa.Table:
    """Ad and promotion impression rows (raw Arrow schemas) as one :data:`IMPRESSIONS` table."""
    parts = []
    if ad is not None:
        parts.append(_to_impressions(ad, "ad", _AD_RENAMES))
    if promo is not None:
        parts.append(_to_impressions(promo, "promo", _PROMO_RENAMES))
    return pa.concat_tables(parts) if parts else IMPRESSIONS.empty_table()


def lookup(keys: np.ndarray, table: pa.Table, key_column: str) -> pa.Table:
    """Rows of ``table`` matching each key (null rows where absent), in the order of ``keys``."""
    if table.num_rows == 0:
        return pa.Table.from_arrays([pa.nulls(len(keys), f.type) for f in table.schema], schema=table.schema)
    pos = positions_of(keys, table.column(key_column).to_numpy())
    return table.take(pa.array(pos, mask=pos < 0))


def _list_contains(lists: pa.ChunkedArray | pa.Array, values: np.ndarray) -> np.ndarray:
    """For each row i: does list ``lists[i]`` contain ``values[i]``? (nulls and empty lists: False)"""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy()
    hit = np.zeros(len(values), bool)
    if len(flat):
        hit[parents[flat == values[parents]]] = True  # setting True is idempotent: no need for ufunc.at
    return hit


def list_membership(lists: pa.ChunkedArray | pa.Array, candidates: np.ndarray) -> np.ndarray:
    """``[len(lists), len(candidates)]`` matrix: does list ``lists[i]`` contain ``candidates[j]``?

    The all-pairs form of ``_list_contains`` with the same rules (nulls and empty lists contain nothing), so that
    scoring fills the user-show columns of every user against every campaign without a row per pair. Cost: one
    pass over the list values, whatever the number of candidates.
    """
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy()
    unique, column = np.unique(np.asarray(candidates), return_inverse=True)
    hit = np.zeros((len(lists), len(unique)), bool)
    if len(flat) and len(unique):
        pos = np.searchsorted(unique, flat).clip(max=len(unique) - 1)
        found = unique[pos] == flat
        hit[parents[found], pos[found]] = True
    return hit[:, column]


def assemble_examples(
    impressions: pa.Table,
    labels: pa.Table | None,
    user_features: pa.Table,
    podcast_features: pa.Table,
    campaigns: pa.Table,
    creatives: pa.Table,
    day: datetime.date,
) -> pa.Table:
    """Rows of :data:`EXAMPLES`, one per impression, in the order of ``impressions``.

    Args:
        impressions: :data:`IMPRESSIONS` rows served on ``day``.
        labels: ``impression_id`` plus the label columns, same rows in the same order; None for scoring (labels
            null).
        user_features, podcast_features: the snapshots of ``day`` (``USER_FEATURES``, ``PODCAST_FEATURES``).
        campaigns, creatives: the raw campaign and creative snapshots of ``day``.
    """
    n = impressions.num_rows
    if labels is not None and labels.num_rows != n:
        raise ValueError(f"labels has {labels.num_rows} rows for {n} impressions; expected one row per impression")
    ts = impressions.column("event_ts").to_numpy()
    user_ids = impressions.column("user_id").to_numpy()
    podcast_ids = impressions.column("podcast_id").to_numpy()
    users = lookup(user_ids, user_features, "user_id")
    podcasts = lookup(podcast_ids, podcast_features, "podcast_id")
    campaign = lookup(impressions.column("campaign_id").to_numpy(), campaigns, "campaign_id")
    creative_ids = pc.fill_null(impressions.column("creative_id"), -1).to_numpy()
    creative = lookup(creative_ids, creatives, "creative_id")
    day_number = (day - datetime.date(1970, 1, 1)).days
    start_days = pc.cast(campaign.column("start_date"), pa.int32()).to_numpy(zero_copy_only=False)

    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "impression_id": impressions.column("impression_id"),
        "source": impressions.column("source"),
        "event_ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "user_id": impressions.column("user_id"),
        "podcast_id": impressions.column("podcast_id"),
        "campaign_id": impressions.column("campaign_id"),
        "creative_id": impressions.column("creative_id"),
        "hour": pa.array((ts // MS_PER_HOUR) % 24, pa.int8()),
        "weekday": pa.array(((ts // MS_PER_DAY) + 3) % 7, pa.int8()),  # 1970-01-01 was a Thursday
        "campaign_objective": campaign.column("objective"),
        "campaign_cpm_micros": campaign.column("cpm_micros"),
        "campaign_age_days": pa.array(day_number - start_days, pa.int32()),
        "creative_duration_s": creative.column("duration_s"),
        "creative_has_cta": creative.column("has_call_to_action"),
        "user_listened_podcast_28d": pa.array(_list_contains(users.column("user_recent_podcasts_28d"), podcast_ids)),
        "user_follows_podcast": pa.array(_list_contains(users.column("user_followed_podcasts_28d"), podcast_ids)),
        "language_match": pc.equal(users.column("user_language"), podcasts.column("podcast_language")),
    }
    for name in _CONTEXT_COLUMNS:
        columns[name] = impressions.column(name)
    for name in LABELS:
        columns[name] = labels.column(name) if labels is not None else pa.nulls(n, pa.int8())
    for field in USER_FEATURES:
        if field.name != "user_id":
            columns[field.name] = users.column(field.name)
    for field in PODCAST_FEATURES:
        if field.name != "podcast_id":
            columns[field.name] = podcasts.column(field.name)
    arrays = [pc.cast(columns[f.name], f.type) for f in EXAMPLES]
    return pa.Table.from_arrays(arrays, schema=EXAMPLES)

"""Daily point-in-time feature snapshots: ``features/user/dt=D`` and ``features/podcast/dt=D``.

Pure functions over Arrow tables (numpy + pyarrow, no Beam), vectorised for about a million streams per call.
Point in time: every history window is ``[D - days, D)`` in UTC epoch milliseconds, so nothing logged at or after
D 00:00:00.000 UTC can leak into the features of day D, whatever rows the caller passes in.

Podcast listening is aggregated in two steps, so a pipeline can run the first on each file and combine the rest::

    >>> import datetime
    >>> from podtarget.transforms.runtime.storage import arrow_schema
    >>> day = datetime.date(2026, 3, 5)
    >>> streams = arrow_schema("stream").empty_table()
    >>> listening = merge_listening([podcast_listening_ms(streams, day)])
    >>> podcasts = arrow_schema("podcast").empty_table()
    >>> podcast_features(day, podcasts, listening).schema.equals(PODCAST_FEATURES)
    True
    >>> history_window_ms(day, 1)
    (1772582400000, 1772668800000)

A stream *qualifies* when ``ms_played >= min_stream_ms`` (60 s): the schema docs say ">= 60 s" for users and
"> 60 s" for shows; one rule, ``>=``, is used for both so that a user's hours and a show's hours agree.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...common.checks import check_int, invalid
from ...schemas.derived import PODCAST_FEATURES, POPULARITY_TIERS, USER_FEATURES
from ...schemas.units import MS_PER_DAY, MS_PER_HOUR

_EPOCH = datetime.date(1970, 1, 1)

# The log tables a snapshot's history reads (their rows logged in the look-back window before D).
HISTORY_TABLES = ("stream", "follow", "ad_impression", "promo_impression", "click")

LISTENING = pa.schema(
    [pa.field("podcast_id", pa.int64(), nullable=False), pa.field("listen_ms", pa.int64(), nullable=False)]
)
"""Partial or merged podcast listening: qualifying milliseconds per show, one row per show, sorted by id."""


@dataclass(frozen=True)
class FeatureConfig:
    """Windows, thresholds and list lengths of the feature snapshots (defaults match the schema docs)."""

    user_history_days: int = 28
    podcast_history_days: int = 30
    min_stream_ms: int = 60_000  # a stream qualifies with ms_played >= this, for users and shows alike
    top_genres: int = 5
    top_topics: int = 10
    recent_podcasts: int = 20
    followed_podcasts: int = 50
    # An impression converts when the user streams its show within this many hours (and before D): the stream
    # windows of the examples' labels (build_examples --stream_window_hours), so a user's past conversions are
    # the positives their earlier impressions would have been labelled with.
    ad_conversion_hours: int = 48
    promo_conversion_hours: int = 72
    tier_shares: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.15, 0.20)  # tiers 0..5, as shares of all shows

    def __post_init__(self) -> None:
        positive = (
            "user_history_days",
            "podcast_history_days",
            "top_genres",
            "top_topics",
            "recent_podcasts",
            "followed_podcasts",
            "ad_conversion_hours",
            "promo_conversion_hours",
        )
        for name in positive:
            check_int("FeatureConfig", name, getattr(self, name), low=1)
        check_int("FeatureConfig", "min_stream_ms", self.min_stream_ms, low=0)
        shares = self.tier_shares
        n_ranked = POPULARITY_TIERS - 2  # tier 6 (any other listening) and 7 (none) take no share
        if (
            not isinstance(shares, tuple)
            or len(shares) != n_ranked
            or not all(isinstance(s, int | float) and not isinstance(s, bool) and 0 < s < 1 for s in shares)
            or not sum(shares) < 1
        ):
            expected = f"a tuple of {n_ranked} numbers in the range (0, 1) summing to less than 1"
            raise invalid("FeatureConfig", "tier_shares", expected, shares)


def history_window_ms(day: datetime.date, days: int) -> tuple[int, int]:
    """``[start_ms, end_ms)``: the ``days`` whole UTC days before ``day``, in epoch milliseconds."""
    end = (day - _EPOCH).days * MS_PER_DAY
    return end - days * MS_PER_DAY, end


# -- users ---------------------------------------------------------------------------------------------------------
def user_features(
    day: datetime.date,
    users: pa.Table,
    podcasts: pa.Table,
    streams: pa.Table,
    follows: pa.Table,
    ad_impressions: pa.Table,
    promo_impressions: pa.Table,
    clicks: pa.Table,
    config: FeatureConfig = FeatureConfig(),
) -> pa.Table:
    """``USER_FEATURES`` of ``day``: one row per user of the snapshot ``users``, sorted by ``user_id``.

    Event tables may hold rows from any day: only ``event_ts`` in ``[D - user_history_days, D)`` is used, rows with
    a null id are skipped, and events of users missing from the snapshot are ignored. Genres and topics of streamed
    shows come from the ``podcasts`` snapshot (a show missing from it still counts in streams, hours and the show
    lists, but adds no genre or topic). A click is an ad click if its ``impression_id`` is among the ad impressions'
    ids, else a promotion click if among the promotions' ids, else ignored; the impressions may be of any day.
    """
    users = _unique_by_id(users, "user_id")
    user_ids = users.column("user_id").to_numpy()
    n_users = len(user_ids)
    window = history_window_ms(day, config.user_history_days)

    def count(table: pa.Table) -> np.ndarray:
        return _count_per_id(user_ids, _in_window(table, window, ["user_id"]).column("user_id").to_numpy())

    # Streams: counts and hours per user, then (user, show) pairs for distinct shows, show lists and tastes.
    played = _in_window(streams, window, ["user_id", "podcast_id", "ms_played"], min_ms_played=config.min_stream_ms)
    conversions = {
        channel: _conversions(user_ids, _in_window(impressions, window, ["user_id", "podcast_id"]), played, hours)
        for channel, impressions, hours in (
            ("ad", ad_impressions, config.ad_conversion_hours),
            ("promo", promo_impressions, config.promo_conversion_hours),
        )
    }
    rows, known = _positions(user_ids, played.column("user_id").to_numpy())
    rows, shows = rows[known], played.column("podcast_id").to_numpy()[known]
    ms_played = played.column("ms_played").to_numpy()[known]
    stream_count = np.bincount(rows, minlength=n_users).astype(np.int32)
    hours = (np.bincount(rows, weights=ms_played, minlength=n_users) / MS_PER_HOUR).astype(np.float32)
    pair_user, pair_show, pair_streams = _sum_pairs(rows, shows, np.ones(len(rows), np.int64))
    distinct = np.bincount(pair_user, minlength=n_users).astype(np.int32)
    order = _top_per_group(pair_user, pair_streams, config.recent_podcasts)  # ties: pairs are sorted by show
    recent = _list_array(pair_user[order], pa.array(pair_show[order], pa.int64()), n_users)

    podcasts = _unique_by_id(podcasts, "podcast_id")
    show_rows, show_known = _positions(podcasts.column("podcast_id").to_numpy(), pair_show)
    tastes = (pair_user[show_known], show_rows[show_known], pair_streams[show_known])
    top_genres = _top_labels(*tastes, podcasts.column("genres"), config.top_genres, n_users)
    top_topics = _top_labels(*tastes, podcasts.column("topics"), config.top_topics, n_users)

    follow_count, followed = _followed(_in_window(follows, window, ["user_id", "podcast_id"]), user_ids, config)

    ad_clicks, promo_clicks = _classify_clicks(
        _in_window(clicks, window, ["user_id", "impression_id"]), ad_impressions, promo_impressions
    )

    columns = {
        "user_id": users.column("user_id"),
        "user_country": users.column("country"),
        "user_age_bucket": users.column("age_bucket"),
        "user_account_type": users.column("account_type"),
        "user_primary_device": users.column("primary_device"),
        "user_language": users.column("language"),
        "user_tenure_days": _days_until(day, users.column("signup_date")),
        "user_streams_28d": stream_count,
        "user_listen_hours_28d": hours,
        "user_distinct_podcasts_28d": distinct,
        "user_follows_28d": follow_count,
        "user_top_genres_28d": top_genres,
        "user_top_topics_28d": top_topics,
        "user_recent_podcasts_28d": recent,
        "user_followed_podcasts_28d": followed,
        "user_ad_impressions_28d": count(ad_impressions),
        "user_ad_clicks_28d": count(ad_clicks),
        "user_promo_impressions_28d": count(promo_impressions),
        "user_promo_clicks_28d": count(promo_clicks),
        "user_ad_conversions_28d": conversions["ad"],
        "user_promo_conversions_28d": conversions["promo"],
    }
    return _assemble(columns, USER_FEATURES)


def _conversions(user_ids: np.ndarray, impressions: pa.Table, streams: pa.Table, hours: int) -> np.ndarray:
    """Per user of ``user_ids`` (sorted), the ``impressions`` followed by one of the ``streams`` of the same show
    by the same user within ``hours`` (``streams`` are already cut at D, so a window that crosses D ends there).

    Impressions and streams are sorted together by (user, show, time), a stream after an impression at the same
    millisecond; the next stream at or after each position is a running minimum from the end, so each impression
    finds the first stream of its pair at or after it without a search."""
    n_imp = impressions.num_rows
    if n_imp == 0 or streams.num_rows == 0:
        return np.zeros(len(user_ids), np.int32)
    user = np.concatenate([impressions.column("user_id").to_numpy(), streams.column("user_id").to_numpy()])
    show = np.concatenate([impressions.column("podcast_id").to_numpy(), streams.column("podcast_id").to_numpy()])
    ts = np.concatenate([_epoch_ms(impressions), _epoch_ms(streams)])
    is_stream = np.arange(len(user)) >= n_imp
    _, user_codes = np.unique(user, return_inverse=True)
    pair = _pair_keys(user_codes, show)
    order = np.lexsort((is_stream, ts, pair))
    pair, ts, is_stream = pair[order], ts[order], is_stream[order]
    position = np.arange(len(order))
    none = len(order)
    next_stream = np.minimum.accumulate(np.where(is_stream, position, none)[::-1])[::-1]
    imp = np.flatnonzero(~is_stream)
    nxt = next_stream[imp]
    found = nxt < none
    nxt = np.where(found, nxt, 0)
    converted = found & (pair[nxt] == pair[imp]) & (ts[nxt] < ts[imp] + hours * MS_PER_HOUR)
    return _count_per_id(user_ids, user[order][imp[converted]])


def _epoch_ms(table: pa.Table) -> np.ndarray:
    return table.column("event_ts").cast(pa.int64()).to_numpy()


def _followed(follows: pa.Table, user_ids: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, pa.Array]:
    """Follow events per user, and each user's distinct followed shows, most recently followed first.

    Follows are counted as events (a re-follow counts again); the list holds each show once, at its latest follow,
    with ties on the timestamp broken by the smaller ``podcast_id``.
    """
    n_users = len(user_ids)
    rows, known = _positions(user_ids, follows.column("user_id").to_numpy())
    rows = rows[known]
    shows = follows.column("podcast_id").to_numpy()[known]
    ts = follows.column("event_ts").to_numpy()[known]
    counts = np.bincount(rows, minlength=n_users).astype(np.int32)
    order = np.lexsort((shows, -ts, rows))
    rows, shows = rows[order], shows[order]
    # The first row of each (user, show) pair in this order is its latest follow.
    _, first = np.unique(_pair_keys(rows, shows), return_index=True)
    latest = np.sort(first)
    rows, shows = rows[latest], shows[latest]
    keep = _rank_in_group(rows) < config.followed_podcasts
    return counts, _list_array(rows[keep], pa.array(shows[keep], pa.int64()), n_users)


def _classify_clicks(clicks: pa.Table, ad_impressions: pa.Table, promo_impressions: pa.Table) -> tuple[pa.Table, ...]:
    """``(ad_clicks, promo_clicks)``: clicks whose impression is an ad (checked first) or a promotion."""
    clicked = clicks.column("impression_id")
    is_ad = pc.is_in(clicked, value_set=_clicked_ids(ad_impressions, clicked))
    is_promo = pc.and_not(pc.is_in(clicked, value_set=_clicked_ids(promo_impressions, clicked)), is_ad)
    return clicks.filter(is_ad), clicks.filter(is_promo)


def _clicked_ids(impressions: pa.Table, clicked: pa.ChunkedArray) -> pa.Array:
    """Ids of ``impressions`` that were clicked: hashing the few clicks and probing the many impressions is much
    cheaper than building a hash set of every impression id."""
    ids = impressions.column("impression_id")
    return pc.unique(ids.filter(pc.is_in(ids, value_set=pc.unique(clicked))))


def _top_labels(
    pair_user: np.ndarray,
    show_row: np.ndarray,
    pair_streams: np.ndarray,
    labels: pa.ChunkedArray,
    k: int,
    n_users: int,
) -> pa.Array:
    """Per user, the ``k`` labels (genres or topics) with the most qualifying streams, ties by label name.

    ``show_row`` indexes ``labels`` (the list column of the podcast snapshot); a show with several labels counts
    its streams for each of them.
    """
    lengths = pc.fill_null(pc.list_value_length(labels), 0).to_numpy().astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    flat = pc.list_flatten(labels)
    # Codes ranked by name, so that sorting codes sorts names; null labels get no code.
    names = pc.unique(flat.drop_null())
    names = names.take(pc.sort_indices(names))
    codes = pc.fill_null(pc.index_in(flat, value_set=names), -1).to_numpy()

    per_pair = lengths[show_row]
    pair_of_label = np.repeat(np.arange(len(show_row)), per_pair)
    first_label = np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    label_code = codes[starts[show_row][pair_of_label] + np.arange(len(pair_of_label)) - first_label]
    named = label_code >= 0
    width = max(len(names), 1)
    keys, weight = _sum_by_key(
        pair_user[pair_of_label][named] * width + label_code[named], pair_streams[pair_of_label][named]
    )
    user, code = keys // width, keys % width
    order = _top_per_group(user, weight, k)  # ties: keys are sorted by code, that is by name
    return _list_array(user[order], names.take(pa.array(code[order], pa.int64())), n_users)


# -- podcasts ------------------------------------------------------------------------------------------------------
def podcast_listening_ms(streams: pa.Table, day: datetime.date, config: FeatureConfig = FeatureConfig()) -> pa.Table:
    """``LISTENING`` of one chunk of streams: qualifying ms per show in ``[D - podcast_history_days, D)``.

    Rows with a null ``user_id`` or ``podcast_id`` are skipped. Partials of many chunks combine with
    :func:`merge_listening`.
    """
    window = history_window_ms(day, config.podcast_history_days)
    played = _in_window(streams, window, ["user_id", "podcast_id", "ms_played"], min_ms_played=config.min_stream_ms)
    return merge_listening([played.select(["podcast_id", "ms_played"]).rename_columns(LISTENING.names)])


def merge_listening(partials: Iterable[pa.Table]) -> pa.Table:
    """``LISTENING`` summed per show over ``partials`` (associative: merged results merge again).

    Any iterable works, a generator included, so the function can serve as a Beam ``CombineGlobally`` callable.
    """
    table = pa.concat_tables([LISTENING.empty_table(), *(p.select(LISTENING.names).cast(LISTENING) for p in partials)])
    summed = table.group_by("podcast_id").aggregate([("listen_ms", "sum")]).rename_columns(LISTENING.names)
    return summed.sort_by("podcast_id").cast(LISTENING)


def popularity_tiers(listen_hours: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Popularity tier (int8, 0-7) of each show, given every show's listening hours (the whole snapshot).

    With ``n`` = ``len(listen_hours)`` (all shows, listened or not, so that tiers compare across days) and the
    shares ``s_0..s_5`` of ``config.tier_shares``, shows are ranked by hours, most first, equal hours keeping their
    input order (stable, so deterministic). The first ``ceil(n * s_0)`` ranks get tier 0, the next
    ``ceil(n * s_1)`` tier 1, and so on up to tier 5; every other show with hours > 0 gets tier 6, and shows with
    0 hours get tier 7, even where a quota above is not filled. For 200 shows with distinct positive hours the
    tiers hold 2, 4, 8, 16, 30, 40 and 100 shows.
    """
    hours = np.asarray(listen_hours, dtype=np.float64)
    if hours.ndim != 1 or not np.all(np.isfinite(hours)) or np.any(hours < 0):
        raise ValueError("listen_hours must be a 1-d array of finite hours >= 0")
    n = len(hours)
    # round() strips binary noise such as 100 * 0.07 = 7.000000000000001 before ceil().
    quotas = [math.ceil(round(n * share, 9)) for share in config.tier_shares]
    ends = np.cumsum(quotas)
    ranks = np.empty(n, np.int64)
    ranks[np.argsort(-hours, kind="stable")] = np.arange(n)
    tiers = np.searchsorted(ends, ranks, side="right")  # past the last quota: tier 6
    tiers[hours == 0] = POPULARITY_TIERS - 1
    return tiers.astype(np.int8)


def podcast_features(
    day: datetime.date, podcasts: pa.Table, listening: pa.Table, config: FeatureConfig = FeatureConfig()
) -> pa.Table:
    """``PODCAST_FEATURES`` of ``day``: one row per show of the snapshot ``podcasts``, sorted by ``podcast_id``.

    ``listening`` is ``LISTENING`` for ``day`` (see :func:`podcast_listening_ms`); shows absent from it have 0
    hours, and its shows absent from the snapshot are ignored.
    """
    podcasts = _unique_by_id(podcasts, "podcast_id")
    listening = merge_listening([listening])
    rows, known = _positions(listening.column("podcast_id").to_numpy(), podcasts.column("podcast_id").to_numpy())
    listen_ms = np.zeros(len(rows), np.int64)  # shows nobody listened to (or a day with no history at all): 0
    listen_ms[known] = listening.column("listen_ms").to_numpy()[rows[known]]
    hours = listen_ms / MS_PER_HOUR
    columns = {
        "podcast_id": podcasts.column("podcast_id"),
        "podcast_listen_hours_30d": hours.astype(np.float32),
        "podcast_popularity_tier": popularity_tiers(hours, config),
        "podcast_age_days": _days_until(day, podcasts.column("created_date")),
        "podcast_genres": podcasts.column("genres"),
        "podcast_topics": podcasts.column("topics"),
        "podcast_language": podcasts.column("language"),
        "podcast_publisher": podcasts.column("publisher"),
        "podcast_is_original": podcasts.column("is_original"),
        "podcast_explicit": podcasts.column("explicit"),
        "podcast_episode_count": podcasts.column("episode_count"),
    }
    return _assemble(columns, PODCAST_FEATURES)


# -- shared vectorised helpers -------------------------------------------------------------------------------------
def _in_window(
    table: pa.Table, window: tuple[int, int], columns: list[str], min_ms_played: int | None = None
) -> pa.Table:
    """``event_ts`` and ``columns`` of the rows with ``event_ts`` in ``window`` and no null among ``columns`` (nor,
    if given, a play shorter than ``min_ms_played``). Selecting first keeps wide string columns out of the filter."""
    table = table.select(["event_ts", *columns])
    ts = table.column("event_ts")
    mask = pc.and_(pc.greater_equal(ts, window[0]), pc.less(ts, window[1]))
    for name in columns:
        mask = pc.and_(mask, pc.is_valid(table.column(name)))
    if min_ms_played is not None:
        mask = pc.and_(mask, pc.greater_equal(table.column("ms_played"), min_ms_played))
    # and_ leaves null where event_ts or ms_played is null; filter() drops those rows.
    return table.filter(mask)


def _unique_by_id(table: pa.Table, id_column: str) -> pa.Table:
    """Snapshot rows with a non-null id, sorted by it; a duplicated id keeps its first row."""
    table = table.filter(pc.is_valid(table.column(id_column)))
    table = table.take(pc.sort_indices(table, [(id_column, "ascending")]))  # stable: first duplicate stays first
    ids = table.column(id_column).to_numpy()
    return table.filter(np.concatenate([[True], ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, bool))


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each of ``ids`` in the sorted unique ``sorted_ids``, and which ids are there at all."""
    rows = np.searchsorted(sorted_ids, ids)
    if len(sorted_ids) == 0:
        return rows, np.zeros(len(ids), bool)
    rows = np.minimum(rows, len(sorted_ids) - 1)
    return rows, sorted_ids[rows] == ids


def _count_per_id(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """How often each of the sorted unique ``sorted_ids`` occurs in ``ids`` (int32).

    Sorting the many ``ids`` and looking up the few ``sorted_ids`` in them is several times faster than looking up
    each of millions of unsorted ids (random access all over ``sorted_ids``).
    """
    ids = np.sort(ids)
    return (np.searchsorted(ids, sorted_ids, side="right") - np.searchsorted(ids, sorted_ids)).astype(np.int32)


def _pair_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One int64 per (first, second) pair, ordered like the pairs: ``first`` must be a small non-negative index."""
    values, codes = np.unique(second, return_inverse=True)
    return first.astype(np.int64) * max(len(values), 1) + codes


def _sum_by_key(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys``, sorted, with the sum of their (integer) ``weights``."""
    order = np.argsort(keys)
    keys = keys[order]
    first = np.concatenate([[True], keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, bool)
    # Float sums of integers stay exact below 2**53; counts of streams are far below that.
    sums = np.bincount(np.cumsum(first) - 1, weights=weights[order]).astype(np.int64)
    return keys[first], sums


def _sum_pairs(first: np.ndarray, second: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs sorted by both, with the sum of their (integer) ``weights``.

    ``first`` must be a small non-negative index; ``second`` may be any ids.
    """
    values, codes = np.unique(second, return_inverse=True)
    width = max(len(values), 1)
    keys, sums = _sum_by_key(first.astype(np.int64) * width + codes, weights)
    return keys // width, values[keys % width], sums


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """0-based position of each row within its run of equal ``groups`` (which must be sorted)."""
    positions = np.arange(len(groups))
    return positions - np.searchsorted(groups, groups, side="left")


def _top_per_group(groups: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` rows with the largest ``counts`` in each group, group by group, most first.

    Rows with equal counts keep their input order, which is how callers break ties. One stable sort of a combined
    key is several times faster than a lexsort: it cannot overflow, groups and counts both being below 2**31.
    """
    top = int(counts.max(initial=0))
    order = np.argsort(groups.astype(np.int64) * (top + 1) + (top - counts), kind="stable")
    return order[_rank_in_group(groups[order]) < k]


def _list_array(groups: np.ndarray, values: pa.Array, n_groups: int) -> pa.Array:
    """A list per group ``0..n_groups-1`` from ``values`` whose (sorted) ``groups`` say where they belong."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=n_groups))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _days_until(day: datetime.date, dates: pa.ChunkedArray) -> pa.ChunkedArray:
    """Whole days from each date to ``day`` (null dates stay null)."""
    return pc.subtract(pa.scalar((day - _EPOCH).days, pa.int32()), dates.cast(pa.int32()))


def _assemble(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """A table of exactly ``schema`` (order, types, nullability, docs) from ``columns`` named like its fields."""
    arrays = [pa.array(columns[f.name]) if isinstance(columns[f.name], np.ndarray) else columns[f.name] for f in schema]
    return pa.Table.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema)

"""Last-touch attribution: label the ad and promotion impressions of one day D with multi-task outcomes.

Pure numpy + pyarrow (no Beam), fully vectorised: a call sorts the candidate impressions once and answers every
outcome event with binary searches, so millions of impressions and events take seconds.

Semantics
---------
- **Candidates** for credit are the target impressions (served on day D) plus the competitor impressions (served
  after D). Both channels compete: an ad and a promotion of the same show are equals for last touch.
- **Last touch.** A qualifying stream (``ms_played >= min_stream_ms``), a follow or a like of show ``p`` by user
  ``u`` at time ``t`` is credited to the latest candidate impression of ``p`` shown to ``u`` strictly before ``t``
  (``ts < t``) whose window for that outcome covers ``t`` (``t - ts <= window_ms(outcome, source)``). Windows may
  differ by channel, so when the latest impression is already out of its window an earlier one of the other channel
  that is still inside its own window takes the credit.
- **One credit per event.** Each outcome event credits at most one impression; an impression is credited by any
  number of events. When a competitor wins, no target is credited for that event.
- **Ties.** Of candidates with the same timestamp the greater ``impression_id`` (string order, i.e. code point
  order) is the later one; a competitor without an id is smaller than any id, and a target is later than a
  competitor with the same id (the same impression listed twice).
- **Clicks** join by ``impression_id`` instead: ``label_click`` is 1 when a click of that impression has
  ``0 <= click_ts - imp_ts <= click_window_ms``. Clicks of impressions outside ``target`` are ignored.
- **Maturity.** A label is 1 when credited (even if its window is not yet fully logged: the event happened),
  0 when not credited and the whole window is logged (``imp_ts + window < horizon_end_ms``), and null otherwise:
  logs are complete only for events with ``event_ts < horizon_end_ms``.
- **Limits.** Windows are at most ``MAX_WINDOW_MS`` (100 years), and (distinct user/show pairs of the targets) x
  (target time range + longest window) must stay below 2**63 ms, e.g. 2M pairs allow about 50 days; a call that
  exceeds it raises ``ValueError`` instead of overflowing.

>>> import pyarrow as pa
>>> target = pa.table({"impression_id": ["i1"], "source": ["ad"], "user_id": [1], "podcast_id": [7], "event_ts": [0]})
>>> streams = pa.table({"user_id": [1], "podcast_id": [7], "event_ts": [3_600_000], "ms_played": [90_000]})
>>> clicks = pa.table({"impression_id": pa.array([], pa.string()), "event_ts": pa.array([], pa.int64())})
>>> label_impressions(target, target.slice(0, 0), {"stream": streams}, clicks, horizon_end_ms=10**10).to_pylist()
[{'impression_id': 'i1', 'label_stream': 1, 'label_click': 0, 'label_follow': 0, 'label_like': 0}]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...common.checks import check_int, invalid
from ...schemas.units import MS_PER_DAY, MS_PER_HOUR

# Far beyond any attribution window; the bound keeps timestamp + window (and the sort keys) inside int64.
MAX_WINDOW_MS = 100 * 365 * MS_PER_DAY

SOURCES = ("ad", "promo")  # the index of a source here is its row in per-source window arrays
OUTCOMES = ("stream", "click", "follow", "like")
LABEL_COLUMNS = ("label_stream", "label_click", "label_follow", "label_like")
LAST_TOUCH_OUTCOMES = ("stream", "follow", "like")


def _same_for_both_sources(window_ms: int) -> Callable[[], dict[str, int]]:
    return lambda: {source: window_ms for source in SOURCES}


@dataclass(frozen=True)
class AttributionConfig:
    """Windows in milliseconds per outcome and impression channel ("ad" | "promo")."""

    stream_window_ms: Mapping[str, int] = field(default_factory=_same_for_both_sources(72 * MS_PER_HOUR))
    follow_window_ms: Mapping[str, int] = field(default_factory=_same_for_both_sources(7 * MS_PER_DAY))
    like_window_ms: Mapping[str, int] = field(default_factory=_same_for_both_sources(7 * MS_PER_DAY))
    click_window_ms: int = MS_PER_DAY  # clicks join by impression_id, not by last touch
    min_stream_ms: int = 60_000  # a stream counts only when ms_played >= this

    def __post_init__(self) -> None:
        # Read-only copies: the caller's dicts may change later, and a frozen config must not change with them.
        for name in ("stream_window_ms", "follow_window_ms", "like_window_ms"):
            object.__setattr__(self, name, MappingProxyType(_checked_windows(name, getattr(self, name))))
        object.__setattr__(self, "click_window_ms", _checked_window("click_window_ms", self.click_window_ms))
        min_stream_ms = check_int("AttributionConfig", "min_stream_ms", self.min_stream_ms, low=0)
        object.__setattr__(self, "min_stream_ms", min_stream_ms)

    def __reduce__(self) -> tuple[type[AttributionConfig], tuple[object, ...]]:
        # A mappingproxy cannot be pickled: rebuild from plain dicts (validated again on load).
        windows = (dict(self.stream_window_ms), dict(self.follow_window_ms), dict(self.like_window_ms))
        return (AttributionConfig, (*windows, self.click_window_ms, self.min_stream_ms))

    def window_ms(self, outcome: str, source: str) -> int:
        if source not in SOURCES:
            raise ValueError(f"AttributionConfig.window_ms needs a source in {SOURCES}, got {source!r}")
        if outcome == "click":
            return self.click_window_ms
        if outcome not in LAST_TOUCH_OUTCOMES:
            raise ValueError(f"AttributionConfig.window_ms needs an outcome in {OUTCOMES}, got {outcome!r}")
        return getattr(self, f"{outcome}_window_ms")[source]

    def max_window_ms(self) -> int:
        return max(self.window_ms(outcome, source) for outcome in OUTCOMES for source in SOURCES)


def _checked_windows(name: str, windows: object) -> dict[str, int]:
    """A window mapping as a plain dict of ints, one per source; anything else raises."""
    if not isinstance(windows, Mapping) or set(windows) != set(SOURCES):
        expected = "a mapping with keys {" + ", ".join(repr(source) for source in SOURCES) + "}"
        raise invalid("AttributionConfig", name, expected, windows)
    return {source: _checked_window(f'{name}["{source}"]', windows[source]) for source in SOURCES}


def _checked_window(name: str, value: object) -> int:
    return check_int("AttributionConfig", name, value, low=1, high=MAX_WINDOW_MS)


def label_impressions(
    target: pa.Table,
    competitors: pa.Table,
    outcomes: Mapping[str, pa.Table],
    clicks: pa.Table,
    horizon_end_ms: int,
    config: AttributionConfig = AttributionConfig(),  # noqa: B008 - frozen, so sharing the default is safe
) -> pa.Table:
    """Label every row of ``target`` (same order) with ``label_stream/click/follow/like`` (int8, null = unobserved).

    ``target`` and ``competitors`` have ``impression_id, source, user_id, podcast_id, event_ts`` (competitors may
    lack ``impression_id``); ``outcomes`` maps "stream" (with ``ms_played``), "follow" and "like" to tables of
    ``user_id, podcast_id, event_ts`` (a missing key means no events); ``clicks`` has ``impression_id, event_ts``.
    See the module docstring for the semantics.
    """
    impression_ids = target.column("impression_id")
    if target.num_rows == 0:
        return pa.table({"impression_id": impression_ids, **{name: pa.array([], pa.int8()) for name in LABEL_COLUMNS}})
    impression_ts = _int64(target, "event_ts")
    source_index = _source_index(target, "target")
    index = _CandidateIndex.build(target, impression_ts, source_index, competitors, config.max_window_ms())

    labels = {}
    for outcome, column in zip(OUTCOMES, LABEL_COLUMNS, strict=True):
        windows = np.array([config.window_ms(outcome, source) for source in SOURCES], dtype=np.int64)
        if outcome == "click":
            credited = _clicked(impression_ids, impression_ts, clicks, config.click_window_ms)
        else:
            credited = index.credited_targets(*_qualifying_events(outcomes, outcome, config.min_stream_ms), windows)
        observed = impression_ts + windows[source_index] < horizon_end_ms
        labels[column] = pa.array(credited.astype(np.int8), mask=~(credited | observed))
    return pa.table({"impression_id": impression_ids, **labels})


@dataclass(frozen=True)
class _CandidateIndex:
    """Target + competitor impressions sorted by (user/show pair, ts, tie-break), for last-touch look-ups.

    Users, shows and pairs are numbered densely after the *targets*: an event or a competitor of a pair that no
    target has cannot change any target's label, so it is dropped. A candidate's sort key is the single int64
    ``pair * span + (ts - first_target_ts)``; one ``searchsorted`` of an event's key then finds the latest candidate
    strictly before it, and the difference of two keys of the same pair is the time between them.
    """

    users: np.ndarray  # distinct target user ids; a user's position here is its number
    podcasts: np.ndarray  # distinct target podcast ids, likewise
    pairs: np.ndarray  # sorted distinct user_number * len(podcasts) + podcast_number over the targets; position = pair
    n_targets: int
    first_target_ts: int
    last_target_ts: int
    span: int  # every relevant timestamp lies in [first_target_ts, first_target_ts + span)
    sorted_key: np.ndarray  # the candidates' keys, ascending
    sorted_target_row: np.ndarray  # row in target of each sorted candidate, -1 for a competitor
    latest_of_source: np.ndarray  # [source, i]: the last position <= i whose candidate has that source, else -1

    @classmethod
    def build(
        cls,
        target: pa.Table,
        impression_ts: np.ndarray,
        source_index: np.ndarray,
        competitors: pa.Table,
        max_window_ms: int,
    ) -> _CandidateIndex:
        users, user_number = _numbered(_int64(target, "user_id"))
        podcasts, podcast_number = _numbered(_int64(target, "podcast_id"))
        pairs, target_pair = np.unique(user_number * len(podcasts) + podcast_number, return_inverse=True)
        first_target_ts, last_target_ts = int(impression_ts.min()), int(impression_ts.max())
        # Events that can credit a target lie in (first, last + window]; candidates that matter in [first, last +
        # window), so offsets from first_target_ts stay below span.
        span = last_target_ts + max_window_ms - first_target_ts + 1
        if len(pairs) * span >= 2**63:
            raise ValueError(
                f"label_impressions needs len(user/show pairs) * (target time range + longest window) < 2**63 ms "
                f"for its int64 sort keys, got {len(pairs)} pairs * {span} ms: label fewer days per call"
            )

        n_targets = target.num_rows
        kept_competitor_rows = competitor_pair = competitor_ts = competitor_source = np.zeros(0, dtype=np.int64)
        if competitors.num_rows:
            competitor_ts = _int64(competitors, "event_ts")
            # An older competitor is never later than a target; one at or past the end of the longest window of
            # the last target is never before an event that could credit a target.
            in_time = np.flatnonzero((competitor_ts >= first_target_ts) & (competitor_ts < first_target_ts + span))
            competitor_pair, known_pair = _pair_of(
                users,
                podcasts,
                pairs,
                _int64(competitors, "user_id")[in_time],
                _int64(competitors, "podcast_id")[in_time],
            )
            kept_competitor_rows = in_time[known_pair]
            competitor_pair = competitor_pair[known_pair]
            competitor_ts = competitor_ts[kept_competitor_rows]
            competitor_source = _source_index(competitors, "competitors")[kept_competitor_rows]

        key = np.concatenate([target_pair, competitor_pair]) * span + (
            np.concatenate([impression_ts, competitor_ts]) - first_target_ts
        )
        candidate_target_row = np.concatenate([np.arange(n_targets), np.full(len(kept_competitor_rows), -1)])

        def candidate_ids(rows: np.ndarray) -> pa.ChunkedArray:
            # Only called for the few candidates that tie on (pair, ts), so the string columns are touched lazily.
            target_ids = target.column("impression_id").cast(pa.string())
            if "impression_id" in competitors.column_names:
                competitor_ids = competitors.column("impression_id").cast(pa.string())
            else:
                competitor_ids = pa.chunked_array([pa.nulls(competitors.num_rows, pa.string())])
            id_row = np.concatenate([np.arange(n_targets), n_targets + kept_competitor_rows])[rows]
            return pa.chunked_array(target_ids.chunks + competitor_ids.chunks, pa.string()).take(id_row)

        order = _sort_with_tie_break(key, candidate_target_row >= 0, candidate_ids)
        sorted_source = np.concatenate([source_index, competitor_source])[order]
        positions = np.arange(len(order))
        latest_of_source = np.stack(
            [np.maximum.accumulate(np.where(sorted_source == source, positions, -1)) for source in range(len(SOURCES))]
        )
        return cls(
            users=users,
            podcasts=podcasts,
            pairs=pairs,
            n_targets=n_targets,
            first_target_ts=first_target_ts,
            last_target_ts=last_target_ts,
            span=span,
            sorted_key=key[order],
            sorted_target_row=candidate_target_row[order],
            latest_of_source=latest_of_source,
        )

    def credited_targets(
        self, user: np.ndarray, podcast: np.ndarray, event_ts: np.ndarray, windows: np.ndarray
    ) -> np.ndarray:
        """Which targets win at least one of these events; ``windows[source]`` is the outcome's window per channel."""
        credited = np.zeros(self.n_targets, dtype=bool)
        relevant = (event_ts > self.first_target_ts) & (event_ts <= self.last_target_ts + int(windows.max()))
        pair, known_pair = _pair_of(self.users, self.podcasts, self.pairs, user[relevant], podcast[relevant])
        # An event needs no identity, only its key; sorting the keys keeps the binary searches cache-friendly.
        event_key = np.sort(pair[known_pair] * self.span + (event_ts[relevant][known_pair] - self.first_target_ts))
        # side="left": a candidate with the event's own key (same pair, same ts) is not strictly before it.
        latest = np.searchsorted(self.sorted_key, event_key, side="left") - 1
        has_earlier = latest >= 0
        event_key, latest = event_key[has_earlier], latest[has_earlier]
        pair_start = event_key - event_key % self.span

        # The latest candidate of a channel before the event is the only one of that channel that can cover it
        # (earlier ones are further away under the same window), so the winner is the later of the per-channel
        # latest candidates whose window covers the event.
        winner = np.full(len(latest), -1)
        for source, window_ms in enumerate(windows):
            position = self.latest_of_source[source, latest]
            candidate_key = self.sorted_key[np.maximum(position, 0)]
            covers = (position >= 0) & (candidate_key >= pair_start) & (event_key - candidate_key <= window_ms)
            winner = np.where(covers, np.maximum(winner, position), winner)
        winning_target_row = self.sorted_target_row[winner[winner >= 0]]
        credited[winning_target_row[winning_target_row >= 0]] = True
        return credited


def _sort_with_tie_break(
    key: np.ndarray, is_target: np.ndarray, candidate_ids: Callable[[np.ndarray], pa.ChunkedArray]
) -> np.ndarray:
    """Order of the candidates by key, then impression_id (null first), then competitor before target.

    Ties on the key are rare, so only the candidates in tied runs are re-sorted by their ids; the runs keep their
    positions because the runs' keys differ.
    """
    order = np.argsort(key)
    sorted_key = key[order]
    tied_with_next = sorted_key[1:] == sorted_key[:-1]
    if not tied_with_next.any():
        return order
    in_tied_run = np.zeros(len(order), dtype=bool)
    in_tied_run[1:] |= tied_with_next
    in_tied_run[:-1] |= tied_with_next
    positions = np.flatnonzero(in_tied_run)
    rows = order[positions]
    tied = pa.table({"key": key[rows], "impression_id": candidate_ids(rows), "is_target": is_target[rows]})
    permutation = pc.sort_indices(
        tied,
        sort_keys=[
            ("key", "ascending", "at_start"),
            ("impression_id", "ascending", "at_start"),
            ("is_target", "ascending", "at_start"),
        ],
    ).to_numpy()
    order[positions] = rows[permutation]
    return order


def _pair_of(
    users: np.ndarray, podcasts: np.ndarray, pairs: np.ndarray, user: np.ndarray, podcast: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dense pair number of each (user, podcast), and whether some target has that pair."""
    user_number, known_user = _index_in(user, users)
    podcast_number, known_podcast = _index_in(podcast, podcasts)
    raw_pair = user_number * len(podcasts) + podcast_number
    # Binary search in ascending order: consecutive searches share cache lines, several times faster than hashing
    # or searching in random order when there are millions of pairs.
    order = np.argsort(raw_pair)
    pair = np.empty(len(raw_pair), dtype=np.int64)
    pair[order] = np.minimum(np.searchsorted(pairs, raw_pair[order]), len(pairs) - 1)
    return pair, known_user & known_podcast & (pairs[pair] == raw_pair)


def _numbered(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, and each value's position among them (a hash: cheaper than np.unique's sort)."""
    encoded = pa.array(values).dictionary_encode()
    return encoded.dictionary.to_numpy(), encoded.indices.to_numpy().astype(np.int64)


def _index_in(values: np.ndarray, value_set: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each value in ``value_set`` (a hash look-up, fast for the small sets of users and shows)."""
    index = pc.fill_null(pc.index_in(values, value_set=pa.array(value_set)), -1).to_numpy().astype(np.int64)
    return index, index >= 0


def _qualifying_events(
    outcomes: Mapping[str, pa.Table], outcome: str, min_stream_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = outcomes.get(outcome)
    if table is None or table.num_rows == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    user, podcast, event_ts = (_int64(table, name) for name in ("user_id", "podcast_id", "event_ts"))
    if outcome == "stream":
        qualifying = _int64(table, "ms_played") >= min_stream_ms
        return user[qualifying], podcast[qualifying], event_ts[qualifying]
    return user, podcast, event_ts


def _clicked(
    impression_ids: pa.ChunkedArray, impression_ts: np.ndarray, clicks: pa.Table, click_window_ms: int
) -> np.ndarray:
    clicked = np.zeros(len(impression_ts), dtype=bool)
    if clicks.num_rows == 0:
        return clicked
    # A hash join built on the (few) clicks and probed by the impressions: far cheaper than hashing the impressions.
    rows = pa.table({"impression_id": impression_ids, "row": np.arange(len(impression_ts))})
    click_ids = clicks.column("impression_id").cast(impression_ids.type)
    click_ts = pa.table({"impression_id": click_ids, "click_ts": _int64(clicks, "event_ts")})
    joined = rows.join(click_ts, keys="impression_id", join_type="inner")
    row = _int64(joined, "row")
    delay = _int64(joined, "click_ts") - impression_ts[row]
    clicked[row[(delay >= 0) & (delay <= click_window_ms)]] = True
    return clicked


def _int64(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.int64()).to_numpy()


def _source_index(table: pa.Table, role: str) -> np.ndarray:
    """Index of each row's source in SOURCES; anything else would have no window, so it is an error."""
    source = table.column("source")
    known = pc.is_in(source, value_set=pa.array(SOURCES))
    if not pc.all(known).as_py():
        unknown = pc.unique(source.filter(pc.invert(known))).to_pylist()
        raise ValueError(f"{role}.source needs values in {SOURCES}, got {unknown[:5]}")
    return pc.equal(source, SOURCES[1]).to_numpy().astype(np.intp)

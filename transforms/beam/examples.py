"""Beam pieces of the examples pipeline: per-role projections and the per-bucket labelling and assembly.

Every user bucket gathers, after one shuffle, the impressions logged on day D (``target``), the impressions logged
on the days around D (``competitor``: they may take the credit from a target, they are the impressions that
earlier clicks of D belong to, and they reveal a target logged twice), the outcome events (``stream``, ``follow``,
``like``, ``click``) of the days around D and the users' feature rows (``user_features``). The bucket is then
labelled and assembled in Arrow, and written as one Parquet part.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import pvalue

from ...schemas import layout
from ...schemas.derived import DEAD_LETTER, LABELS, USER_FEATURES
from ...schemas.units import MS_PER_DAY, MS_PER_MINUTE
from ..arrow.arrays import IdSet, rows_where, sorted_unique
from ..arrow.attribution import AttributionConfig, label_impressions
from ..arrow.bucketing import pair_keys
from ..arrow.example_assembly import IMPRESSIONS, assemble_examples, unify_impressions
from ..arrow.validation import day_start_ms, dead_letters
from ..runtime.bucket_work import BucketResult, ComputesBuckets
from ..runtime.day_inputs import FileSpec
from ..runtime.decode_cache import DecodeCache
from ..runtime.shuffle import BucketEmitter, SpilledRows, rows_by_role
from ..runtime.storage import read_parquet
from .raw_input import COUNTS_TAG, DEAD_LETTER_TAG, ORDER_COLUMNS, first_occurrences, in_logging_order, read_spec

PIPELINE = "build_examples"
IMPRESSION_TABLES = ("ad_impression", "promo_impression")
OUTCOME_TABLES = ("stream", "follow", "like", "click")
_EVENT_COLUMNS = {
    "stream": ["event_id", "user_id", "podcast_id", "event_ts", "ms_played"],
    "follow": ["event_id", "user_id", "podcast_id", "event_ts"],
    "like": ["event_id", "user_id", "podcast_id", "event_ts"],
    "click": ["event_id", "impression_id", "user_id", "event_ts"],
}
_COMPETITOR_COLUMNS = ["impression_id", "source", "user_id", "podcast_id", "event_ts"]


@dataclass(frozen=True)
class Relevance:
    """What context rows can matter to day D: the (user, show) pairs of its impressions (sorted pair keys) with
    the earliest impression time of each, and the impression ids its clicks reference (sorted). Everything else in
    later or earlier days cannot change a label, a duplicate or an orphan check, so it is dropped before the
    shuffle. (Validation comes first, so relevance never keeps a row its own day rejects.)"""

    target_pairs: IdSet
    # The earliest impression of each pair (aligned with target_pairs.ids), in whole minutes after earliest_ms,
    # rounded down: a side input every reader gets, so 2 bytes a pair rather than 8 (with int64 milliseconds a bench
    # day's driver peaked ~65 MB higher).
    first_target_minute: np.ndarray
    earliest_ms: int  # the earliest a valid impression of D can have been served: D minus the allowed lateness
    clicked_impressions: pa.Array  # strings, sorted; an Arrow array once, not one per context file


def target_pair_times(
    spec: FileSpec, earliest_ms: int, latest_ms: int, cache: DecodeCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct (user, show) keys of the valid-looking impressions in one owned impression file, and the
    earliest time of each in whole minutes after ``earliest_ms`` (rounded down, and clipped to the times a valid
    impression of the day can have: ``[earliest_ms, latest_ms]``; an earlier or later one is rejected anyway)."""
    rows = read_spec(spec, ["user_id", "podcast_id", "event_ts"], cache).table
    valid = pc.and_(pc.is_valid(rows.column("user_id")), pc.is_valid(rows.column("podcast_id")))
    rows = rows.filter(pc.and_(valid, pc.is_valid(rows.column("event_ts"))))
    keys = pair_keys(rows.column("user_id").to_numpy(), rows.column("podcast_id").to_numpy())
    ts = np.clip(rows.column("event_ts").to_numpy().astype(np.int64), earliest_ms, latest_ms)
    minutes = (ts - earliest_ms) // MS_PER_MINUTE
    return _first_time_by_key(keys, minutes.astype(np.int16 if minutes.max(initial=0) < 2**15 else np.int32))


def _first_time_by_key(keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ``keys`` and the smallest of their ``times`` (one sort of the keys, no lexsort: the
    union of a bench day's 2M keys peaked ~140 MB higher with a two-key sort of the raw pairs)."""
    order = np.argsort(keys)
    keys, times = keys[order], times[order]
    if len(keys) == 0:
        return keys, times
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.minimum.reduceat(times, starts)


class FirstTimeByPair(beam.CombineFn):
    """The sorted distinct pair keys of many ``(keys, timestamps)`` arrays, and the earliest timestamp of each."""

    def create_accumulator(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return []

    def add_input(self, parts: list, pair_times: tuple[np.ndarray, np.ndarray]) -> list:
        parts.append(pair_times)
        return parts

    def merge_accumulators(self, accumulators) -> list:
        return [part for parts in accumulators for part in parts]

    def extract_output(self, parts: list) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate([np.zeros(0, np.uint64), *(k for k, _ in parts)])
        times = np.concatenate([np.zeros(0, np.int16), *(t for _, t in parts)])  # promotes to the widest part
        return _first_time_by_key(keys, times)


def clicked_impression_ids(spec: FileSpec, cache: DecodeCache | None = None) -> np.ndarray:
    """Sorted unique impression ids referenced by one owned click file."""
    ids = read_spec(spec, ["impression_id"], cache).table.column("impression_id").drop_null()
    return np.unique(ids.to_numpy(zero_copy_only=False).astype(str))


class SortedUnion(beam.CombineFn):
    """The sorted distinct values of many arrays of ``dtype``, sorted once at the end (empty: an empty array of
    ``dtype``, so a day with nothing to union still has the right kind of ids).

    As a plain callable, ``CombineGlobally`` re-merged the growing result at every buffer flush and merge: ten
    sorts of up to 1.5M pair keys, 0.4 s of a bench day before any file could be read.
    """

    def __init__(self, dtype: type | str) -> None:
        self.dtype = np.dtype(dtype)

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, parts: list[np.ndarray], values: np.ndarray) -> list[np.ndarray]:
        parts.append(values)
        return parts

    def merge_accumulators(self, accumulators) -> list[np.ndarray]:
        return [part for parts in accumulators for part in parts]

    def extract_output(self, parts: list[np.ndarray]) -> np.ndarray:
        parts = [p for p in parts if len(p)]
        return sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, self.dtype)


class DayRelevance(beam.PTransform):
    """A light first pass over the files ``day`` owns: the (user, show) pairs of its impressions with the earliest
    time of each, and the impression ids its clicks reference, as the :class:`Relevance` the readers use to drop
    context rows that cannot matter (a one-element PCollection)."""

    def __init__(
        self, files: Sequence[FileSpec], day: datetime.date, allowed_lateness_days: int, cache: DecodeCache | None
    ) -> None:
        super().__init__()
        self.files, self.day, self.lateness, self.cache = list(files), day, allowed_lateness_days, cache

    def expand(self, pbegin: pvalue.PBegin) -> beam.PCollection:
        earliest_ms = day_start_ms(self.day) - self.lateness * MS_PER_DAY  # the earliest a valid impression was served
        latest_ms = day_start_ms(self.day) + MS_PER_DAY - 1
        target_pairs = (
            pbegin
            | "TargetFiles" >> beam.Create([f for f in self.files if f.role == "target"])
            | "TargetPairs" >> beam.Map(target_pair_times, earliest_ms, latest_ms, self.cache)
            | "AllTargetPairs" >> beam.CombineGlobally(FirstTimeByPair())
        )
        clicked = (
            pbegin
            | "OwnedClickFiles" >> beam.Create([f for f in self.files if f.table == "click" and f.owned])
            | "ClickedImpressions" >> beam.Map(clicked_impression_ids, self.cache)
            | "AllClickedImpressions" >> beam.CombineGlobally(SortedUnion(str))
        )
        return target_pairs | "Relevance" >> beam.Map(make_relevance, pvalue.AsSingleton(clicked), earliest_ms)


def make_relevance(
    pair_times: tuple[np.ndarray, np.ndarray], clicked_impressions: np.ndarray, earliest_ms: int
) -> Relevance:
    keys, first_minute = pair_times
    return Relevance(
        target_pairs=IdSet(keys),
        first_target_minute=first_minute,
        earliest_ms=earliest_ms,
        clicked_impressions=pa.array(clicked_impressions.tolist(), pa.string()),
    )


def relevant_context(spec: FileSpec, rows: pa.Table, relevance: Relevance) -> np.ndarray:
    """Mask of context rows that can matter to the day (see :class:`Relevance`).

    A row of a target's (user, show) pair that happened before the pair's first target can neither credit a target
    nor take credit from one, nor be a target's duplicate (which has the target's own timestamp): with an
    impression logged on D served at the earliest on D minus the lateness, this drops nearly all rows of the days
    before D (their outcomes and impressions) wherever no impression is logged late.
    """
    if spec.table == "click":
        return np.ones(rows.num_rows, bool)  # clicks join by impression id; they are few
    keys = pair_keys(rows.column("user_id").to_numpy(), rows.column("podcast_id").to_numpy())
    relevant = relevance.target_pairs.contains(keys)
    candidates = np.flatnonzero(relevant)
    position = np.searchsorted(relevance.target_pairs.ids, keys[candidates])
    ts = rows.column("event_ts").to_numpy()[candidates]
    first_ms = relevance.earliest_ms + relevance.first_target_minute[position].astype(np.int64) * MS_PER_MINUTE
    relevant[candidates] = ts >= first_ms  # the minute rounded down: a row of the same minute is kept
    if spec.role == "competitor" and len(relevance.clicked_impressions):
        # An impression logged on another day may be the one a click of D belongs to (served before D, or late on
        # D and logged on D+1): keep it, or that click would look like an orphan.
        clicked = relevance.clicked_impressions
        relevant |= pc.is_in(rows.column("impression_id"), value_set=clicked).to_numpy(zero_copy_only=False)
    return relevant


def columns_for_role(spec: FileSpec) -> list[str] | None:
    """Raw columns a context file's role uses (the reader adds the columns validation checks)."""
    if spec.table in IMPRESSION_TABLES:
        return ["impression_id", "event_ts", "user_id", "podcast_id"]
    return _EVENT_COLUMNS[spec.table]


def rejected_clicked_impressions(spec: FileSpec, rejected_rows: pa.Table, relevance: Relevance) -> np.ndarray | None:
    """Ids of rejected impressions that a click of the day references: such a click is dead-lettered as
    ``click_of_rejected_impression`` rather than as a click of an impression never served."""
    if spec.table not in IMPRESSION_TABLES or len(relevance.clicked_impressions) == 0:
        return None
    ids = rejected_rows.column("impression_id")
    clicked = pc.filter(ids, pc.is_in(ids, value_set=relevance.clicked_impressions))
    return np.unique(clicked.to_numpy(zero_copy_only=False).astype(str)) if len(clicked) else None


def project_for_role(spec: FileSpec, rows: pa.Table) -> pa.Table:
    """Shape valid raw rows for their role in the examples pipeline (only the columns that role needs)."""
    if spec.table in IMPRESSION_TABLES and spec.role != "target":
        source = "ad" if spec.table == "ad_impression" else "promo"
        rows = rows.append_column("source", pa.array([source] * rows.num_rows, pa.string()))
        return rows.select(_COMPETITOR_COLUMNS)
    if spec.table in IMPRESSION_TABLES:
        impressions = unify_impressions(
            rows if spec.table == "ad_impression" else None, rows if spec.table == "promo_impression" else None
        )
        return impressions
    return rows.select(_EVENT_COLUMNS[spec.table])


def _concat(parts: list[pa.Table], schema: pa.Schema | None = None) -> pa.Table | None:
    if not parts:
        return schema.empty_table() if schema is not None else None
    return in_logging_order(parts) if any(p.num_rows for p in parts) else parts[0]


class BuildExamplesBucketFn(ComputesBuckets, beam.DoFn):
    """Labels and assembles one user bucket; writes it as ``part-<bucket>.parquet`` in the staging folder.

    Outputs: counts (tagged ``counts``) and dead letters for orphan clicks (tagged ``dead_letter``). ``threads``
    buckets are computed side by side, or in ``processes`` worker processes
    (:mod:`podtarget.transforms.runtime.bucket_work`). Side inputs: the podcast features, campaigns and creatives of D,
    and the sorted ids of rejected impressions that clicks of D reference (:func:`rejected_clicked_impressions`).

    An impression logged on D that was already logged (same ``impression_id``, valid) on one of the
    ``allowed_lateness_days`` days before is a duplicate: it is an example of the day that first logged it.
    """

    counter_namespace = PIPELINE

    def __init__(
        self,
        day: datetime.date,
        staging: str,
        horizon_end_ms: int,
        config: AttributionConfig,
        paths: Sequence[str],
        threads: int = 1,
        processes: int = 0,
        allowed_lateness_days: int = 2,
    ) -> None:
        self.day = day
        self.allowed_lateness_days = allowed_lateness_days
        self.staging = staging
        self.horizon_end_ms = horizon_end_ms
        self.config = config
        self.paths = list(paths)
        self.threads = threads
        self.processes = processes

    def compute_bucket(
        self,
        element: tuple[int, list[tuple[str, pa.Table | SpilledRows]]],
        podcast_features: pa.Table,
        campaigns: pa.Table,
        creatives: pa.Table,
        rejected_clicked: np.ndarray | None = None,
    ) -> BucketResult:
        bucket, items = element
        result = BucketResult()
        by_role = rows_by_role(items, self.shuffle_files)
        counts: dict = {"tables": {}}
        tables = counts["tables"]

        # Impressions of D: keep the first occurrence of each id (duplicates are filtered, and counted).
        # A bucket may hold no impression of D (its users only listened): its owned events still need counting.
        target = _concat(by_role["target"], None)
        if target is None:
            target = _with_order_columns(IMPRESSIONS.empty_table())
        competitors = _concat(by_role["competitor"], None)
        competitors = (
            rows_where(competitors, first_occurrences(competitors, "impression_id"))
            if competitors is not None
            else _with_order_columns(IMPRESSIONS.empty_table().select(_COMPETITOR_COLUMNS))
        )
        keep = first_occurrences(target, "impression_id") & ~self._logged_before(target, competitors)
        for table, source in (("ad_impression", "ad"), ("promo_impression", "promo")):
            is_source = pc.equal(target.column("source"), source).to_numpy(zero_copy_only=False)
            tables[table] = {"filtered": {"duplicate": int((is_source & ~keep).sum())}}
        target = rows_where(target, keep)
        outcomes: dict[str, pa.Table] = {}
        for table in OUTCOME_TABLES:
            events = _concat(by_role[table], None)
            if events is None:
                continue
            unique = first_occurrences(events, "event_id")
            owned = events.column("_pday").to_numpy() == 0
            tables[table] = {"filtered": {"duplicate": int((owned & ~unique).sum())}}
            outcomes[table] = rows_where(events, unique)

        clicks = outcomes.pop("click", None)
        if clicks is not None:
            clicks, orphans = self._split_orphan_clicks(clicks, target, competitors, rejected_clicked)
            if orphans.num_rows:
                result.outputs.append(pvalue.TaggedOutput(DEAD_LETTER_TAG, orphans))
                reasons = orphans.column("reason").to_pylist()
                tables["click"]["dead_letter"] = {r: reasons.count(r) for r in sorted(set(reasons))}
            tables["click"]["accepted"] = int((clicks.column("_pday").to_numpy() == 0).sum())
        for table, events in outcomes.items():
            tables[table]["accepted"] = int((events.column("_pday").to_numpy() == 0).sum())

        if target.num_rows == 0:
            for table in IMPRESSION_TABLES:
                tables[table]["written"] = 0
            result.outputs.append(pvalue.TaggedOutput(COUNTS_TAG, counts))
            return result
        labels = label_impressions(
            target.select(["impression_id", "source", "user_id", "podcast_id", "event_ts"]),
            competitors.select(_COMPETITOR_COLUMNS),
            outcomes,
            clicks.select(["impression_id", "event_ts"]) if clicks is not None else _empty_clicks(),
            self.horizon_end_ms,
            self.config,
        )
        # Feature rows are one per user: no logging order to restore.
        user_features = pa.concat_tables([USER_FEATURES.empty_table(), *by_role["user_features"]])
        examples = assemble_examples(
            target.drop_columns(list(ORDER_COLUMNS)),
            labels,
            user_features,
            podcast_features,
            campaigns,
            creatives,
            self.day,
        )
        # Rows stay in logging order (day, file, row), deterministic whatever the runner; sorting 2M rows by id
        # cost 2 s of a bench day and no reader needs it.
        result.parts.append((layout.join(self.staging, f"part-{bucket:05d}.parquet"), examples))
        result.counters["examples_written"] = examples.num_rows
        for table, source in (("ad_impression", "ad"), ("promo_impression", "promo")):
            tables[table]["written"] = int(pc.sum(pc.equal(examples.column("source"), source)).as_py() or 0)
        counts["labels"] = _label_counts(examples)
        result.outputs.append(pvalue.TaggedOutput(COUNTS_TAG, counts))
        return result

    def _logged_before(self, target: pa.Table, competitors: pa.Table) -> np.ndarray:
        """Mask of the targets whose id a valid impression logged up to the allowed lateness before D carries."""
        pday = competitors.column("_pday").to_numpy()
        earlier = (pday < 0) & (pday >= -self.allowed_lateness_days)
        if not earlier.any() or target.num_rows == 0:
            return np.zeros(target.num_rows, bool)
        earlier_ids = competitors.column("impression_id").filter(pa.array(earlier))
        return pc.is_in(target.column("impression_id"), value_set=earlier_ids).to_numpy(zero_copy_only=False)

    def _split_orphan_clicks(
        self, clicks: pa.Table, target: pa.Table, competitors: pa.Table, rejected_clicked: np.ndarray | None
    ) -> tuple[pa.Table, pa.Table]:
        """Owned clicks whose impression was never validly logged become dead letters: ``click_of_rejected_impression``
        when the impression was logged but rejected (by its own day's run), else ``click_without_impression``."""
        owned = clicks.column("_pday").to_numpy() == 0
        # Probe the many served ids against the few clicked ones (a small hash table), rather than hashing every
        # served id to look the clicks up: ~3x less work on a bench day.
        clicked = pc.unique(clicks.column("impression_id").filter(pa.array(owned)))
        served = [target.column("impression_id"), competitors.column("impression_id")]
        found = [pc.filter(ids, pc.is_in(ids, value_set=clicked)) for ids in served]
        served_clicked = pa.chunked_array([c for ids in found for c in ids.chunks], type=pa.string())
        has_impression = pc.is_in(clicks.column("impression_id"), value_set=served_clicked).to_numpy(
            zero_copy_only=False
        )
        orphan = owned & ~has_impression
        if not orphan.any():
            return clicks, DEAD_LETTER.empty_table()
        rows = clicks.filter(pa.array(orphan))
        rejected = np.zeros(rows.num_rows, bool)
        if rejected_clicked is not None and len(rejected_clicked):
            rejected_ids = pa.array(rejected_clicked.tolist(), pa.string())
            rejected = pc.is_in(rows.column("impression_id"), value_set=rejected_ids).to_numpy(zero_copy_only=False)
        files = rows.column("_file").to_numpy()
        parts = []
        for index in np.unique(files):
            for is_rejected, reason, detail in _ORPHAN_REASONS:
                which = (files == index) & (rejected == is_rejected)
                if not which.any():
                    continue
                subset = rows.filter(pa.array(which)).drop_columns(list(ORDER_COLUMNS))
                parts.append(
                    dead_letters(
                        subset,
                        np.full(subset.num_rows, reason, dtype=object),
                        pipeline=PIPELINE,
                        table="click",
                        source_path=self.paths[int(index)],
                        detail=detail,
                    )
                )
        return clicks.filter(pa.array(~orphan)), pa.concat_tables(parts)


_ORPHAN_REASONS = (
    (False, "click_without_impression", "no impression with this impression_id was logged before the click"),
    (
        True,
        "click_of_rejected_impression",
        "its impression was logged but rejected by the run of the day that logged it (see that day's dead letters)",
    ),
)


class ReadUserFeatureBucketsFn(beam.DoFn):
    """Reads one user-feature Parquet part and splits it by user bucket (role ``user_features``).

    ``shuffle_dir``: the run's file-backed shuffle folder, or None to shuffle the tables through Beam.
    """

    def __init__(self, n_buckets: int, shuffle_dir: str | None = None) -> None:
        self.n_buckets = n_buckets
        self.shuffle_dir = shuffle_dir

    def process(self, path: str) -> Iterator:
        table = read_parquet(path, USER_FEATURES)
        emitter = BucketEmitter(self.n_buckets, self.shuffle_dir)
        for bucket, part in emitter.split(table, f"user_features-{path.rsplit('/', 1)[-1]}"):
            yield bucket, ("user_features", part)


def _with_order_columns(table: pa.Table) -> pa.Table:
    return (
        table.append_column("_pday", pa.array([], pa.int16()))
        .append_column("_file", pa.array([], pa.int32()))
        .append_column("_row", pa.array([], pa.int32()))
    )


def _empty_clicks() -> pa.Table:
    return pa.table({"impression_id": pa.array([], pa.string()), "event_ts": pa.array([], pa.int64())})


def _label_counts(examples: pa.Table) -> dict:
    out: dict = {}
    for source in ("ad", "promo"):
        # Filter the label columns only: filtering the whole (wide, list-valued) table cost ~3 s of a bench day.
        is_source = pc.equal(examples.column("source"), source)
        for label in LABELS:
            values = pc.filter(examples.column(label), is_source)
            positives = int(pc.sum(values).as_py() or 0)
            unobserved = values.null_count
            out.setdefault(source, {})[label] = {
                "positive": positives,
                "negative": len(values) - positives - unobserved,
                "unobserved": unobserved,
            }
    return out

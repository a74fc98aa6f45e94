"""Beam pieces of the features pipeline: per user bucket, the users' features and a partial of show listening.

History rows (logged before D) and the user snapshot of D meet per user bucket after one shuffle; each bucket writes
its users' feature rows as one Parquet part and emits the qualifying listening of the shows its users streamed,
which a global combine merges into the show snapshot.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import pvalue

from ...schemas import layout
from ..arrow.arrays import rows_where
from ..arrow.features import (
    HISTORY_TABLES,
    FeatureConfig,
    merge_listening,
    podcast_features,
    podcast_listening_ms,
    user_features,
)
from ..runtime.bucket_work import BucketResult, ComputesBuckets
from ..runtime.day_inputs import FileSpec
from ..runtime.decode_cache import DecodeCache
from ..runtime.shuffle import BucketEmitter, SpilledRows, rows_by_role
from ..runtime.storage import arrow_schema, atomic_write, parquet_bytes, read_avro_as_arrow
from .raw_input import COUNTS_TAG, ORDER_COLUMNS, first_occurrences, in_logging_order

PIPELINE = "build_features"
LISTENING_TAG = "listening"


# The raw columns the feature aggregates use (plus each table's id, for deduplication): reading only these keeps
# weeks of history cheap to decode and to shuffle (impressions are the bulk, and need no context columns here).
HISTORY_COLUMNS = {
    "stream": ["event_id", "user_id", "podcast_id", "event_ts", "ms_played"],
    "follow": ["event_id", "user_id", "podcast_id", "event_ts"],
    "ad_impression": ["impression_id", "user_id", "podcast_id", "event_ts"],
    "promo_impression": ["impression_id", "user_id", "podcast_id", "event_ts"],
    "click": ["event_id", "impression_id", "user_id", "event_ts"],
}


def history_columns(spec: FileSpec) -> list[str]:
    return HISTORY_COLUMNS[spec.table]


def keep_all_columns(spec: FileSpec, rows: pa.Table) -> pa.Table:
    """Projection for the features pipeline: history rows keep the columns they were read with."""
    return rows


def _gather(parts: list[pa.Table], table: str, id_column: str) -> tuple[pa.Table, int]:
    """Rows of one raw table in logging order, first occurrence of each id only, history columns only; and how many
    rows were dropped as duplicates of an earlier one."""
    if not any(p.num_rows for p in parts):
        return arrow_schema(table).empty_table().select(HISTORY_COLUMNS[table]), 0
    rows = in_logging_order(parts)
    first = first_occurrences(rows, id_column)
    rows = rows_where(rows, first)
    return rows.drop_columns([c for c in ORDER_COLUMNS if c in rows.column_names]), int((~first).sum())


def _snapshot_counts(users: pa.Table, written: int) -> dict:
    """Counts of one bucket's user snapshot rows: written (one feature row per user), or filtered (a null id, or an
    id already seen)."""
    ids = users.column("user_id")
    distinct = pc.count_distinct(ids, mode="only_valid").as_py()
    return {
        "users_written": written,
        "users_filtered": {"null_user_id": ids.null_count, "duplicate": len(ids) - ids.null_count - distinct},
    }


class BuildUserFeaturesBucketFn(ComputesBuckets, beam.DoFn):
    """Computes one user bucket's feature rows, writes them as ``part-<bucket>.parquet``, emits its listening.

    ``threads`` buckets are computed side by side, or in ``processes`` worker processes
    (:mod:`podtarget.transforms.runtime.bucket_work`).
    """

    counter_namespace = PIPELINE

    def __init__(
        self, day: datetime.date, staging: str, config: FeatureConfig, threads: int = 1, processes: int = 0
    ) -> None:
        self.day = day
        self.staging = staging
        self.config = config
        self.threads = threads
        self.processes = processes

    def compute_bucket(
        self, element: tuple[int, list[tuple[str, pa.Table | SpilledRows]]], podcasts: pa.Table
    ) -> BucketResult:
        bucket, items = element
        by_role = rows_by_role(items, self.shuffle_files)
        users = pa.concat_tables(by_role["users"]) if by_role["users"] else arrow_schema("user").empty_table()
        ids = {"ad_impression": "impression_id", "promo_impression": "impression_id"}
        history: dict[str, pa.Table] = {}
        counts: dict[str, dict[str, Any]] = {"history_rows_used": {}, "history_rows_filtered": {}}
        for table in HISTORY_TABLES:
            history[table], duplicates = _gather(by_role[table], table, ids.get(table, "event_id"))
            counts["history_rows_used"][table] = history[table].num_rows
            counts["history_rows_filtered"][table] = {"duplicate": duplicates}
        features = user_features(
            self.day,
            users,
            podcasts,
            history["stream"],
            history["follow"],
            history["ad_impression"],
            history["promo_impression"],
            history["click"],
            self.config,
        )
        parts = [(layout.join(self.staging, f"part-{bucket:05d}.parquet"), features)] if features.num_rows else []
        return BucketResult(
            outputs=[
                pvalue.TaggedOutput(LISTENING_TAG, podcast_listening_ms(history["stream"], self.day, self.config)),
                pvalue.TaggedOutput(COUNTS_TAG, {**counts, **_snapshot_counts(users, features.num_rows)}),
            ],
            parts=parts,
            counters={"users_written": features.num_rows},
        )


class ReadUserSnapshotBucketsFn(beam.DoFn):
    """Reads one part of the user snapshot, ``(path, size in bytes, modified)``, and splits it by user bucket (role
    ``users``); the rows it read are counted (tagged ``counts``: ``users_read``).

    ``shuffle_dir``: the run's file-backed shuffle folder, or None to shuffle the tables through Beam.
    ``cache``: the decode cache (the examples of the day read the same snapshot), or None.
    """

    def __init__(self, n_buckets: int, shuffle_dir: str | None = None, cache: DecodeCache | None = None) -> None:
        self.n_buckets = n_buckets
        self.shuffle_dir = shuffle_dir
        self.cache = cache

    def process(self, file: tuple[str, int, float]) -> Iterator:
        path, size, modified = file
        if self.cache is None:
            result = read_avro_as_arrow(path, "user")
        else:
            result = self.cache.read("user", layout.parse_dt(path).isoformat(), path, size, modified)
        if result.error is not None:
            raise ValueError(f"user snapshot {path} is corrupt ({result.error}); snapshots must be complete")
        emitter = BucketEmitter(self.n_buckets, self.shuffle_dir)
        for bucket, part in emitter.split(result.table, f"users-{path.rsplit('/', 1)[-1]}"):
            yield bucket, ("users", part)
        yield pvalue.TaggedOutput(COUNTS_TAG, {"users_read": result.table.num_rows})


def write_podcast_features(
    listening: pa.Table, podcasts: pa.Table, day: datetime.date, staging: str, config: FeatureConfig
) -> dict:
    """The podcast feature snapshot of ``day`` from the merged listening and the podcast snapshot, written as
    ``part-00000.parquet`` in ``staging``; returns its counts."""
    table = podcast_features(day, podcasts, listening, config)
    atomic_write(layout.join(staging, "part-00000.parquet"), parquet_bytes(table))
    return {"podcasts_written": table.num_rows}


class WritePodcastFeatures(beam.PTransform):
    """The user buckets' partial listening (``LISTENING_TAG``) -> summed per show -> the podcast feature snapshot
    of ``day`` in ``staging``; returns its counts (``podcasts_written``). ``podcasts``: the podcast snapshot of
    ``day`` as a singleton side input."""

    def __init__(self, day: datetime.date, podcasts: pvalue.AsSingleton, staging: str, config: FeatureConfig) -> None:
        super().__init__()
        self.day, self.podcasts, self.staging, self.config = day, podcasts, staging, config

    def expand(self, listening: beam.PCollection) -> beam.PCollection:
        return (
            listening
            | "MergeListening" >> beam.CombineGlobally(merge_listening)
            | "Write" >> beam.Map(write_podcast_features, self.podcasts, self.day, self.staging, self.config)
        )

"""The inputs of one day's run, planned before the graph runs: which raw files it reads and for what, whether they
exist and cover the day, how many user buckets they make, and the day's small snapshots loaded as side inputs.

Following a day through a run starts and ends here:

- what exists: :func:`available_days`, :func:`logged_through` (the last day every log table reaches without a
  gap), :func:`missing_log_tables`, :func:`snapshot_files`, :func:`require_features`;
- the log horizon and label maturity: :func:`horizon_end_ms`, :func:`logs_needed_through`;
- the plan, a list of :class:`FileSpec` (one raw part file and its role): :func:`plan_files`, and per pipeline
  :func:`history_files` (features) and :func:`examples_files` (examples); its size in buckets,
  :func:`effective_buckets`;
- the examples' checks before any work: :func:`check_examples_inputs` -> :class:`LogCoverage`;
- the side-input loaders: :func:`load_snapshot`, :func:`load_podcast_features`, :func:`load_reference_ids_by_day`
  (and :func:`read_snapshot` for callers outside a graph).

Why ``transforms/runtime/``: the plan is what the Beam steps consume (``transforms/beam/`` reads the
:class:`FileSpec` s), and transforms may not import ``pipelines/`` (tests/test_architecture.py), so the plan cannot
live with the drivers; it needs no Beam (files are listed and read through :mod:`podtarget.transforms.runtime.storage`)
and no row rules beyond what ``transforms/arrow/`` exports, which is runtime's layer. The drivers in ``pipelines/``,
backfill and evaluation call it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from ...common.days import days_from, parse_day
from ...schemas import LOG_TABLES, layout
from ...schemas.derived import PODCAST_FEATURES
from ...schemas.units import MS_PER_DAY
from ..arrow.attribution import AttributionConfig
from ..arrow.features import HISTORY_TABLES, FeatureConfig
from ..arrow.validation import ReferenceIds, ReferenceIdsByDay, day_start_ms
from .decode_cache import DecodeCache
from .storage import (
    is_complete,
    list_files,
    list_files_with_metadata,
    partition_files,
    read_avro_as_arrow,
    read_parquet_files,
)


@dataclass(frozen=True)
class FileSpec:
    """One raw part file to read, and what it is for."""

    table: str
    day: str  # logging day (partition), ISO
    path: str
    role: str  # how the consumer uses the rows (e.g. "target", "competitor", "stream")
    owned: bool  # the run owns this partition: dead-letter and reconcile its rows
    index: int  # position in the plan (deterministic order of files)
    size_bytes: int = 0
    modified: float = 0.0  # epoch seconds; with the size, it names the version of the file (see DecodeCache)


class MissingInputError(FileNotFoundError):
    """An input partition the day needs does not exist (yet)."""


# -- what exists -----------------------------------------------------------------------------------------------------
def available_days(data_root: str, table: str) -> list[datetime.date]:
    """Logging days of raw ``table`` that have at least one part file."""
    days = set()
    for path in list_files(layout.join(layout.raw_table(data_root, table), "dt=*", "part-*.avro")):
        days.add(layout.parse_dt(path))
    return sorted(days)


def logged_through(data_root: str, first_day: datetime.date) -> datetime.date | None:
    """The last day L such that every log table has a partition for each day from ``first_day`` to L."""
    common = None
    for table in LOG_TABLES:
        days = set(available_days(data_root, table))
        common = days if common is None else common & days
    last = None
    day = first_day
    while common and day in common:
        last = day
        day += datetime.timedelta(days=1)
    return last


def missing_log_tables(data_root: str, day: datetime.date) -> list[str]:
    """The log tables without a partition (any part file) for ``day``."""
    return [table for table in LOG_TABLES if day not in set(available_days(data_root, table))]


def snapshot_files(data_root: str, table: str, day: datetime.date) -> list[tuple[str, int, float]]:
    """The part files ``(path, size, modified)`` of raw snapshot ``table`` on ``day``; a clear error when there are
    none."""
    files = list_files_with_metadata(layout.raw_glob(data_root, table, day))
    if not files:
        raise MissingInputError(
            f"no {table} snapshot for {day} under {layout.raw_partition(data_root, table, day)}; "
            "simulate or ingest that day first"
        )
    return files


def require_features(data_root: str, day: datetime.date) -> None:
    """Both feature snapshots of ``day`` must be complete (the examples and the scores of a day join them)."""
    for entity in ("user", "podcast"):
        if not is_complete(layout.feature_partition(data_root, entity, day)):
            raise MissingInputError(
                f"features/{entity} for {day} are missing or incomplete; run `make features DATE={day}` first"
            )


# -- the log horizon -------------------------------------------------------------------------------------------------
def horizon_end_ms(last_logged_day: datetime.date, allowed_lateness_days: int) -> int:
    """Events before this instant are completely logged: an event may be logged up to the lateness after it."""
    return day_start_ms(last_logged_day) + MS_PER_DAY - allowed_lateness_days * MS_PER_DAY


def logs_needed_through(day: datetime.date, window_ms: int, allowed_lateness_days: int) -> datetime.date:
    """The last logging day an impression day needs so that every window of ``window_ms`` is covered (the inverse of
    :func:`horizon_end_ms`): windows end up to ``window_ms`` after D's end, and their events may be logged late."""
    window_days = -(-window_ms // MS_PER_DAY)
    return day + datetime.timedelta(days=window_days + allowed_lateness_days)


# -- the plan --------------------------------------------------------------------------------------------------------
def plan_files(data_root: str, requests: Sequence[tuple[str, str, Sequence[datetime.date], bool]]) -> list[FileSpec]:
    """File specs for ``(table, role, days, owned)`` requests, numbered in a deterministic order."""
    specs = []
    for table, role, days, owned in requests:
        for day in days:
            for path, size, modified in list_files_with_metadata(layout.raw_glob(data_root, table, day)):
                specs.append((table, day.isoformat(), path, role, owned, size, modified))
    return [FileSpec(*spec[:5], index=i, size_bytes=spec[5], modified=spec[6]) for i, spec in enumerate(specs)]


def history_days(day: datetime.date, config: FeatureConfig) -> list[datetime.date]:
    """The logging days the snapshot of ``day`` reads: the longest look-back window, up to the day before ``day``."""
    look_back = max(config.user_history_days, config.podcast_history_days)
    return days_from(day - datetime.timedelta(days=look_back), look_back)


def history_files(data_root: str, day: datetime.date, config: FeatureConfig) -> list[FileSpec]:
    """The raw log files the snapshot of ``day`` reads: every history table over its :func:`history_days`."""
    days = history_days(day, config)
    return plan_files(data_root, [(table, table, days, False) for table in HISTORY_TABLES])


def examples_files(
    data_root: str, day: datetime.date, config: AttributionConfig, lateness: int, last_logged: datetime.date
) -> list[FileSpec]:
    """The files the examples of ``day`` need, by role: what it owns (logged on D) and the context around it.

    An impression logged on D may have been served up to ``lateness`` days before D. Anything that happened after
    it (outcomes that credit it, later impressions that take the credit) may therefore be logged from D - lateness
    on; a click of D may belong to an impression served a click window before that. Logs after D are read as far
    as the longest window (plus lateness) reaches, and no further than they exist.
    """
    after = (last_logged - day).days  # days of logs available after D

    def ahead(window_ms: int) -> list[datetime.date]:
        return days_from(day + datetime.timedelta(days=1), min(after, math.ceil(window_ms / MS_PER_DAY) + lateness))

    def before(n_days: int) -> list[datetime.date]:
        return days_from(day - datetime.timedelta(days=n_days), n_days)

    click_days = math.ceil(config.click_window_ms / MS_PER_DAY) + lateness
    impression_days = before(max(click_days, lateness)) + ahead(config.max_window_ms())
    requests = [
        ("ad_impression", "target", [day], True),
        ("promo_impression", "target", [day], True),
        ("ad_impression", "competitor", impression_days, False),
        ("promo_impression", "competitor", impression_days, False),
    ]
    for table, outcome in (("stream", "stream"), ("follow", "follow"), ("like", "like"), ("click", "click")):
        window = max(config.window_ms(outcome, "ad"), config.window_ms(outcome, "promo"))
        requests.append((table, table, [day], True))
        requests.append((table, table, before(lateness) + ahead(window), False))
    return plan_files(data_root, requests)


MAX_INPUT_BYTES_PER_BUCKET = 8 * 1024 * 1024
MAX_TARGET_BYTES_PER_BUCKET = 768 * 1024


def effective_buckets(requested: int, files: Sequence[FileSpec]) -> int:
    """At least ``requested`` buckets, at most 8 MiB of (compressed Avro) input per bucket, and at most 768 KiB of
    the day's own impressions (role ``target``) per bucket.

    A bucket is one grouped element after the shuffle. At bench scale (358 MB of input for a day), 8 buckets of
    about 45 MB each lost rows in 2 of 3 runs on FnApiRunner multi_processing; 32 buckets of 11 MB, and every run
    at 23 MB or less, reconciled. Bounding the element size keeps worker memory bounded too.

    The second bound is on what a bucket assembles and writes: one wide example row per impression of the day.
    Bounded by all input alone, a day with less context (near the end of the logs) got fewer, fuller buckets:
    day 6 of the 8-day bench world had 16 buckets of 34k rows against 23 of 23k for day 2, and peaked 18% higher.
    At about 26k rows per bucket (768 KiB of impression Avro) the bench day's 2M rows take 80 buckets, which
    measured no slower than 43 and peaked lower (699 MB against 774 MB).
    """
    total = sum(f.size_bytes for f in files)
    target = sum(f.size_bytes for f in files if f.role == "target")
    return max(requested, -(-total // MAX_INPUT_BYTES_PER_BUCKET), -(-target // MAX_TARGET_BYTES_PER_BUCKET))


# -- the examples' checks --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogCoverage:
    """How far the logs reach for the labels of a day: the last day every log table has (``logs_through``), the
    instant before which events are completely logged (``horizon_end_ms``), and whether every window is covered."""

    logs_through: datetime.date
    horizon_end_ms: int
    mature: bool


def check_examples_inputs(
    data_root: str, day: datetime.date, config: AttributionConfig, lateness: int, allow_unobserved: bool
) -> LogCoverage:
    """Everything the examples of ``day`` need, checked before any work: the features of ``day``, the day's logs,
    and logs that cover its attribution windows (unless ``allow_unobserved``)."""
    require_features(data_root, day)
    last_logged = logged_through(data_root, day)
    if last_logged is None:
        missing = [f"raw/{t}/dt={day}" for t in missing_log_tables(data_root, day)]
        raise MissingInputError(
            f"no complete set of raw logs for {day} under {data_root}: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. Every log table needs a partition every day (an empty "
            "file for a day without events)"
        )
    need_day = logs_needed_through(day, config.max_window_ms(), lateness)
    if last_logged < need_day and not allow_unobserved:
        raise ValueError(
            f"labels of {day} are not mature: attribution windows (up to {config.max_window_ms() / MS_PER_DAY:g} "
            f"days, plus {lateness} days of logging lateness) need logs through {need_day}, but logs end on "
            f"{last_logged}. Pass --allow_unobserved to build it with the uncovered labels marked unobserved (null)."
        )
    return LogCoverage(last_logged, horizon_end_ms(last_logged, lateness), last_logged >= need_day)


# -- the side-input loaders ------------------------------------------------------------------------------------------
def read_snapshot(
    data_root: str,
    table: str,
    day: datetime.date,
    cache: DecodeCache | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Rows of raw snapshot ``table`` on ``day`` (Arrow; ``columns`` only, when given), through the decode cache
    when there is one (the features and the examples of a day both read the day's snapshots); a clear error when
    the partition is missing or a file is corrupt."""
    parts = []
    for path, size, modified in snapshot_files(data_root, table, day):
        if cache is None:
            result = read_avro_as_arrow(path, table, columns)
        else:
            result = cache.read(table, day.isoformat(), path, size, modified, columns)
        if result.error is not None:
            raise ValueError(f"snapshot file {path} is corrupt ({result.error}); snapshots must be complete")
        parts.append(result.table)
    return pa.concat_tables(parts)


def load_snapshot(day_iso: str, data_root: str, table: str, cache: DecodeCache | None = None) -> pa.Table:
    """Side-input loader: raw snapshot ``table`` of an ISO day."""
    return read_snapshot(data_root, table, parse_day(day_iso), cache)


def load_podcast_features(day_iso: str, data_root: str) -> pa.Table:
    """Side-input loader: the podcast feature snapshot of an ISO day (small: one row per show)."""
    partition = layout.feature_partition(data_root, "podcast", parse_day(day_iso))
    return read_parquet_files(partition_files(partition, ".parquet"), PODCAST_FEATURES)


def load_reference_ids(day_iso: str, data_root: str, cache: DecodeCache | None = None) -> ReferenceIds:
    """The ids of the dimension snapshots of an ISO day."""
    day = parse_day(day_iso)
    ids = {"user": "user_id", "podcast": "podcast_id", "campaign": "campaign_id", "creative": "creative_id"}
    return ReferenceIds.from_snapshots(*(read_snapshot(data_root, t, day, cache, [c]) for t, c in ids.items()))


def load_reference_ids_by_day(
    _, files: Sequence[FileSpec], data_root: str, cache: DecodeCache | None = None
) -> ReferenceIdsByDay:
    """Side-input loader: the reference ids of every logging day among ``files``, so each row is judged by the
    snapshots of the day that logged it."""
    return ReferenceIdsByDay.load((f.day for f in files), lambda day: load_reference_ids(day, data_root, cache))

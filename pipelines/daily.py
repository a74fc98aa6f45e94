"""Driver-side helpers shared by the daily pipelines (features, examples, scoring): options, worker processes,
inputs and their checks.

Work that happens once per run, before the Beam graph runs: the day to build, how many worker processes (and
starting their server from a command's ``main()``), checking that the inputs exist, finding which logging days
exist, and the loaders of the small snapshots the graph takes as side inputs. The run itself (staging, counts,
reconciliation, commit) is :class:`podtarget.pipelines.staged_run.DailyRun`.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence

import pyarrow as pa
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from podtarget.common.days import parse_day
from podtarget.schemas import LOG_TABLES, layout
from podtarget.schemas.derived import PODCAST_FEATURES
from podtarget.schemas.units import MS_PER_DAY
from podtarget.transforms.arrow.validation import ReferenceIds, ReferenceIdsByDay, day_start_ms
from podtarget.transforms.beam.raw_input import FileSpec, available_days
from podtarget.transforms.runtime import worker_server
from podtarget.transforms.runtime.decode_cache import DecodeCache
from podtarget.transforms.runtime.shuffle import SHUFFLE_MODES
from podtarget.transforms.runtime.storage import (
    is_complete,
    list_files_with_metadata,
    partition_files,
    read_avro_as_arrow,
    read_bytes,
    read_parquet_files,
)
from podtarget.transforms.runtime.worker_server import workers_wanted


class DailyOptions(PipelineOptions):
    """Options of every pipeline that builds one day."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        # Not argparse-required: Beam parses every registered options class for every pipeline in the process.
        # A string, not a date: portable runners serialise options as JSON.
        parser.add_argument("--date", default=None, help="Day to build, YYYY-MM-DD.")
        parser.add_argument(
            "--n_buckets",
            type=int,
            default=8,
            help="User hash buckets: the units of parallel work and the output parts. 8 suits 2 local cores (each "
            "file becomes one shuffled element per bucket, so more buckets cost overhead); use a few per worker "
            "core on a cluster, e.g. 256 on 20 Dataflow workers.",
        )
        parser.add_argument(
            "--allowed_lateness_days",
            type=int,
            default=2,
            help="How many days after its event day an event may still be logged (later: bad_timestamp).",
        )
        parser.add_argument(
            "--shuffle",
            choices=SHUFFLE_MODES,
            default="files",
            help="How rows reach their user bucket. files (default): as Arrow IPC files in a run-private folder "
            "under DATA_ROOT/_shuffle (deleted at the end), with only references in Beam's shuffle; this keeps "
            "the local runners' memory to one bucket per worker. beam: the tables go through Beam's shuffle.",
        )
        parser.add_argument(
            "--io_threads",
            type=int,
            default=2,
            help="Threads per worker for the mostly GIL-free work: files read side by side, user buckets computed "
            "side by side, and Parquet parts encoded and written behind. 2 suits this 2-core machine in-process; "
            "use 1 where the runner already runs a DoFn thread per core (multi_processing, Dataflow).",
        )
        parser.add_argument(
            "--bucket_processes",
            default="auto",
            help="Worker processes per SDK process that read the files and compute the user buckets, each with "
            "its own GIL (the GIL, not the cores, limits one process: it is held two thirds of a bench day). auto "
            "(default): one per core when the whole pipeline runs in this process (DirectRunner in_memory), "
            "else 0. 0: compute in the SDK process, on --io_threads threads. Runners that run an SDK process "
            "per core (multi_processing, Dataflow, Flink) need none.",
        )
        parser.add_argument(
            "--decode_cache",
            choices=("on", "off"),
            default="on",
            help="on (default): keep each raw file's decoded rows (Arrow IPC, LZ4) under DATA_ROOT/_cache/decoded and "
            "read them from there instead of decoding the Avro again; a backfill reads each file about ten times. "
            "Entries follow the raw file's size and modification time; features runs prune days past the history "
            "window.",
        )


def bucket_processes(options: PipelineOptions) -> int:
    """Worker processes for the per-file and per-bucket work (``--bucket_processes``, resolved for the runner)."""
    return workers_wanted(
        options.view_as(StandardOptions).runner,
        options.view_as(DirectOptions).direct_running_mode,
        options.view_as(DailyOptions).bucket_processes,
    )


def start_worker_server(options: PipelineOptions) -> int:
    """Start the worker processes' server now if a run with ``options`` will use workers, so that it imports the
    pipeline modules (~2 s) while the command plans its day instead of when the first bundle needs a worker; returns
    the workers wanted. Called first thing by the daily commands' ``main()``, never at import."""
    processes = bucket_processes(options)
    if processes:
        worker_server.start()
    return processes


def decode_cache(options: PipelineOptions, data_root: str) -> DecodeCache | None:
    """The run's decode cache, or None when ``--decode_cache=off``."""
    if options.view_as(DailyOptions).decode_cache != "on":
        return None
    return DecodeCache(layout.decode_cache_dir(data_root))


def shuffle_folder(options: PipelineOptions, data_root: str, pipeline: str, day: datetime.date, run_id: str):
    """The run's file-backed shuffle folder, or None when ``--shuffle=beam``."""
    if options.view_as(DailyOptions).shuffle != "files":
        return None
    return layout.shuffle_dir(data_root, pipeline, day, run_id)


def build_day(options: PipelineOptions) -> datetime.date:
    """The ``--date`` a daily pipeline builds; a clear error when it was not given."""
    day = options.view_as(DailyOptions).date
    if day is None:
        raise ValueError("--date=YYYY-MM-DD is required: the day to build")
    try:
        return parse_day(day)
    except ValueError as exc:
        raise ValueError(f"--date: {exc}") from None


class MissingInputError(FileNotFoundError):
    """An input partition the day needs does not exist (yet)."""


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


def horizon_end_ms(last_logged_day: datetime.date, allowed_lateness_days: int) -> int:
    """Events before this instant are completely logged: an event may be logged up to the lateness after it."""
    return day_start_ms(last_logged_day) + MS_PER_DAY - allowed_lateness_days * MS_PER_DAY


def logs_needed_through(day: datetime.date, window_ms: int, allowed_lateness_days: int) -> datetime.date:
    """The last logging day an impression day needs so that every window of ``window_ms`` is covered (the inverse of
    :func:`horizon_end_ms`): windows end up to ``window_ms`` after D's end, and their events may be logged late."""
    window_days = -(-window_ms // MS_PER_DAY)
    return day + datetime.timedelta(days=window_days + allowed_lateness_days)


def read_json(path: str) -> dict:
    return json.loads(read_bytes(path))

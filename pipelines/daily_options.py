"""The options of every pipeline that builds one day (features, examples, scoring), and what they resolve to.

:class:`DailyOptions`, read once per run before the Beam graph runs: the day to build (:func:`build_day`), how many
worker processes (:func:`bucket_processes`, and starting their server from a command's ``main()``), the run's decode
cache and shuffle folder. The day's inputs (which files, their checks, the side-input loaders) are planned by
:mod:`podtarget.transforms.runtime.day_inputs`; the run itself (staging, counts, reconciliation, commit) is
:class:`podtarget.pipelines.staged_run.DailyRun`.
"""

from __future__ import annotations

import argparse
import datetime

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from ..common.days import parse_day
from ..schemas import layout
from ..transforms.runtime import worker_server
from ..transforms.runtime.decode_cache import DecodeCache
from ..transforms.runtime.shuffle import SHUFFLE_MODES
from ..transforms.runtime.worker_server import workers_wanted


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

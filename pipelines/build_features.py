"""Build the point-in-time feature snapshots of one day: ``features/user/dt=D/`` and ``features/podcast/dt=D/``.

Usage (``make features DATE=...`` wraps this)::

    python -m podtarget.pipelines.build_features --data_root=./data --date=2026-03-05

The snapshot of D uses only logs of days before D (so nothing logged on or after D can leak into it) and the
dimension snapshots of D (who exists on D: static attributes, not behaviour). History rows with defects are dropped
here and counted; they are dead-lettered by the examples run of the day that logged them. ``_SUCCESS.json``
reconciles every row read (used, filtered as a duplicate, or rejected) and every user of the snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from ..schemas import layout
from ..schemas.derived import PODCAST_FEATURES, USER_FEATURES, fingerprint
from ..transforms.arrow.features import HISTORY_TABLES, FeatureConfig
from ..transforms.beam.feature_snapshots import (
    LISTENING_TAG,
    PIPELINE,
    BuildUserFeaturesBucketFn,
    ReadUserSnapshotBucketsFn,
    WritePodcastFeatures,
    history_columns,
    keep_all_columns,
)
from ..transforms.beam.raw_input import COUNTS_TAG, ReadRawByUserBucket, ReadValidateBucketFn
from ..transforms.beam.shared_steps import ComputeUserBuckets, LoadDayInputs, ReadEachFile
from ..transforms.beam.sinks import SaveCounts
from ..transforms.runtime.day_inputs import (
    FileSpec,
    effective_buckets,
    history_days,
    history_files,
    load_reference_ids_by_day,
    load_snapshot,
    snapshot_files,
)
from ..transforms.runtime.storage import use_system_allocator
from . import lineage
from .daily_options import DailyOptions, bucket_processes, build_day, decode_cache, start_worker_server
from .options import DataRootOptions, resolve_runner, run_main
from .reconciliation import Balance, Ledger, Reconciliation
from .staged_run import DailyRun


def input_fingerprint(data_root: str, day: datetime.date, lateness: int, config: FeatureConfig, files=None) -> dict:
    """What the snapshot of ``day`` is built from (``pipelines/lineage.py``): its history files, the snapshots of
    ``day`` and of the days they were logged, the world and the settings. Recorded in ``_SUCCESS.json``."""
    files = history_files(data_root, day, config) if files is None else files
    settings = {"features": dataclasses.asdict(config), "allowed_lateness_days": lateness}
    return lineage.plan_fingerprint(data_root, day, files, settings)


# Every history row read is used (the first of its id), filtered (a duplicate) or rejected (by the checks its own
# day's examples run applies, which dead-letters it); every user of the snapshot gets a feature row or is filtered.
FEATURE_ROWS_BALANCE = (Balance("unaccounted", "read", ("used", "rejected", "filtered")),)


def feature_ledgers(counts: dict) -> dict[str, Ledger]:
    """One ledger per history table and one for the user snapshot, from the run's merged counts."""

    def ledger(read: int, used: int, rejected: int, filtered: dict) -> Ledger:
        figures = {"read": read, "used": used, "rejected": rejected, "filtered": sum(filtered.values())}
        return Ledger(figures, FEATURE_ROWS_BALANCE)

    ledgers = {
        table: ledger(
            counts.get("context_rows_read", {}).get(table, 0),
            counts.get("history_rows_used", {}).get(table, 0),
            counts.get("context_rows_dropped", {}).get(table, 0),
            counts.get("history_rows_filtered", {}).get(table, {}),
        )
        for table in HISTORY_TABLES
    }
    ledgers["user"] = ledger(
        counts.get("users_read", 0), counts.get("users_written", 0), 0, counts.get("users_filtered", {})
    )
    return ledgers


def planned_inputs(argv: list[str]) -> dict:
    """The fingerprint a run with these arguments would record now (for backfill's staleness check)."""
    options = PipelineOptions(argv)
    data_root = options.view_as(DataRootOptions).data_root
    lateness = options.view_as(DailyOptions).allowed_lateness_days
    return {"inputs": input_fingerprint(data_root, build_day(options), lateness, FeatureConfig())}


def run(argv: list[str] | None = None) -> dict:
    """Build both feature snapshots of ``--date``; returns the summary saved in their ``_SUCCESS.json``."""
    options = resolve_runner(PipelineOptions(argv))
    run = DailyRun.open(options, PIPELINE)
    daily = options.view_as(DailyOptions)
    data_root, day, config = run.data_root, run.day, FeatureConfig()
    use_system_allocator()  # for the in-process runners; workers set it in their DoFns' setup
    users_files = snapshot_files(data_root, "user", day)  # who gets a feature row
    files = history_files(data_root, day, config)
    n_buckets = effective_buckets(daily.n_buckets, files)
    # The podcast snapshot first: a complete user snapshot marks the day's features complete (backfill, make score).
    podcast_staging = run.stage(layout.feature_partition(data_root, "podcast", day))
    user_staging = run.stage(layout.feature_partition(data_root, "user", day))
    shuffle, cache, processes = run.shuffle_folder(), decode_cache(options, data_root), bucket_processes(options)
    read_history = ReadValidateBucketFn(
        PIPELINE,
        day,
        n_buckets,
        daily.allowed_lateness_days,
        keep_all_columns,
        history_columns,
        shuffle_dir=shuffle,
        threads=daily.io_threads,
        cache=cache,
        processes=processes,
    )
    loaders = {
        "ReferenceIds": functools.partial(load_reference_ids_by_day, files=files, data_root=data_root, cache=cache),
        "PodcastSnapshot": functools.partial(load_snapshot, data_root=data_root, table="podcast", cache=cache),
    }

    pipeline = beam.Pipeline(options=options)
    inputs = pipeline | "DayInputs" >> LoadDayInputs(day, loaders)
    podcasts = beam.pvalue.AsSingleton(inputs["PodcastSnapshot"])
    history = pipeline | "ReadHistory" >> ReadRawByUserBucket(
        files, read_history, beam.pvalue.AsSingleton(inputs["ReferenceIds"])
    )
    users = pipeline | "ReadUsers" >> ReadEachFile(
        users_files, ReadUserSnapshotBucketsFn(n_buckets, shuffle, cache), COUNTS_TAG
    )
    built = (history.rows, users.rows) | "UserFeatures" >> ComputeUserBuckets(
        BuildUserFeaturesBucketFn(day, user_staging, config, daily.io_threads, processes),
        podcasts,
        outputs=(LISTENING_TAG, COUNTS_TAG),
    )
    podcast_counts = built[LISTENING_TAG] | "PodcastFeatures" >> WritePodcastFeatures(
        day, podcasts, podcast_staging, config
    )
    all_counts = (history[COUNTS_TAG], users[COUNTS_TAG], built[COUNTS_TAG], podcast_counts)
    _ = all_counts | "SaveCounts" >> SaveCounts(run.counts_path)

    counts = run.execute(pipeline)
    if counts is None:
        return run.dry_run_summary(files=len(files))
    balance = run.reconcile(feature_ledgers(counts))
    inputs_used = input_fingerprint(data_root, day, daily.allowed_lateness_days, config, files)
    summary = run.commit(feature_summary(day, counts, balance, files, n_buckets, config, inputs_used))
    if cache is not None:
        # No later day's features (the longest look-back) or examples read logs older than this window.
        summary["decode_cache_days_pruned"] = cache.prune_before(history_days(day, config)[0])
    return summary


def feature_summary(
    day: datetime.date,
    counts: dict,
    balance: Reconciliation,
    files: list[FileSpec],
    n_buckets: int,
    config: FeatureConfig,
    inputs: dict,
) -> dict:
    """What a features run records in both snapshots' ``_SUCCESS.json``."""
    days = history_days(day, config)
    return {
        "date": day.isoformat(),
        "users": counts.get("users_written", 0),
        "podcasts": counts.get("podcasts_written", 0),
        "history_days": [days[0].isoformat(), days[-1].isoformat()],
        "history_rows_read": counts.get("context_rows_read", {}),
        "history_rows_dropped": counts.get("context_rows_dropped", {}),
        "history_rows_filtered": counts.get("history_rows_filtered", {}),
        "reconciliation": balance.rows,
        # Corrupt history files: their own day dead-letters them; these features could not see past the damage.
        "history_unreadable_files": sorted(counts.get("context_unreadable_files", []), key=lambda f: f["path"]),
        "history_files": len(files),
        "n_buckets": n_buckets,
        "config": {
            "user_history_days": config.user_history_days,
            "podcast_history_days": config.podcast_history_days,
            "min_stream_ms": config.min_stream_ms,
            "tier_shares": list(config.tier_shares),
        },
        "schema_fingerprints": {"user": fingerprint(USER_FEATURES), "podcast": fingerprint(PODCAST_FEATURES)},
        "inputs": inputs,
    }


def describe(summary: dict) -> str:
    dropped = sum(summary["history_rows_dropped"].values())
    return (
        f"features/dt={summary['date']}: {summary['users']:,} users, {summary['podcasts']:,} podcasts from "
        f"{summary['history_files']} history files ({dropped:,} defective history rows dropped) "
        f"in {summary['seconds']:.1f} s"
    ) + "".join(
        f"\nwarning: history file {lost['path']} is corrupt: only its {lost['rows_salvaged']:,} rows before the damage"
        " could be read"
        for lost in summary.get("history_unreadable_files", [])
    )


def main(argv: list[str] | None = None) -> None:
    run_main(run, describe, argv, options=(DataRootOptions, DailyOptions), prepare=start_worker_server)


if __name__ == "__main__":
    main()

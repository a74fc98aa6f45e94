"""Build labeled multi-task examples for one impression day: ``examples/dt=D/`` (Parquet,
``podtarget.schemas.derived``).

Usage (``make examples DATE=...`` wraps this)::

    python -m podtarget.pipelines.build_examples --data_root=./data --date=2026-03-05 [--allow_unobserved]

One row per valid, deduplicated impression logged on D (ads and promotions), labelled by last-touch attribution
across both channels (see ``transforms/arrow/attribution.py``), joined point-in-time with the features of D. The run
refuses a day whose attribution windows are not yet covered by the logs, unless ``--allow_unobserved`` marks the
uncovered labels as unobserved (null). Rejected records go to ``deadletter/build_examples/dt=D/`` with their
reason; the partition's ``_SUCCESS.json`` reconciles every row read.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from ..schemas import layout
from ..schemas.derived import EXAMPLES, fingerprint
from ..schemas.units import MS_PER_DAY, MS_PER_HOUR
from ..transforms.arrow.attribution import AttributionConfig
from ..transforms.arrow.validation import UNREADABLE_FILE
from ..transforms.beam.examples import (
    PIPELINE,
    BuildExamplesBucketFn,
    DayRelevance,
    ReadUserFeatureBucketsFn,
    SortedUnion,
    columns_for_role,
    project_for_role,
    rejected_clicked_impressions,
    relevant_context,
)
from ..transforms.beam.raw_input import (
    COUNTS_TAG,
    DEAD_LETTER_TAG,
    REJECTED_TAG,
    ReadRawByUserBucket,
    ReadValidateBucketFn,
)
from ..transforms.beam.shared_steps import ComputeUserBuckets, LoadDayInputs, ReadEachFile
from ..transforms.beam.sinks import SaveCounts, WriteDeadLetters
from ..transforms.runtime.day_inputs import (
    FileSpec,
    LogCoverage,
    check_examples_inputs,
    effective_buckets,
    examples_files,
    load_podcast_features,
    load_reference_ids_by_day,
    load_snapshot,
    logged_through,
    logs_needed_through,
)
from ..transforms.runtime.storage import atomic_write, parquet_bytes, partition_files, use_system_allocator
from . import lineage
from .daily_options import DailyOptions, bucket_processes, build_day, decode_cache, start_worker_server
from .options import DataRootOptions, resolve_runner, run_main
from .reconciliation import Reconciliation, format_reconciliation, rows_ledgers
from .staged_run import DailyRun


class BuildExamplesOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--allow_unobserved",
            action="store_true",
            help="Build a day whose attribution windows reach past the logs, with those labels null (unobserved).",
        )
        per_channel = " One number for both channels, or per channel as ad:N,promo:M."
        parser.add_argument("--stream_window_hours", default="72", help="Stream attribution window." + per_channel)
        parser.add_argument("--follow_window_days", default="7", help="Follow attribution window." + per_channel)
        parser.add_argument("--like_window_days", default="7", help="Like attribution window." + per_channel)
        parser.add_argument("--click_window_hours", type=float, default=24, help="Click-to-impression window.")
        parser.add_argument("--min_stream_seconds", type=float, default=60, help="Shortest stream that counts.")


def parse_window(option: str, value: str, unit_ms: int) -> dict[str, int]:
    """``"72"`` or ``"ad:48,promo:72"`` (in the option's unit) as milliseconds per channel."""
    try:
        if ":" not in value:
            return {"ad": int(float(value) * unit_ms), "promo": int(float(value) * unit_ms)}
        pairs = dict(part.split(":", 1) for part in value.split(","))
        if set(pairs) != {"ad", "promo"}:
            raise ValueError
        return {channel: int(float(n) * unit_ms) for channel, n in pairs.items()}
    except ValueError:
        raise ValueError(f"--{option} must be a number or 'ad:N,promo:M' (both channels), got {value!r}") from None


def attribution_config(opts: BuildExamplesOptions) -> AttributionConfig:
    return AttributionConfig(
        stream_window_ms=parse_window("stream_window_hours", opts.stream_window_hours, MS_PER_HOUR),
        follow_window_ms=parse_window("follow_window_days", opts.follow_window_days, MS_PER_DAY),
        like_window_ms=parse_window("like_window_days", opts.like_window_days, MS_PER_DAY),
        click_window_ms=int(opts.click_window_hours * MS_PER_HOUR),
        min_stream_ms=int(opts.min_stream_seconds * 1000),
    )


def input_fingerprint(data_root: str, day: datetime.date, config: AttributionConfig, lateness: int, files) -> dict:
    """What the examples of ``day`` are built from (``pipelines/lineage.py``): the planned files, the snapshots of
    ``day`` and of the days they were logged, the features of ``day``, the world and the attribution settings.
    Recorded in ``_SUCCESS.json``; new log days inside the windows change it, so an immature day is rebuilt."""
    attribution = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    settings: dict[str, Any] = {
        "attribution": {k: dict(v) if hasattr(v, "items") else v for k, v in attribution.items()}
    }
    settings["allowed_lateness_days"] = lateness
    features = [layout.feature_partition(data_root, entity, day) for entity in ("user", "podcast")]
    return lineage.plan_fingerprint(data_root, day, files, settings, features)


def planned_inputs(argv: list[str]) -> dict:
    """For backfill: the fingerprint a run with these arguments would record now, whether its labels would be
    mature, and the logging day they need (``None`` inputs when no logs of the day exist)."""
    options = PipelineOptions(argv)
    data_root, day = options.view_as(DataRootOptions).data_root, build_day(options)
    lateness = options.view_as(DailyOptions).allowed_lateness_days
    config = attribution_config(options.view_as(BuildExamplesOptions))
    need_day = logs_needed_through(day, config.max_window_ms(), lateness)
    last_logged = logged_through(data_root, day)
    if last_logged is None:
        return {"inputs": None, "mature": False, "logs_needed_through": need_day.isoformat()}
    files = examples_files(data_root, day, config, lateness, last_logged)
    return {
        "inputs": input_fingerprint(data_root, day, config, lateness, files),
        "mature": last_logged >= need_day,
        "logs_needed_through": need_day.isoformat(),
    }


def run(argv: list[str] | None = None) -> dict:
    """Build examples for ``--date``; returns the partition's summary (also its ``_SUCCESS.json``)."""
    options = resolve_runner(PipelineOptions(argv))
    run = DailyRun.open(options, PIPELINE)
    daily, opts = options.view_as(DailyOptions), options.view_as(BuildExamplesOptions)
    data_root, day, lateness = run.data_root, run.day, daily.allowed_lateness_days
    config = attribution_config(opts)
    use_system_allocator()  # for the in-process runners; workers set it in their DoFns' setup
    logs = check_examples_inputs(data_root, day, config, lateness, opts.allow_unobserved)
    user_feature_paths = partition_files(layout.feature_partition(data_root, "user", day), ".parquet")
    files = examples_files(data_root, day, config, lateness, logs.logs_through)
    n_buckets = effective_buckets(daily.n_buckets, files)
    staging = run.stage(layout.examples_partition(data_root, day))
    dead_staging = run.stage_dead_letters(layout.deadletter_partition(data_root, PIPELINE, day))
    shuffle, cache, processes = run.shuffle_folder(), decode_cache(options, data_root), bucket_processes(options)
    read_raw = ReadValidateBucketFn(
        PIPELINE,
        day,
        n_buckets,
        lateness,
        project_for_role,
        columns_for_role,
        relevant_context,
        shuffle_dir=shuffle,
        threads=daily.io_threads,
        cache=cache,
        processes=processes,
        rejected_keys=rejected_clicked_impressions,
    )
    label_and_assemble = BuildExamplesBucketFn(
        day, staging, logs.horizon_end_ms, config, [f.path for f in files], daily.io_threads, processes, lateness
    )
    loaders = {
        "ReferenceIds": functools.partial(load_reference_ids_by_day, files=files, data_root=data_root, cache=cache),
        "PodcastFeatures": functools.partial(load_podcast_features, data_root=data_root),
        "Campaigns": functools.partial(load_snapshot, data_root=data_root, table="campaign", cache=cache),
        "Creatives": functools.partial(load_snapshot, data_root=data_root, table="creative", cache=cache),
    }

    pipeline = beam.Pipeline(options=options)
    inputs = pipeline | "DayInputs" >> LoadDayInputs(day, loaders)
    relevance = pipeline | "Relevance" >> DayRelevance(files, day, lateness, cache)
    read = pipeline | "ReadRaw" >> ReadRawByUserBucket(
        files,
        read_raw,
        beam.pvalue.AsSingleton(inputs["ReferenceIds"]),
        beam.pvalue.AsSingleton(relevance),
    )
    rejected_clicked = read[REJECTED_TAG] | "AllRejectedClickedImpressions" >> beam.CombineGlobally(SortedUnion(str))
    user_features = pipeline | "ReadUserFeatures" >> ReadEachFile(
        user_feature_paths, ReadUserFeatureBucketsFn(n_buckets, shuffle)
    )
    built = (read.rows, user_features.rows) | "LabelAndAssemble" >> ComputeUserBuckets(
        label_and_assemble,
        *(beam.pvalue.AsSingleton(inputs[name]) for name in ("PodcastFeatures", "Campaigns", "Creatives")),
        beam.pvalue.AsSingleton(rejected_clicked),
        outputs=(DEAD_LETTER_TAG, COUNTS_TAG),
    )
    _ = (read[COUNTS_TAG], built[COUNTS_TAG]) | "SaveCounts" >> SaveCounts(run.counts_path)
    _ = (read[DEAD_LETTER_TAG], built[DEAD_LETTER_TAG]) | "SaveDeadLetters" >> WriteDeadLetters(dead_staging)

    counts = run.execute(pipeline)
    if counts is None:
        return run.dry_run_summary(files=len(files))
    balance = run.reconcile(rows_ledgers(counts["tables"]))
    summary = examples_summary(day, counts, balance, logs, config, lateness, files, n_buckets)
    summary["inputs"] = input_fingerprint(data_root, day, config, lateness, files)
    if summary["rows"] == 0:
        # A day with no impressions is a real, complete day: one empty part keeps its schema for every reader.
        atomic_write(layout.join(staging, "part-00000.parquet"), parquet_bytes(EXAMPLES.empty_table()))
    return run.commit(summary, dead_letters={"dead_letter": summary["dead_letter"]})


def examples_summary(
    day: datetime.date,
    counts: dict,
    balance: Reconciliation,
    logs: LogCoverage,
    config: AttributionConfig,
    lateness: int,
    files: list[FileSpec],
    n_buckets: int,
) -> dict:
    """What an examples run records in its ``_SUCCESS.json`` (without ``inputs``, its lineage)."""
    tables = counts["tables"]
    unreadable = sorted(counts.get("unreadable_files", []), key=lambda f: f["path"])
    return {
        "date": day.isoformat(),
        "rows": sum(tables.get(t, {}).get("written", 0) for t in ("ad_impression", "promo_impression")),
        "reconciliation": balance.rows,
        "dead_letter": dead_letter_counts(tables, unreadable),
        "filtered": {t: c.get("filtered", {}) for t, c in tables.items() if any(c.get("filtered", {}).values())},
        "unreadable_files": unreadable,
        # Corrupt files of other days read as context: their own day dead-letters them, and this day's labels
        # could not see the rows past their last complete block.
        "context_unreadable_files": sorted(counts.get("context_unreadable_files", []), key=lambda f: f["path"]),
        "context_rows_dropped": counts.get("context_rows_dropped", {}),
        "context_rows_irrelevant": counts.get("context_rows_irrelevant", {}),
        "labels": counts.get("labels", {}),
        "labels_mature": logs.mature,
        "logs_through": logs.logs_through.isoformat(),
        "horizon_end_ms": logs.horizon_end_ms,
        "attribution": {
            "stream_window_ms": dict(config.stream_window_ms),
            "follow_window_ms": dict(config.follow_window_ms),
            "like_window_ms": dict(config.like_window_ms),
            "click_window_ms": config.click_window_ms,
            "min_stream_ms": config.min_stream_ms,
            "allowed_lateness_days": lateness,
        },
        "input_files": len(files),
        "input_bytes": sum(f.size_bytes for f in files),
        "n_buckets": n_buckets,
        "examples_schema_fingerprint": fingerprint(EXAMPLES),
    }


def dead_letter_counts(tables: dict, unreadable_files: list[dict]) -> dict[str, dict[str, int]]:
    """Per table, the day's dead letters by reason, as the dead-letter partition holds them: the rejected rows, and
    one ``unreadable_file`` record per corrupt file of the day (its salvaged rows are counted by their own fate;
    the rows past the damage were never read, so the reconciliation of rows does not count the file)."""
    out = {t: dict(c["dead_letter"]) for t, c in tables.items() if c.get("dead_letter")}
    for lost in unreadable_files:
        reasons = out.setdefault(lost["table"], {})
        reasons[UNREADABLE_FILE] = reasons.get(UNREADABLE_FILE, 0) + 1
    return {t: dict(sorted(reasons.items())) for t, reasons in sorted(out.items())}


def format_summary(summary: dict) -> str:
    lines = [
        f"examples/dt={summary['date']}: {summary['rows']:,} rows"
        f" (labels {'mature' if summary['labels_mature'] else 'partly unobserved'}; logs through "
        f"{summary['logs_through']})",
        "",
        format_reconciliation(summary["reconciliation"]),
    ]
    if summary["dead_letter"]:
        lines += ["", f"dead letters: {json.dumps(summary['dead_letter'], sort_keys=True)}"]
    if summary["filtered"]:
        lines += [f"filtered: {json.dumps(summary['filtered'], sort_keys=True)}"]
    for lost in summary.get("context_unreadable_files", []):
        lines.append(
            f"warning: context file {lost['path']} (logged {lost['day']}) is corrupt: only its "
            f"{lost['rows_salvaged']:,} rows before the damage could be read; rebuild this day once it is repaired"
        )
    for source, labels in sorted(summary["labels"].items()):
        # A rate over observed rows only when all are observed: credited positives of an immature day are certain,
        # but its uncredited rows are unknown, so a rate would be inflated.
        rates = ", ".join(
            f"{name[6:]} {v['positive'] / max(v['positive'] + v['negative'], 1):.2%}"
            if not v["unobserved"]
            else f"{name[6:]} {v['positive']:,} positive, {v['unobserved']:,} unobserved"
            for name, v in labels.items()
        )
        lines.append(f"{source:<6} label rates: {rates}")
    return "\n".join(lines)


def describe(summary: dict) -> str:
    return f"{format_summary(summary)}\n\nbuilt in {summary['seconds']:.1f} s"


def main(argv: list[str] | None = None) -> None:
    run_main(
        run, describe, argv, options=(DataRootOptions, DailyOptions, BuildExamplesOptions), prepare=start_worker_server
    )


if __name__ == "__main__":
    main()

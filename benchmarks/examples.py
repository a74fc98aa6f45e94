"""Benchmark features + examples for one day of the bench world, and peak memory across days of a longer world."""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile

from benchmarks.harness import measure
from podtarget.schemas import layout
from podtarget.transforms.runtime.storage import delete_tree

BACKFILL = [sys.executable, "-m", "podtarget.pipelines.backfill"]


def _build_day(data_root: str, day: datetime.date, beam_args: list[str]) -> dict:
    """Features and examples of ``day`` as the daily schedule builds them: one backfill process for the day."""
    with tempfile.TemporaryDirectory() as scratch:
        status_path = os.path.join(scratch, "status.json")
        run = measure(
            [
                *BACKFILL,
                f"--data_root={data_root}",
                f"--start={day.isoformat()}",
                f"--end={day.isoformat()}",
                "--force",
                "--allow_unobserved",
                f"--status_json={status_path}",
                *beam_args,
            ]
        )
        with open(status_path) as handle:
            stage_seconds = {s["stage"]: s["seconds"] for s in json.load(handle)}
    with open(layout.success_marker(layout.examples_partition(data_root, day))) as handle:
        summary = json.load(handle)
    impressions = sum(summary["reconciliation"][t]["read"] for t in ("ad_impression", "promo_impression"))
    return {
        "date": day.isoformat(),
        "impressions": impressions,
        "examples_written": summary["rows"],
        "seconds": round(run["seconds"], 2),
        "features_seconds": stage_seconds["features"],
        "examples_seconds": stage_seconds["examples"],
        "startup_seconds": round(run["seconds"] - stage_seconds["features"] - stage_seconds["examples"], 2),
        "end_to_end_impressions_per_s": round(impressions / run["seconds"]),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "peak_tree_pss_mb": round(run["peak_tree_pss_mb"], 1),
        "input_files": summary["input_files"],
    }


def _world_start(data_root: str) -> datetime.date:
    with open(layout.join(layout.world_dir(data_root), "config.json")) as handle:
        return datetime.date.fromisoformat(json.load(handle)["start_date"])


def _clear_decode_cache(data_root: str) -> None:
    delete_tree(layout.decode_cache_dir(data_root))


def run(bench_root: str, beam_args: list[str]) -> dict:
    """Day 2 of the bench world (the simulate benchmark leaves it in ``bench_root``), twice, each time as
    ``podtarget.pipelines.backfill`` of that one day (features then examples in one process, as a daily schedule runs
    it; ``end_to_end_impressions_per_s`` counts the whole process, start-up included):

    - **daily** (the headline): day 1 is built first, as the run before it in a backfill or a daily schedule, so
      the raw files day 2 shares with it come from the decode cache;
    - **cold**: the decode cache emptied first, every file decoded from Avro.

    Then days 2, 4 and 6 of the 8-day world of its memory sweep (``<bench_root>-days``), built in order after day 1
    (as a daily schedule reaches them: their raw files mostly decoded before), whose peak memory must not grow with
    the day. The cold figure above is the cache-miss case.
    """
    start = _world_start(bench_root)
    _clear_decode_cache(bench_root)
    _build_day(bench_root, start, beam_args)
    daily = _build_day(bench_root, start + datetime.timedelta(days=1), beam_args)
    _clear_decode_cache(bench_root)
    cold = _build_day(bench_root, start + datetime.timedelta(days=1), beam_args)
    sweep_root = f"{bench_root}-days"
    sweep_start = _world_start(sweep_root)
    _clear_decode_cache(sweep_root)
    _build_day(sweep_root, sweep_start, beam_args)
    sweep = [_build_day(sweep_root, sweep_start + datetime.timedelta(days=k), beam_args) for k in (1, 3, 5)]
    # Flat in both senses: the largest process, and everything the day's processes held at once.
    growth = {
        key: round(max(s[key] for s in sweep) / min(s[key] for s in sweep), 3)
        for key in ("peak_rss_mb", "peak_tree_pss_mb")
    }
    return {
        "bench_day": daily,
        "bench_day_cold_cache": cold,
        "memory_by_day": [{k: s[k] for k in ("date", "impressions", "peak_rss_mb", "peak_tree_pss_mb")} for s in sweep],
        "peak_rss_max_over_min": growth["peak_rss_mb"],
        "peak_tree_pss_max_over_min": growth["peak_tree_pss_mb"],
        "targets": {"end_to_end_impressions_per_s_at_least": 100_000, "peak_memory_max_over_min_at_most": 1.15},
        "targets_met": daily["end_to_end_impressions_per_s"] >= 100_000 and max(growth.values()) <= 1.15,
    }

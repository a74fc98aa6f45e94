"""Benchmark the world simulator: the bench world's throughput, and peak memory as the number of days grows."""

from __future__ import annotations

import json
import sys

from benchmarks.harness import measure

SIMULATE = [sys.executable, "-m", "podtarget.pipelines.simulate_world", "--overwrite"]


def _simulate(data_root: str, beam_args: list[str], *world_args: str) -> dict:
    run = measure([*SIMULATE, f"--data_root={data_root}", *world_args, *beam_args])
    with open(f"{data_root}/world/summary.json") as handle:
        summary = json.load(handle)
    impressions = sum(summary["impressions"].values())
    rows = sum(sum(days.values()) for days in summary["rows"].values())
    return {
        "impressions": impressions,
        "rows_written": rows,
        "seconds": round(run["seconds"], 2),
        "impressions_per_s": round(impressions / run["seconds"]),
        "rows_per_s": round(rows / run["seconds"]),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "rates": summary["rates"],
        "rates_out_of_range": summary["rates_out_of_range"],
    }


def run(bench_root: str, beam_args: list[str]) -> dict:
    """The bench world into ``bench_root`` (kept for the later benchmarks), then a memory-versus-days sweep."""
    world = _simulate(bench_root, beam_args, "--world=bench")
    sweep = []
    for days in (2, 4, 8):
        # A quarter of the bench users, so the sweep stays short; memory must not grow with the days.
        figures = _simulate(f"{bench_root}-days", beam_args, "--world=bench", "--n_users=100000", f"--n_days={days}")
        sweep.append({"n_days": days, "impressions": figures["impressions"], "peak_rss_mb": figures["peak_rss_mb"]})
    growth = sweep[-1]["peak_rss_mb"] / sweep[0]["peak_rss_mb"]
    return {
        "bench_world": world,
        "memory_vs_days": sweep,
        "peak_rss_growth_2_to_8_days": round(growth, 3),
        "targets": {"bench_world_impressions_at_least": 5_000_000, "peak_rss_growth_at_most": 1.15},
        "targets_met": world["impressions"] >= 5_000_000 and growth <= 1.15,
    }

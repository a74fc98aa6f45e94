"""The run summary of a simulated world: rows per table and day, base rates per channel, tail, planted dirt.

>>> summary = summarize(merged_stats, config)      # doctest: +SKIP
>>> print(format_summary(summary))                 # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .config import DIRT_KINDS, WorldConfig

OUTCOMES = ("click", "stream", "follow", "like")


def summarize(stats: dict, config: WorldConfig) -> dict:
    """Turn merged shard statistics into the summary saved as ``world/summary.json``."""
    rates: dict[str, float] = {}
    impressions: dict[str, int] = {}
    for channel, counts in sorted(stats.get("outcomes", {}).items()):
        n = int(counts.get("impressions", 0))
        impressions[channel] = n
        for outcome in OUTCOMES:
            rates[f"{channel}.{outcome}"] = counts.get(outcome, 0) / n if n else 0.0
    out_of_range = {
        key: {"rate": rates.get(key, 0.0), "expected": list(bounds)}
        for key, bounds in config.expected_rates.items()
        if not bounds[0] <= rates.get(key, 0.0) <= bounds[1]
    }
    per_podcast = np.asarray(stats.get("organic_streams_per_podcast") or [0], dtype=np.int64)
    ordered = np.sort(per_podcast)[::-1]
    top_decile = max(1, len(ordered) // 10)
    total = max(int(ordered.sum()), 1)
    dirt: dict[str, dict[str, int]] = {}
    for table, kinds in sorted(stats.get("dirt", {}).items()):
        dirt[table] = {kind: int(kinds[kind]) for kind in DIRT_KINDS if kinds.get(kind)}
    truncated = stats.get("truncated_files", [])
    dirt_totals = {kind: sum(t.get(kind, 0) for t in dirt.values()) for kind in DIRT_KINDS}
    dirt_totals["truncated_file"] = len(truncated)
    return {
        "world": {
            "seed": config.seed,
            "start_date": config.start_date.isoformat(),
            "end_date": config.end_date.isoformat(),
            "n_users": config.n_users,
            "n_podcasts": config.n_podcasts,
            "n_campaigns": config.n_ad_campaigns + config.n_promo_campaigns,
            "n_shards": config.n_shards,
            "dirty_rate": config.dirty_rate,
        },
        "rows": {table: dict(sorted(days.items())) for table, days in sorted(stats.get("rows", {}).items())},
        "impressions": impressions,
        "rates": rates,
        "rates_out_of_range": out_of_range,
        "popularity": {
            "organic_qualifying_streams": int(per_podcast.sum()),
            "top_10pct_share": float(ordered[:top_decile].sum() / total),
            "median_streams_per_podcast": float(np.median(per_podcast)),
            "podcasts_under_10_streams_share": float((per_podcast < 10).mean()),
        },
        "dirt": dirt,
        "dirt_totals": dirt_totals,
        "truncated_files": truncated,
        "not_logged_past_horizon": dict(sorted(stats.get("beyond_horizon", {}).items())),
    }


def format_summary(summary: dict) -> str:
    """A readable table of the summary for the terminal."""
    lines = []
    w = summary["world"]
    lines.append(
        f"Simulated world seed={w['seed']} {w['start_date']}..{w['end_date']}: {w['n_users']:,} users, "
        f"{w['n_podcasts']:,} podcasts, {w['n_campaigns']} campaigns, {w['n_shards']} shards, "
        f"dirty_rate={w['dirty_rate']}"
    )
    rows = summary["rows"]
    days = sorted({d for per_day in rows.values() for d in per_day})
    tables = sorted(rows)
    width = max(len(t) for t in tables) if tables else 5
    lines.append("")
    lines.append("Rows per table and day")
    lines.append(f"{'day':<12}" + "".join(f"{t:>{max(width, 9) + 1}}" for t in tables))
    for day in days:
        lines.append(f"{day:<12}" + "".join(f"{rows[t].get(day, 0):>{max(width, 9) + 1},}" for t in tables))
    lines.append(f"{'total':<12}" + "".join(f"{sum(rows[t].values()):>{max(width, 9) + 1},}" for t in tables))
    lines.append("")
    lines.append("Base rates per impression (outcomes the impression caused, from the ground truth)")
    lines.append(f"{'channel':<8}{'impressions':>13}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for channel, n in summary["impressions"].items():
        cells = "".join(f"{summary['rates'][f'{channel}.{o}']:>9.2%}" for o in OUTCOMES)
        lines.append(f"{channel:<8}{n:>13,}{cells}")
    beyond = {t: n for t, n in summary.get("not_logged_past_horizon", {}).items() if n}
    if beyond:
        # The rates count every impression served; those served after the last day are in no log partition.
        lines.append(
            "Served after the last day, so in the rates but in no log: "
            + ", ".join(f"{table} {n:,}" for table, n in beyond.items())
        )
    if summary["rates_out_of_range"]:
        lines.append(f"WARNING: rates outside their expected ranges: {summary['rates_out_of_range']}")
    pop = summary["popularity"]
    lines.append("")
    lines.append(
        f"Popularity: top 10% of podcasts take {pop['top_10pct_share']:.0%} of organic streams; median podcast "
        f"{pop['median_streams_per_podcast']:.0f} streams; {pop['podcasts_under_10_streams_share']:.0%} under 10"
    )
    totals = {k: v for k, v in summary["dirt_totals"].items() if v}
    lines.append(f"Planted dirt: {totals if totals else 'none'}")
    return "\n".join(lines)

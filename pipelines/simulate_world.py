"""Simulate a podcast world into ``DATA_ROOT``: day-partitioned Avro logs plus the saved ground truth.

Usage (``make data`` wraps this)::

    python -m podtarget.pipelines.simulate_world --data_root=./data --world=demo --seed=7 [--dirty_rate=0.01] \\
        [--runner=DataflowRunner --project=... --region=... --temp_location=gs://...]

The driver draws the world (entities and hidden traits) and saves it under ``world/``; the pipeline then shards the
users across workers, each shard writing its own part files; the merged statistics become ``world/summary.json``,
which is printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, TestOptions

from ..common.days import parse_day
from ..schemas import LOG_TABLES, SNAPSHOT_TABLES, layout
from ..simulator import World, WorldConfig
from ..simulator.summary import format_summary, summarize
from ..transforms.beam.simulate import SimulateWorld
from ..transforms.beam.sinks import WriteJson
from .options import DataRootOptions, resolve_runner, run_main


class SimulateWorldOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--world", default="demo", help="World preset: tiny, demo, bench or eval.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed (default: the preset's).")
        parser.add_argument("--dirty_rate", type=float, default=None, help="Share of rows per defect kind, 0-0.1.")
        parser.add_argument("--n_users", type=int, default=None, help="Override the preset's number of users.")
        parser.add_argument("--n_days", type=int, default=None, help="Override the preset's number of days.")
        parser.add_argument("--start_date", default=None, help="Override the first day (YYYY-MM-DD).")
        parser.add_argument(
            "--responsiveness_correlation",
            type=float,
            default=None,
            help="How strongly users' ad responsiveness follows their promotion responsiveness, -1..1 "
            "(GroundTruth.ad_promo_responsiveness_correlation; default 0: independent).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace a world already simulated under --data_root (raw tables and world/).",
        )


def build_config(opts: SimulateWorldOptions) -> WorldConfig:
    overrides = {
        "seed": opts.seed,
        "dirty_rate": opts.dirty_rate,
        "n_users": opts.n_users,
        "n_days": opts.n_days,
        "start_date": parse_day(opts.start_date) if opts.start_date else None,
    }
    config = WorldConfig.preset(opts.world, **{k: v for k, v in overrides.items() if v is not None})
    if opts.responsiveness_correlation is None:
        return config
    correlation = opts.responsiveness_correlation
    truth = dataclasses.replace(config.ground_truth, ad_promo_responsiveness_correlation=correlation)
    return dataclasses.replace(config, ground_truth=truth)


def prepare_output(data_root: str, overwrite: bool) -> list[str]:
    """Refuse to mix two worlds under one root; with ``overwrite``, delete the previous one first, with everything
    derived from it (features, examples, dead letters, scoring outputs, the decode cache): derived data of another
    world must not count as complete for the new one. Returns the folders deleted."""
    world_dir = layout.world_dir(data_root)
    raw = [layout.raw_table(data_root, t) for t in (*LOG_TABLES, *SNAPSHOT_TABLES)]
    existing = [
        path
        for path in [world_dir, *raw, *layout.derived_dirs(data_root)]
        if FileSystems.exists(path) or FileSystems.match([path + "/*"])[0].metadata_list
    ]
    if not existing:
        return []
    if not overwrite:
        raise FileExistsError(
            f"{data_root} already holds simulated data or data derived from it ({existing[0]} ...); pass --overwrite "
            "(make data does) to replace it and everything derived from it, or choose another --data_root"
        )
    for path in existing:
        matches = FileSystems.match([path + "/**"])[0].metadata_list
        if matches:
            FileSystems.delete([m.path for m in matches])
        if FileSystems.exists(path):
            FileSystems.delete([path])
    return existing


def run(argv: list[str] | None = None) -> dict:
    """Simulate the world and return its summary (also saved as ``world/summary.json``)."""
    options = resolve_runner(PipelineOptions(argv))
    options.view_as(SetupOptions).save_main_session = False
    opts = options.view_as(SimulateWorldOptions)
    data_root = options.view_as(DataRootOptions).data_root
    config = build_config(opts)

    started = time.perf_counter()
    replaced = prepare_output(data_root, opts.overwrite)
    if replaced:
        derived = [p.rstrip("/").rsplit("/", 1)[-1] for p in replaced if p in layout.derived_dirs(data_root)]
        logging.getLogger(__name__).warning(
            "replaced the world under %s%s",
            data_root,
            f" and removed its derived data: {', '.join(derived)}" if derived else "",
        )
    world = World.generate(config)
    world.save(layout.world_dir(data_root))
    summary_path = layout.join(layout.world_dir(data_root), "summary.json")

    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Simulate" >> SimulateWorld(data_root, config.n_shards, [d.isoformat() for d in config.days])
        | "Summarize" >> beam.Map(summarize, config)
        | "SaveSummary" >> WriteJson(summary_path)
    )
    result = pipeline.run()
    result.wait_until_finish()
    if options.view_as(TestOptions).dry_run:
        # Dataflow's --dry_run builds and validates the whole job graph offline, and runs nothing.
        return {"dry_run": True, "state": str(result.state), "world": {"n_shards": config.n_shards}}
    with FileSystems.open(summary_path) as handle:
        summary = json.loads(handle.read())
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def describe(summary: dict) -> str:
    return f"{format_summary(summary)}\n\nwritten in {summary['seconds']:.1f} s; summary: world/summary.json"


def main(argv: list[str] | None = None) -> None:
    run_main(run, describe, argv, options=(DataRootOptions, SimulateWorldOptions))


if __name__ == "__main__":
    main()

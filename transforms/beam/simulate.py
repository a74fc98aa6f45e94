"""Beam transforms that run the simulated world: users sharded across workers, each shard writing its own parts.

Records never cross a shuffle: a shard generates a day of logs for its users and writes them as
``raw/<table>/dt=D/part-<shard>.avro`` directly (atomically, byte-identical on a retry since everything is seeded by
``(seed, shard, day)``). Only small per-shard statistics flow through the pipeline, into the run summary. This keeps
the simulator as fast as numpy allows while still scaling out on Dataflow or Flink: more users, more shards.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from ...schemas import LOG_TABLES, layout, load_schema
from ...simulator.behaviour import ShardSimulator
from ...simulator.dirt import truncated_file_target
from ...simulator.world import World
from ..arrow.counting import merge_counts
from ..runtime.storage import deterministic_sync_marker, truncate_file, write_avro_part

CATALOG_TABLES = ("podcast", "campaign", "creative")
CATALOG_SHARD = 0


class _WorldPartWriterFn(beam.DoFn):
    """Base for DoFns that load the saved world once per worker and write seeded, atomic part files."""

    def __init__(self, data_root: str) -> None:
        self.data_root = data_root

    def setup(self) -> None:
        self.world = World.load(layout.world_dir(self.data_root))

    def write_part(self, table: str, day: datetime.date, shard: int, records: list[dict]) -> str:
        path = layout.part_file(layout.raw_partition(self.data_root, table, day), shard)
        marker = deterministic_sync_marker(self.world.config.seed, table, day, shard)
        write_avro_part(path, load_schema(table), records, sync_marker=marker)
        return path


class SimulateUserShardFn(_WorldPartWriterFn):
    """Simulates one shard of users over every day; writes its log and user-snapshot parts; yields its stats."""

    def __init__(self, data_root: str) -> None:
        super().__init__(data_root)
        self.rows_written = {t: Metrics.counter("simulate", f"rows_{t}") for t in (*LOG_TABLES, "user")}
        self.files_truncated = Metrics.counter("simulate", "dirt_truncated_files")

    def process(self, shard: int) -> Iterator[dict]:
        sim = ShardSimulator(self.world, shard)
        target = truncated_file_target(self.world.config)
        truncated = []
        for day, tables in sim.run():
            for table, records in tables.items():
                path = self.write_part(table, day, shard, records)
                self.rows_written[table].inc(len(records))
                if target == (shard, table, self.world.day_offset(day)):
                    truncate_file(path, keep_fraction=0.6)
                    truncated.append({"path": path, "rows_in_file": len(records)})
                    self.files_truncated.inc()
        stats = sim.stats.to_dict()
        stats["truncated_files"] = truncated
        yield stats


class WriteCatalogSnapshotsFn(_WorldPartWriterFn):
    """Writes the podcast, campaign and creative snapshots of one day (small tables: one part each)."""

    def process(self, day_iso: str) -> Iterator[dict]:
        day = datetime.date.fromisoformat(day_iso)
        rows = {
            "podcast": self.world.podcast_rows(day),
            "campaign": self.world.campaign_rows(day),
            "creative": self.world.creative_rows(day),
        }
        for table, records in rows.items():
            self.write_part(table, day, CATALOG_SHARD, records)
        yield {"rows": {table: {day_iso: len(records)} for table, records in rows.items()}}


class SimulateWorld(beam.PTransform):
    """Simulate the world saved under ``<data_root>/world`` into ``<data_root>/raw``; outputs the merged stats.

    The world (entities and ground truth) must already be saved there with :meth:`World.save`: workers load it,
    so the driver decides the world once and every worker agrees on it.
    """

    def __init__(self, data_root: str, n_shards: int, days: list[str]) -> None:
        super().__init__()
        self.data_root = data_root
        self.n_shards = n_shards
        self.days = days

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        shards = (
            pbegin
            | "UserShards" >> beam.Create(list(range(self.n_shards)))
            # Spread shards over workers (Create alone may hand every element to one bundle).
            | "SpreadShards" >> beam.Reshuffle()
            | "SimulateUsers" >> beam.ParDo(SimulateUserShardFn(self.data_root))
        )
        catalog = (
            pbegin
            | "Days" >> beam.Create(self.days)
            | "WriteCatalogSnapshots" >> beam.ParDo(WriteCatalogSnapshotsFn(self.data_root))
        )
        return (shards, catalog) | "AllStats" >> beam.Flatten() | "MergeStats" >> beam.CombineGlobally(merge_counts)


__all__ = ["SimulateWorld"]

"""Small sinks shared by the pipelines: a JSON document, a run's merged counts and a dead-letter partition, each
written atomically. The counts and dead-letter sinks take one PCollection or a tuple of them (flattened first), as
a pipeline gathers them from several steps: ``(read_counts, bucket_counts) | SaveCounts(path)``."""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
from apache_beam import pvalue

from ...schemas import layout
from ...schemas.derived import DEAD_LETTER
from ..arrow.counting import merge_counts
from ..runtime.storage import atomic_write, parquet_bytes


class WriteJson(beam.PTransform):
    """Writes the single element of its input as pretty JSON to ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        def write(value: dict, path: str) -> str:
            atomic_write(path, json.dumps(value, indent=2, sort_keys=True, default=str).encode())
            return path

        return pcoll | "Write" >> beam.Map(write, self.path)


def _flattened(inputs: beam.PCollection | tuple[beam.PCollection, ...], label: str) -> beam.PCollection:
    """One PCollection of ``inputs`` (a PCollection, or a tuple of them flattened under ``label``)."""
    if isinstance(inputs, pvalue.PCollection):
        return inputs
    return tuple(inputs) | label >> beam.Flatten()


class SaveCounts(beam.PTransform):
    """Merges the count dicts of its input(s) into one (:func:`merge_counts`) and writes it as JSON to ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def expand(self, counts) -> beam.PCollection:
        return (
            _flattened(counts, "AllCounts")
            | "Merge" >> beam.CombineGlobally(merge_counts)
            | "Write" >> WriteJson(self.path)
        )


class WriteDeadLetters(beam.PTransform):
    """Gathers dead-letter tables into one Parquet part (``DEAD_LETTER`` schema) in ``folder``; empty if none.

    Dead letters are few by nature (defects), so one part per partition keeps them easy to inspect.
    """

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def expand(self, pcoll) -> beam.PCollection:
        def write(tables: list[pa.Table], folder: str) -> int:
            merged = pa.concat_tables([DEAD_LETTER.empty_table(), *tables])
            merged = merged.sort_by(
                [
                    ("table", "ascending"),
                    ("reason", "ascending"),
                    ("source_path", "ascending"),
                    ("record_json", "ascending"),
                ]
            )
            atomic_write(layout.join(folder, "part-00000.parquet"), parquet_bytes(merged))
            return merged.num_rows

        return (
            _flattened(pcoll, "AllDeadLetters")
            | "Gather" >> beam.combiners.ToList()
            | "Write" >> beam.Map(write, self.folder)
        )

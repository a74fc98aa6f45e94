"""Composite steps the daily pipelines (features, examples, scoring) share between their inputs and their sinks
(the sinks they share are in :mod:`podtarget.transforms.beam.sinks`).

- :class:`LoadDayInputs`: the day's small inputs (snapshots, reference ids, podcast features), each loaded once and
  used as side inputs;
- :class:`ReadEachFile`: a list of files, one element each, read by a DoFn (into user buckets);
- :class:`ComputeUserBuckets`: rows from several readers grouped by user bucket (the pipeline's one shuffle) and
  computed bucket by bucket.

A features run wires them as::

    inputs = pipeline | "DayInputs" >> LoadDayInputs(day, {"podcasts": load_podcasts})
    users = pipeline | "ReadUsers" >> ReadEachFile(user_files, ReadUserSnapshotBucketsFn(...), COUNTS_TAG)
    built = (history.rows, users.rows) | "UserFeatures" >> ComputeUserBuckets(
        BuildUserFeaturesBucketFn(...), beam.pvalue.AsSingleton(inputs["podcasts"]), outputs=(COUNTS_TAG,)
    )
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue


class LoadDayInputs(beam.PTransform):
    """``name -> loader(day as ISO string)`` for each of ``loaders``: a dict of one-element PCollections, each read
    once by one worker (wrap them in ``beam.pvalue.AsSingleton`` to use them as side inputs)."""

    def __init__(self, day: datetime.date, loaders: Mapping[str, Callable[[str], Any]]) -> None:
        super().__init__()
        self.day, self.loaders = day, dict(loaders)

    def expand(self, pbegin: pvalue.PBegin) -> dict[str, beam.PCollection]:
        seed = pbegin | "Day" >> beam.Create([self.day.isoformat()])
        return {name: seed | name >> beam.Map(loader) for name, loader in self.loaders.items()}


class ReadEachFile(beam.PTransform):
    """``files`` (one element each) through ``read_fn``; its main output is ``rows``, and ``outputs`` are its
    tagged outputs (e.g. counts)."""

    def __init__(self, files: Sequence, read_fn: beam.DoFn, *outputs: str) -> None:
        super().__init__()
        self.files, self.read_fn, self.outputs = list(files), read_fn, outputs

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.DoOutputsTuple:
        return (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Read" >> beam.ParDo(self.read_fn).with_outputs(*self.outputs, main="rows")
        )


class ComputeUserBuckets(beam.PTransform):
    """``(bucket, (role, rows))`` elements of several readers (a tuple of PCollections) -> one element per user
    bucket -> ``bucket_fn`` with ``side_inputs``; returns its outputs: ``main`` and the tagged ``outputs``."""

    def __init__(self, bucket_fn: beam.DoFn, *side_inputs, outputs: Sequence[str] = ()) -> None:
        super().__init__()
        self.bucket_fn, self.side_inputs, self.outputs = bucket_fn, side_inputs, tuple(outputs)

    def expand(self, bucketed: tuple[beam.PCollection, ...]) -> pvalue.DoOutputsTuple:
        return (
            tuple(bucketed)
            | "AllRows" >> beam.Flatten()
            | "ByUserBucket" >> beam.GroupByKey()
            | "Compute" >> beam.ParDo(self.bucket_fn, *self.side_inputs).with_outputs(*self.outputs, main="main")
        )

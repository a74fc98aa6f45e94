"""What encoding learns from the training split, in one streamed pass: numeric mean/std, the quantile edges of
bucketed numerics, and the categorical buckets seen often enough::

    >>> stats = fit_statistics(spec, table, split.train)
    >>> FeatureStats.from_json(stats.to_json()).rows == stats.rows   # saved with a model as JSON
    True
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import DataError
from .hashing import (hash_buckets, list_parts, numeric_values)
from .tables import (ExampleTable, read_chunks)
from ..spec import Spec


@dataclasses.dataclass
class FeatureStats:
    """What encoding learns from the training split: numeric mean/std (and ``edges``, the quantile bucket edges of a
    numeric feature with buckets) and the categorical buckets seen often enough (``known``, per embedding table: a
    feature's own, or the one it shares; a bool array of its buckets). Saved with a model as JSON."""

    numeric: dict[str, dict[str, Any]]
    known: dict[str, np.ndarray]
    rows: int

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "numeric": self.numeric,
            "known_buckets": {
                k: {
                    "buckets": int(v.size),
                    "seen": int(v.sum()),
                    "bits": base64.b64encode(np.packbits(v).tobytes()).decode(),
                }
                for k, v in self.known.items()
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeatureStats:
        known = {}
        for k, v in raw["known_buckets"].items():
            bits = np.unpackbits(np.frombuffer(base64.b64decode(v["bits"]), dtype=np.uint8))[: v["buckets"]]
            known[k] = bits.astype(bool)
        return cls(numeric={k: dict(v) for k, v in raw["numeric"].items()}, known=known, rows=int(raw["rows"]))


class _Sample:
    """A uniform sample without replacement of at most ``size`` values of a stream, the same for the same stream:
    each value gets a random priority and the ``size`` lowest are kept. Every value while the stream is smaller, so
    a table of up to ``size`` training rows gets exact quantiles."""

    size = 200_000

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.values = np.empty(0)
        self.priority = np.empty(0)

    def add(self, values: np.ndarray) -> None:
        self.values = np.concatenate([self.values, values])
        self.priority = np.concatenate([self.priority, self.rng.random(values.size)])
        if self.values.size > 2 * self.size:
            self._shrink()

    def _shrink(self) -> None:
        keep = np.argpartition(self.priority, self.size)[: self.size]
        self.values, self.priority = self.values[keep], self.priority[keep]

    def edges(self, buckets: int) -> list[float]:
        """The inner edges of ``buckets`` equal-frequency buckets, ties merged (a value that fills several quantiles
        is one bucket), so a feature may get fewer buckets than asked for."""
        if self.values.size > self.size:
            self._shrink()
        if not self.values.size:
            return []
        # Edges are values of the sample (not interpolated between two), and a bucket is (edge below, edge]: a value
        # that fills several quantiles is one bucket, and the values above it the next.
        q = np.quantile(self.values, np.arange(1, buckets) / buckets, method="inverted_cdf")
        return np.unique(q).tolist()


def _drawn(
    chunk: pa.Table,
    segments: Sequence[tuple[datetime.date, int]],
    spec: Spec,
    source_days: Mapping[str, Sequence[str]],
) -> pa.Table:
    """The rows of ``chunk`` that training draws when some sources are restricted to some days."""
    day = np.repeat(np.array([d.isoformat() for d, _ in segments]), [n for _, n in segments])
    if spec.source_column is None:
        source = np.full(chunk.num_rows, spec.sources[0])
    else:
        source = np.asarray(chunk.column(spec.source_column).to_numpy(zero_copy_only=False)).astype(str)
    keep = np.ones(chunk.num_rows, bool)
    for name, chosen in source_days.items():
        keep &= ~((source == name) & ~np.isin(day, list(chosen)))
    return chunk if keep.all() else chunk.filter(pa.array(keep))


def fit_statistics(
    spec: Spec,
    table: ExampleTable,
    days: Sequence[datetime.date],
    chunk_rows: int = 65536,
    source_days: Mapping[str, Sequence[str]] | None = None,
) -> FeatureStats:
    """One streamed pass over ``days``: sums for numeric features, bucket counts for categorical ones.
    ``source_days``: sources whose rows count only on some of the days (ISO strings), as training draws them
    (``SamplingPlan.days``): rows a run never trains on do not make buckets known."""
    sums = {f.name: np.zeros(3) for f in spec.features_of("numeric")}
    samples = {f.name: _Sample(seed=i) for i, f in enumerate(spec.features_of("numeric")) if f.buckets}
    # Per embedding table: features that share rows count into the rows' owner.
    counts = {f.table: np.zeros(f.buckets, np.int64) for f in spec.active_features if f.kind != "numeric"}
    columns = [f.name for f in spec.active_features]
    if source_days and spec.source_column and spec.source_column not in columns:
        columns.append(spec.source_column)
    rows = 0
    for segments, chunk in read_chunks(table, table.units(days), columns, chunk_rows):
        if source_days:
            chunk = _drawn(chunk, segments, spec, source_days)
        rows += chunk.num_rows
        for f in spec.active_features:
            col = chunk.column(f.name)
            if f.kind == "numeric":
                v = numeric_values(col, f.log1p, f.clip)
                v = v[np.isfinite(v)]
                sums[f.name] += (v.size, v.sum(), np.square(v).sum())
                if f.name in samples:
                    samples[f.name].add(v)
            else:
                flat = list_parts(col)[0] if f.kind == "multi_categorical" else col
                counts[f.table] += np.bincount(hash_buckets(flat, f.buckets), minlength=f.buckets)
    if rows == 0:
        raise DataError(f"no rows in the training days {[d.isoformat() for d in days]}")
    numeric: dict[str, dict[str, Any]] = {}
    for name, (n, s, ss) in sums.items():
        mean = s / n if n else 0.0
        var = max(ss / n - mean * mean, 0.0) if n else 0.0
        numeric[name] = {"mean": float(mean), "std": float(math.sqrt(var)) or 1.0, "count": int(n)}
    for f in spec.features_of("numeric"):
        if f.buckets:
            numeric[f.name]["edges"] = samples[f.name].edges(f.buckets)
    min_count = {f.table: f.min_count for f in spec.active_features if f.kind != "numeric"}
    known = {}
    for name, c in counts.items():
        seen = c >= min_count[name]
        seen[0] = True
        known[name] = seen
    return FeatureStats(numeric=numeric, known=known, rows=rows)

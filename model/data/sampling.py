"""Mini-batches of an epoch: source-balanced sampling (the pacing source read once through a shuffle buffer, the
other drawn from a sliding window) and the evaluation scan, both produced in a background thread::

    >>> plan = plan_sampling(spec, rows_by_source, batch_size=8192, source_ratio=0.5)
    >>> for batch in BatchStream(table, units, encoder, plan, immature, seed=7, epoch=0): ...
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .encoding import (Batch, Encoder, RowBlock)
from .errors import DataError
from .prefetch import (Prefetcher, background)
from .tables import (ExampleTable, Unit, read_chunks)
from ..spec import Spec


class _ShufflePool:
    """Rows drawn once each, in a shuffled order: a buffer that, once ``capacity`` rows wait, permutes them and
    releases all but half (which stay to mix with later arrivals)."""

    def __init__(self, capacity: int, rng: np.random.Generator):
        self.capacity, self.rng = capacity, rng
        self.waiting: list[RowBlock] = []
        self.n_waiting = 0
        self.ready: list[RowBlock] = []
        self.n_ready = 0

    def add(self, block: RowBlock) -> None:
        self.waiting.append(block)
        self.n_waiting += block.n
        if self.n_waiting >= self.capacity:
            self._release(keep=self.capacity // 2)

    def flush(self) -> None:
        if self.n_waiting:
            self._release(keep=0)

    def _release(self, keep: int) -> None:
        rows = RowBlock.concat(self.waiting)
        rows = rows.take(self.rng.permutation(rows.n))
        self.waiting = [rows.rows(0, keep)] if keep else []
        self.n_waiting = keep
        self.ready.append(rows.rows(keep, rows.n))
        self.n_ready += rows.n - keep

    def available(self) -> int:
        return self.n_ready

    def take(self, k: int) -> RowBlock:
        parts, need = [], k
        while need:
            head = self.ready[0]
            if head.n <= need:
                parts.append(self.ready.pop(0))
                need -= head.n
            else:
                parts.append(head.rows(0, need))
                self.ready[0] = head.rows(need, head.n)
                need = 0
        self.n_ready -= k
        return RowBlock.concat(parts)


class _WindowPool:
    """Rows drawn with replacement from a sliding window: how a source with fewer rows than its batch share is
    up-sampled without a second read of the table. Arrivals wait in a FIFO and enter the window at the pace the
    epoch consumes them (``admit_per_batch`` rows per batch), so every row spends about the same number of batches
    in the window and is drawn about ``share / admit_per_batch`` times, whatever the size of the chunks read."""

    def __init__(self, capacity: int, rng: np.random.Generator, admit_per_batch: float):
        self.capacity, self.rng, self.admit_per_batch = capacity, rng, admit_per_batch
        self.pending: list[RowBlock] = []
        self.n_pending = 0
        self.blocks: list[RowBlock] = []
        self.n = 0
        self.credit = 0.0

    def add(self, block: RowBlock) -> None:
        if block.n:
            self.pending.append(block)
            self.n_pending += block.n

    def available(self) -> int:
        return self.n + self.n_pending

    def ready(self, final: bool) -> bool:
        """Enough has arrived for the next batch's admissions (at the end: anything left to draw from)."""
        return self.available() > 0 if final else self.n_pending >= math.ceil(self.credit + self.admit_per_batch)

    def _admit(self, m: int) -> None:
        while m > 0 and self.pending:
            head = self.pending[0]
            part = head if head.n <= m else head.rows(0, m)
            if head.n <= m:
                self.pending.pop(0)
            else:
                self.pending[0] = head.rows(m, head.n)
            self.blocks.append(part)
            self.n += part.n
            self.n_pending -= part.n
            m -= part.n
        while self.blocks and self.n - self.blocks[0].n >= self.capacity:
            self.n -= self.blocks.pop(0).n
        if self.n > self.capacity:
            drop = self.n - self.capacity
            self.blocks[0] = self.blocks[0].rows(drop, self.blocks[0].n)
            self.n -= drop
        if len(self.blocks) > 16:
            self.blocks = [RowBlock.concat(self.blocks)]

    def take(self, k: int) -> RowBlock:
        self.credit += self.admit_per_batch
        admit = int(self.credit)
        self.credit -= admit
        if self.n == 0:
            admit = max(admit, 1)
        self._admit(admit)
        index = np.sort(self.rng.integers(0, self.n, size=k))
        bounds = np.cumsum([b.n for b in self.blocks])
        which = np.searchsorted(bounds, index, side="right")
        parts = []
        for j in np.unique(which):
            local = index[which == j] - (bounds[j] - self.blocks[j].n)
            parts.append(self.blocks[j].take(local))
        return RowBlock.concat(parts)


@dataclasses.dataclass(frozen=True)
class SamplingPlan:
    """How an epoch is drawn. ``shares``: rows of each source per batch (None = the natural mix, one pool).
    ``pacing``: the source read exactly once per epoch (the one with the most rows per batch slot); the others are
    drawn with replacement from a sliding window. An epoch is one pass over the training days. ``days``: per
    source, the only training days its rows are drawn from (a source absent from it: every training day).
    ``repeats``: per up-sampled source, how often a row of it is drawn per epoch on average."""

    batch_size: int
    shares: dict[str, int] | None
    pacing: str | None
    sources: tuple[str, ...]
    expected_batches: int
    expected_rows: int
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    days: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    repeats: dict[str, float] = dataclasses.field(default_factory=dict)


def plan_sampling(
    spec: Spec,
    rows_by_source: Mapping[str, int],
    batch_size: int,
    source_ratio: float | None,
    max_repeats: float | None = None,
    days: Mapping[str, Sequence[str]] | None = None,
) -> SamplingPlan:
    """``source_ratio``: the share of promotion rows (of the second spec source, generally: of ``sources[-1]``)
    per batch, or None for the natural mix. With one source there is nothing to balance. ``max_repeats``: the most
    times per epoch a row of the up-sampled source may be drawn on average; where the ratio would draw it more
    often, its share shrinks to ``batch * R * n / (n_pacing + R * n)``, the natural mix with the scarce source
    weighted R times (None: no cap). ``days``: recorded in the plan (see :class:`SamplingPlan`)."""
    sources = tuple(s for s in spec.training_sources if rows_by_source.get(s, 0) > 0)
    if not sources:
        raise DataError(f"no training rows of any source {list(spec.training_sources)}: {dict(rows_by_source)}")
    if max_repeats is not None and not max_repeats >= 1:
        raise DataError(f"--max_source_repeats: expected a number >= 1 (1: the natural mix), found {max_repeats}")
    chosen = {s: tuple(d) for s, d in (days or {}).items()}
    total = sum(rows_by_source[s] for s in sources)
    if source_ratio is None or len(sources) == 1:
        batches = max(1, total // batch_size)
        return SamplingPlan(batch_size, None, None, sources, batches, total, dict(rows_by_source), chosen)
    if len(spec.sources) != 2:
        raise DataError(f"--source_ratio needs exactly two sources, the spec has {list(spec.sources)}")
    if not 0 < source_ratio < 1:
        raise DataError(f"--source_ratio: expected a number in (0, 1), found {source_ratio}")
    second = round(source_ratio * batch_size)
    shares = {spec.sources[0]: batch_size - second, spec.sources[1]: second}
    if min(shares.values()) < 1:
        raise DataError(f"--source_ratio {source_ratio} leaves a source no row in a batch of {batch_size}")
    pacing = max(sources, key=lambda s: rows_by_source[s] / shares[s])
    batches = max(1, math.ceil(rows_by_source[pacing] / shares[pacing]))
    (other,) = (s for s in sources if s != pacing)
    n_pacing, n_other = rows_by_source[pacing], rows_by_source[other]
    if max_repeats is not None and batches * shares[other] > max_repeats * n_other:
        capped = max(1, round(batch_size * max_repeats * n_other / (n_pacing + max_repeats * n_other)))
        shares = {pacing: batch_size - capped, other: capped}
        batches = max(1, math.ceil(n_pacing / shares[pacing]))
    repeats = {other: batches * shares[other] / n_other}
    return SamplingPlan(
        batch_size, shares, pacing, sources, batches, batches * batch_size, dict(rows_by_source), chosen, repeats
    )


def row_days(segments: Sequence[tuple[datetime.date, int]]) -> np.ndarray:
    """The day (ISO string) of every row of a chunk, from its ``(day, rows)`` segments."""
    if not segments:
        return np.zeros(0, dtype="<U10")
    return np.repeat(np.array([d.isoformat() for d, _ in segments]), [n for _, n in segments])


def drawn_rows(source: np.ndarray, days: np.ndarray, allowed: Mapping[int, Sequence[str]]) -> np.ndarray | None:
    """Which rows a plan draws from, where some sources (``allowed``: source index -> days) are restricted to some
    days; None when every row is drawn."""
    keep = None
    for index, chosen in allowed.items():
        out = (source == index) & ~np.isin(days, list(chosen))
        if out.any():
            keep = ~out if keep is None else keep & ~out
    return keep


class BatchStream:
    """Training batches of one epoch, produced in a background thread (Parquet decoding, hashing and numpy
    release the GIL) into a bounded queue. Deterministic for a given (seed, epoch); ``wait_seconds`` is the time
    the consumer spent blocked on the queue, i.e. when data loading was the bottleneck.

    Example::

        >>> stream = BatchStream(table, units, encoder, plan, immature, seed=7, epoch=0)
        >>> for batch in stream: ...
    """

    def __init__(
        self,
        table: ExampleTable,
        units: Sequence[Unit],
        encoder: Encoder,
        plan: SamplingPlan,
        immature: Mapping[str, Sequence[tuple[str, str]]],
        *,
        seed: int,
        epoch: int,
        chunk_rows: int = 16384,
        pool_rows: int = 65536,
        prefetch: int = 6,
    ):
        self.table, self.units, self.encoder, self.plan = table, list(units), encoder, plan
        self.immature = immature
        self.seed, self.epoch = seed, epoch
        self.chunk_rows, self.pool_rows = chunk_rows, pool_rows
        self.prefetch = prefetch
        self.wait_seconds = 0.0

    def _batches(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.units))
        units = [self.units[i] for i in order]
        plan = self.plan
        source_of = {s: self.encoder.source_index[s] for s in plan.sources}
        if plan.shares is None:
            pools: dict[str, Any] = {"*": _ShufflePool(self.pool_rows, rng)}
            shares = {"*": plan.batch_size}
        else:
            shares = dict(plan.shares)
            pools = {
                s: _ShufflePool(self.pool_rows, rng)
                if s == plan.pacing
                else _WindowPool(self.pool_rows, rng, plan.rows[s] / plan.expected_batches)
                for s in plan.sources
            }
        wanted = np.array(sorted(source_of.values()))
        # The pool that paces the epoch: the only one, or the pacing source's (plan_sampling names one with shares).
        pacer = "*" if plan.shares is None else plan.pacing
        assert pacer is not None

        def ready(final: bool = False) -> bool:
            for key, pool in pools.items():
                if isinstance(pool, _WindowPool):
                    if not pool.ready(final):
                        return False
                elif pool.available() < (1 if final else shares[key]):
                    return False
            return True

        def draw() -> RowBlock:
            k = min(shares[pacer], pools[pacer].available())
            parts = [pools[pacer].take(k)]
            for key, pool in pools.items():
                if key != pacer:
                    parts.append(pool.take(max(1, round(shares[key] * k / shares[pacer]))))
            return RowBlock.concat(parts)

        allowed = {source_of[s]: d for s, d in plan.days.items() if s in source_of}
        for segments, chunk in read_chunks(self.table, units, self.encoder.columns, self.chunk_rows):
            block = self.encoder.encode_rows(chunk, segments, self.immature)
            keep = drawn_rows(block.source, row_days(segments), allowed) if allowed else None
            if keep is not None:
                block = block.take(np.flatnonzero(keep))
            if plan.shares is None:
                keep = np.isin(block.source, wanted)
                pools["*"].add(block if keep.all() else block.take(np.flatnonzero(keep)))
            else:
                for s in plan.sources:
                    pools[s].add(block.take(np.flatnonzero(block.source == source_of[s])))
            while ready():
                yield self.encoder.to_batch(draw(), training=True)
        for pool in pools.values():
            if isinstance(pool, _ShufflePool):
                pool.flush()
        while ready(final=True):
            rows = draw()
            if rows.n >= 2:  # batch norm needs two rows
                yield self.encoder.to_batch(rows, training=True)
            if pools[pacer].available() == 0:
                break

    def __iter__(self) -> Prefetcher:
        return background(self._batches, self.prefetch, self)


def scan(
    table: ExampleTable,
    units: Sequence[Unit],
    encoder: Encoder,
    immature: Mapping[str, Sequence[tuple[str, str]]],
    batch_rows: int = 32768,
) -> Iterator[Batch]:
    """Every row of ``units`` once, in order (evaluation), prefetched in a background thread."""

    def produce() -> Iterator[Batch]:
        for segments, chunk in read_chunks(table, units, encoder.columns, batch_rows):
            yield encoder.to_batch(encoder.encode_rows(chunk, segments, immature))

    return iter(background(produce, 2))

"""The encoder: Arrow rows -> :class:`RowBlock` (numpy, per row) -> :class:`Batch` (tensors for one forward pass).

All categorical features share one fused embedding table, each feature owning a contiguous block of rows (like
torchrec's KeyedJaggedTensor); a batch carries the sorted unique table rows it touches, so the embedding gradient is
row-sparse and already coalesced::

    >>> encoder = Encoder(spec, stats)
    >>> batch = encoder.encode(record_batch)                 # the exact path training and scoring share
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .errors import DataError
from .hashing import (HASHING, hash_buckets, list_parts, numeric_values)
from .statistics import FeatureStats
from ..spec import Spec
from ..spec_types import FeatureSpec

# Training batches carry a sparse CSR matrix (gather_matrix); torch flags CSR support as beta once per process.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)

# Fused-table rows of encoded rows (RowBlock.cat, .bag_val). 32 bits, not 64: every row is copied several times on
# its way into a batch (source split, shuffle, window draws, concatenation), and these two arrays are most of its
# bytes. The encoder checks that the table fits.
ROW_DTYPE = np.int32


@dataclasses.dataclass(eq=False)
class RowBlock:
    """Encoded rows (numpy): fused embedding rows of single-valued features ``cat`` [n, F1]; bags as per-row
    lengths ``bag_len`` [n, F2] plus their values ``bag_val`` row-major; normalized numerics ``num`` [n, N];
    labels ``y`` and their observed flags ``obs`` [n, T]; ``source`` index [n] (-1 = not a spec source); and
    ``slice`` values [n] (-1 = none)."""

    cat: np.ndarray
    bag_len: np.ndarray
    bag_val: np.ndarray
    num: np.ndarray
    y: np.ndarray
    obs: np.ndarray
    source: np.ndarray
    slice: np.ndarray

    @property
    def n(self) -> int:
        return self.cat.shape[0]

    @functools.cached_property
    def _bag_ptr(self) -> np.ndarray:
        """Where each row's bag values start in ``bag_val`` (n + 1 entries), computed once per block."""
        ptr = np.zeros(self.n + 1, np.int64)
        np.cumsum(self.bag_len.sum(axis=1), out=ptr[1:])
        return ptr

    def take(self, index: np.ndarray) -> RowBlock:
        ptr = self._bag_ptr
        starts = ptr[:-1]
        lens = ptr[1:][index] - starts[index]
        out_starts = np.cumsum(lens) - lens
        positions = np.repeat(starts[index] - out_starts, lens) + np.arange(int(lens.sum()))
        return RowBlock(
            self.cat[index],
            self.bag_len[index],
            self.bag_val[positions],
            self.num[index],
            self.y[index],
            self.obs[index],
            self.source[index],
            self.slice[index],
        )

    def rows(self, start: int, stop: int) -> RowBlock:
        ptr = self._bag_ptr
        lo, hi = int(ptr[start]), int(ptr[max(start, stop)])
        return RowBlock(
            self.cat[start:stop],
            self.bag_len[start:stop],
            self.bag_val[lo:hi],
            self.num[start:stop],
            self.y[start:stop],
            self.obs[start:stop],
            self.source[start:stop],
            self.slice[start:stop],
        )

    @staticmethod
    def concat(blocks: Sequence[RowBlock]) -> RowBlock:
        if len(blocks) == 1:
            return blocks[0]
        return RowBlock(*(np.concatenate([getattr(b, f.name) for b in blocks]) for f in dataclasses.fields(RowBlock)))

    def __eq__(self, other: object) -> bool:  # tests compare blocks; the cached pointer is not part of the value
        return isinstance(other, RowBlock) and all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(RowBlock)
        )


@dataclasses.dataclass
class Batch:
    """Tensors for one forward pass. ``rows``: sorted unique rows of the fused embedding table; ``cat`` [n, F1]
    and ``bag_pos`` [nnz]: positions into ``rows`` (``positions`` is both, one after the other, for a single
    gather); ``bag_seg`` [nnz]: the (row * F2 + feature) bag of each value;
    ``bag_scale`` [n * F2, 1]: 1 / bag length (0 for an empty bag); the rest as in :class:`RowBlock`.
    ``gather`` (training batches only, else None): the transpose of the ``positions`` gather as a sparse CSR
    matrix [unique rows, positions] of ones, whose product with the gathered values' gradient is the gradient of
    the unique rows (see ``FusedEmbedding``)."""

    rows: torch.Tensor
    cat: torch.Tensor
    bag_pos: torch.Tensor
    positions: torch.Tensor
    bag_seg: torch.Tensor
    bag_scale: torch.Tensor
    num: torch.Tensor
    y: torch.Tensor
    obs: torch.Tensor
    source: torch.Tensor
    slice: torch.Tensor
    gather: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.cat.shape[0]

    def differences(self, other: Batch) -> list[str]:
        """Names of the fields whose tensors differ from ``other``'s (a field None in both is equal)."""
        differ = []
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if (mine is None) != (theirs is None) or (mine is not None and not torch.equal(mine, theirs)):
                differ.append(field.name)
        return differ


class Encoder:
    """Arrow rows -> :class:`RowBlock` -> :class:`Batch`, for one spec and its training statistics.

    Example::

        >>> encoder = Encoder(spec, stats)
        >>> batch = encoder.encode(record_batch)          # a pyarrow RecordBatch or Table with the spec's columns
        >>> batch.num.shape, batch.cat.shape
        (torch.Size([1024, 25]), torch.Size([1024, 23]))
    """

    def __init__(self, spec: Spec, stats: FeatureStats):
        self.spec = spec
        self.stats = stats
        self.numeric = spec.features_of("numeric")
        # Single-valued embeddings: the categorical features, then the quantile buckets of bucketed numerics.
        self.single = spec.features_of("categorical") + tuple(f for f in self.numeric if f.embedded)
        self.bags = spec.features_of("multi_categorical")
        # One block of rows per embedding table, in order of first use; features that share a table share its rows.
        tables, start = {}, 0
        for f in (*self.single, *self.bags):
            if f.table not in tables:
                tables[f.table] = start
                start += f.rows
        self.offsets = {f.name: tables[f.table] for f in (*self.single, *self.bags)}
        self.table_rows = max(start, 1)
        if self.table_rows > np.iinfo(ROW_DTYPE).max:
            raise DataError(
                f"the spec's categorical features need {self.table_rows} embedding rows; at most "
                f"{np.iinfo(ROW_DTYPE).max} are supported (fewer buckets, please)"
            )
        # remap[row] = row when its bucket is known, else the feature's row 0 (null / cold start).
        self.remap = np.arange(self.table_rows, dtype=ROW_DTYPE)
        self.edges: dict[str, np.ndarray] = {}
        for f in (*self.single, *self.bags):
            if f.kind == "numeric":  # every quantile bucket is a row of its own
                edges = stats.numeric.get(f.name, {}).get("edges")
                if edges is None or len(edges) >= f.buckets:
                    raise DataError(f"statistics lack the bucket edges of feature {f.name!r} (fit on another spec?)")
                self.edges[f.name] = np.asarray(edges, np.float64)
                continue
            known = stats.known.get(f.table)
            if known is None or known.size != f.buckets:
                raise DataError(f"statistics lack the buckets of feature {f.table!r} (were they fit on another spec?)")
            block = self.remap[self.offsets[f.name] : self.offsets[f.name] + f.buckets]
            block[~known] = self.offsets[f.name]
        self.num_width = sum(2 if f.missing else 1 for f in self.numeric)
        self.task_index = {t.name: i for i, t in enumerate(spec.tasks)}
        self.source_index = {s: i for i, s in enumerate(spec.sources)}
        self.columns = [c for c in spec.columns]

    def field_dims(self) -> tuple[int, ...]:
        """Each embedded field's width (single-valued features, then bags), where the spec gives some their own
        ``embedding_dim``; empty when every field has the model's."""
        if not any(f.embedding_dim for f in (*self.single, *self.bags)):
            return ()
        default = self.spec.model.embedding_dim
        return tuple(f.embedding_dim or default for f in (*self.single, *self.bags))

    def numeric_columns(self) -> list[str]:
        """Names of the columns of ``num``: each numeric feature, then ``<name>:missing`` where it has one."""
        return [c for f in self.numeric for c in ((f.name, f"{f.name}:missing") if f.missing else (f.name,))]

    # The (source x task) matrices the loss and the metrics use.
    def train_mask_matrix(self) -> torch.Tensor:
        return torch.tensor(
            [[float(self.spec.trains_row(s, t.name)) for t in self.spec.tasks] for s in self.spec.sources]
        )

    def eval_mask_matrix(self) -> torch.Tensor:
        return torch.tensor([[float(s in t.eval_sources) for t in self.spec.tasks] for s in self.spec.sources])

    def encode_rows(
        self,
        data: pa.Table | pa.RecordBatch,
        segments: Sequence[tuple[datetime.date, int]] = (),
        immature: Mapping[str, Iterable[tuple[str, str]]] | None = None,
    ) -> RowBlock:
        """Encode rows. With ``segments`` ((day, rows) runs covering ``data`` in order) and ``immature`` (per day,
        (label column, source) pairs), the labels of immature days are marked unobserved."""
        n = data.num_rows
        names = set(data.schema.names)
        absent = [c for c in self.columns if c not in names and c not in {t.label for t in self.spec.tasks}]
        if absent:
            raise DataError(f"rows lack column(s) {absent} that the spec reads")
        cat = np.empty((n, len(self.single)), ROW_DTYPE)
        for j, f in enumerate(self.single):
            if f.kind == "numeric":
                cat[:, j] = self._bucket(f, data.column(f.name)) + self.offsets[f.name]
            else:
                cat[:, j] = hash_buckets(data.column(f.name), f.buckets) + self.offsets[f.name]
        cat = self.remap[cat]
        bag_len = np.empty((n, len(self.bags)), np.int64)
        parts = []
        for j, f in enumerate(self.bags):
            values, lengths = list_parts(data.column(f.name))
            bag_len[:, j] = lengths
            parts.append(self.remap[hash_buckets(values, f.buckets) + self.offsets[f.name]])
        bag_val = _interleave(parts, bag_len) if self.bags else np.empty(0, ROW_DTYPE)
        num = np.empty((n, self.num_width), np.float32)
        k = 0
        for f in self.numeric:
            v = numeric_values(data.column(f.name), f.log1p, f.clip)
            st = self.stats.numeric[f.name]
            missing = ~np.isfinite(v)
            z = (v - st["mean"]) / st["std"]
            z[missing] = 0.0
            num[:, k] = z
            k += 1
            if f.missing:
                num[:, k] = missing
                k += 1
        source = self._sources(data)
        y = np.zeros((n, len(self.spec.tasks)), np.float32)
        obs = np.zeros((n, len(self.spec.tasks)), bool)
        for i, t in enumerate(self.spec.tasks):
            if t.label not in names:  # scoring rows carry no labels
                continue
            v = pc.cast(data.column(t.label), pa.float64()).to_numpy(zero_copy_only=False)
            obs[:, i] = np.isfinite(v)
            y[:, i] = np.nan_to_num(v) > 0
        start = 0
        for day, rows in segments:
            for label, s in (immature or {}).get(day.isoformat(), ()):
                if s not in self.source_index:
                    continue
                cols = [i for i, t in enumerate(self.spec.tasks) if t.label == label]
                part = obs[start : start + rows]
                part[np.ix_(source[start : start + rows] == self.source_index[s], cols)] = False
            start += rows
        if self.spec.slice_column and self.spec.slice_column in names:
            sl = pc.cast(data.column(self.spec.slice_column), pa.int64()).fill_null(-1)
            slices = sl.to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            slices = np.full(n, -1, np.int64)
        return RowBlock(cat, bag_len, bag_val, num, y, obs, source, slices)

    def _bucket(self, f: FeatureSpec, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The quantile bucket of each value of a bucketed numeric: k for a value in (edge k-1, edge k], 1 up to the
        first edge, len(edges) + 1 above the last, 0 = null; on the same clipped and transformed values its edges
        were computed from."""
        v = numeric_values(column, f.log1p, f.clip)
        bucket = np.searchsorted(self.edges[f.name], v, side="left") + 1
        bucket[~np.isfinite(v)] = 0
        return bucket

    def _sources(self, data: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Each row's source index (-1: not a spec source); 0 for every row when the spec has no source column."""
        n = data.num_rows
        if self.spec.source_column is None:
            return np.zeros(n, np.int64)
        source = np.full(n, -1, np.int64)
        src_col = data.column(self.spec.source_column)
        encoded = pc.dictionary_encode(src_col.combine_chunks() if isinstance(src_col, pa.ChunkedArray) else src_col)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        lookup = np.array([self.source_index.get(v, -1) for v in encoded.dictionary.to_pylist()] or [-1], np.int64)
        source[:] = lookup[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)]
        if encoded.null_count:
            source[np.asarray(encoded.is_null())] = -1
        return source

    def to_batch(self, block: RowBlock, training: bool = False) -> Batch:
        """Tensors of a block; finds the unique table rows with a scatter over the table (no sort). ``training``
        adds ``Batch.gather`` for the backward pass of the embedding gather."""
        flat = np.concatenate([block.cat.ravel(), block.bag_val])
        seen = np.zeros(self.table_rows, bool)
        seen[flat] = True
        rows = np.flatnonzero(seen)
        position = np.empty(self.table_rows, np.int64)
        position[rows] = np.arange(rows.size)
        inverse = position[flat]
        n, f2 = block.bag_len.shape
        n_cat = block.cat.size
        lengths = block.bag_len.ravel()
        seg = np.repeat(np.arange(n * f2, dtype=np.int64), lengths)
        scale = np.where(lengths > 0, 1.0 / np.maximum(lengths, 1), 0.0).astype(np.float32)
        return Batch(
            rows=torch.from_numpy(rows),
            cat=torch.from_numpy(inverse[:n_cat].reshape(block.cat.shape)),
            bag_pos=torch.from_numpy(inverse[n_cat:]),
            positions=torch.from_numpy(inverse),
            bag_seg=torch.from_numpy(seg),
            bag_scale=torch.from_numpy(scale).unsqueeze(1),
            num=torch.from_numpy(block.num),
            y=torch.from_numpy(block.y),
            obs=torch.from_numpy(block.obs.astype(np.float32)),
            source=torch.from_numpy(block.source),
            slice=torch.from_numpy(block.slice),
            gather=gather_matrix(inverse, rows.size) if training else None,
        )

    def encode(self, data: pa.Table | pa.RecordBatch) -> Batch:
        """The public scoring path: exactly what training feeds the network."""
        return self.to_batch(self.encode_rows(data))

    def settings(self) -> dict:
        """Hashing settings and table layout, saved with a model (``hashing.json``)."""
        return {
            "functions": HASHING,
            "table_rows": self.table_rows,
            "features": {
                f.name: {
                    "kind": f.kind,
                    "offset": self.offsets[f.name],
                    "buckets": f.buckets,
                    "min_count": f.min_count,
                    **({"shares": f.share} if f.share else {}),
                }
                for f in (*self.single, *self.bags)
            },
        }


def gather_matrix(positions: np.ndarray, n_rows: int) -> torch.Tensor:
    """The sparse CSR matrix ``[n_rows, len(positions)]`` with a 1 at (positions[j], j): multiplying the gradient of
    ``values = used[positions]`` by it sums each used row's gradient, in the order of ``positions``, exactly what
    ``index_add_`` (the gather's own backward) sums, at a third to a tenth of its time on CPU. Built in the reader
    thread: a stable counting order of the positions (a radix sort when they fit in 16 bits)."""
    small = n_rows <= np.iinfo(np.uint16).max + 1
    order = np.argsort(positions.astype(np.uint16) if small else positions, kind="stable")
    ptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(positions, minlength=n_rows), out=ptr[1:])
    return torch.sparse_csr_tensor(
        torch.from_numpy(ptr),
        torch.from_numpy(order),
        torch.ones(positions.size, dtype=torch.float32),
        size=(n_rows, positions.size),
        check_invariants=False,
    )


def _interleave(parts: list[np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """Row-major order of several ragged columns: row 0's values of feature 0, 1, ..., then row 1's, ..."""
    n, f = lengths.shape
    if f == 1:
        return parts[0]
    totals = lengths.sum(axis=1)
    row_start = np.cumsum(totals) - totals
    out = np.empty(int(totals.sum()), np.int64)
    before = np.zeros(n, np.int64)
    for j, values in enumerate(parts):
        lens = lengths[:, j]
        src_start = np.cumsum(lens) - lens
        dest = np.repeat(row_start + before - src_start, lens) + np.arange(values.size)
        out[dest] = values
        before += lens
    return out

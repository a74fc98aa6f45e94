"""Example tables on disk, the feature encoder, and source-balanced streaming of mini-batches.

Everything here works on any Parquet table laid out by day (``<root>/dt=YYYY-MM-DD/*.parquet``, local or any
filesystem ``pyarrow.fs`` resolves, e.g. ``gs://``) plus a :class:`~podtarget.model.spec.Spec`. Tables are read a row
group at a time, never whole::

    >>> table = ExampleTable.open("./data/examples")
    >>> split = split_days(table.days, fractions=(0.7, 0.15, 0.15))
    >>> stats = fit_statistics(spec, table, split.train)          # one streamed pass over the training days
    >>> encoder = Encoder(spec, stats)
    >>> batch = encoder.encode(record_batch)                       # the exact path training and scoring share

The encoder turns Arrow columns into a :class:`RowBlock` (numpy, per row) and a block into a :class:`Batch`
(tensors for one forward pass). All categorical features share one fused embedding table, each feature owning a
contiguous block of rows (like torchrec's KeyedJaggedTensor); a batch carries the sorted unique table rows it
touches, so the embedding gradient is row-sparse and already coalesced.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import math
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from podtarget.common.hashing import splitmix64
from podtarget.model.spec import Spec

log = logging.getLogger(__name__)
# Training batches carry a sparse CSR matrix (gather_matrix); torch flags CSR support as beta once per process.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)

DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
SUCCESS_MARKER = "_SUCCESS.json"
MANIFEST_KEY = "files"  # the partition's file names in its marker (see transforms/runtime/storage.py)
HASHING = {
    "string": "blake2b, 8-byte digest of the UTF-8 bytes, little-endian",
    "integer": "splitmix64 of the value as a two's-complement 64-bit integer (booleans as 0/1)",
    "bucket": "1 + hash % (buckets - 1); 0 = null, or a bucket seen fewer than min_count times in training",
}
# Fused-table rows of encoded rows (RowBlock.cat, .bag_val). 32 bits, not 64: every row is copied several times on
# its way into a batch (source split, shuffle, window draws, concatenation), and these two arrays are most of its
# bytes. The encoder checks that the table fits.
ROW_DTYPE = np.int32


class DataError(ValueError):
    """The example table cannot be used as asked (no days, an unknown day, an empty split, ...)."""


# ------------------------------------------------------------------------------------------- the table


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or a URI ``pyarrow.fs`` knows (``gs://``, ``s3://``, ...).

    ``gs://`` honours ``STORAGE_EMULATOR_HOST`` (as Google's own clients do), so the tests can use a local
    emulator; otherwise pyarrow finds the credentials itself.
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if uri.startswith("gs://") and emulator:
        scheme, _, host = emulator.rpartition("://")
        fs = pafs.GcsFileSystem(
            anonymous=True,
            endpoint_override=host,
            scheme=scheme or "http",
            retry_time_limit=datetime.timedelta(seconds=5),
        )
        return fs, uri[len("gs://") :].rstrip("/")
    return pafs.FileSystem.from_uri(uri)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One row group of one Parquet file of one day: the unit of reading and of shuffling."""

    path: str
    row_group: int
    rows: int
    day: datetime.date


class ExampleTable:
    """A day-partitioned Parquet table. Only ``dt=YYYY-MM-DD`` folders count; names starting with ``_`` or ``.``
    (staging folders, markers) are skipped. If any day carries ``_SUCCESS.json``, days without it are incomplete
    and skipped too (listed in :attr:`skipped`).

    A table on an object store (``gs://``) is copied to local disk file by file, on the first read of each file,
    and read from the copy from then on (the copies go when the table object does). Training reads every file once
    per epoch, a row group and a few columns at a time: object stores serve whole-object streams well and many
    small ranged reads poorly (the GCS emulator the tests use cannot serve pyarrow's ranged reads at all).
    """

    def __init__(self, root: str, filesystem: pafs.FileSystem, base: str):
        self.root = root
        self.fs = filesystem
        self.base = base.rstrip("/")
        self.files: dict[datetime.date, list[str]] = {}
        self.skipped: list[dict] = []
        self._schema: pa.Schema | None = None
        self._units: dict[datetime.date, list[Unit]] = {}
        self._local = isinstance(filesystem, pafs.LocalFileSystem)
        self._copies: tempfile.TemporaryDirectory | None = None
        self._copied: dict[str, str] = {}
        self._copy_lock = threading.Lock()

    def _listed_by_marker(self, parquet: list[str]) -> list[str]:
        """The day's files its ``_SUCCESS.json`` lists, when it lists them: a swap interrupted on an object store
        leaves the other version's files beside them (see ``transforms/runtime/storage.py:commit_partition``)."""
        folder = parquet[0].rsplit("/", 1)[0] if parquet else None
        if folder is None:
            return parquet
        with self.fs.open_input_stream(f"{folder}/{SUCCESS_MARKER}") as handle:
            listed = json.loads(handle.read()).get(MANIFEST_KEY)
        if listed is None:
            return parquet
        wanted = {f"{folder}/{name}" for name in listed if name.endswith(".parquet")}
        missing = wanted - set(parquet)
        if missing:
            raise DataError(
                f"example table {self.root!r}: {SUCCESS_MARKER} lists files that are gone: {sorted(missing)}"
            )
        return [path for path in parquet if path in wanted]

    @classmethod
    def open(cls, root: str) -> ExampleTable:
        filesystem, base = resolve_filesystem(root)
        table = cls(root, filesystem, base)
        table._discover()
        return table

    def _discover(self) -> None:
        info = self.fs.get_file_info(self.base)
        if info.type != pafs.FileType.Directory:
            raise DataError(f"example table {self.root!r}: not a folder")
        # One recursive listing: object stores (and their emulators) list prefixes unevenly, files reliably.
        entries = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True))
        days: dict[datetime.date, tuple[list[str], bool]] = {}
        bad_folders = set()
        for entry in entries:
            parts = entry.path[len(self.base) + 1 :].split("/")
            if entry.type != pafs.FileType.File or len(parts) != 2:
                continue
            folder, name = parts
            match = DAY_FOLDER.match(folder)
            if folder.startswith(("_", ".")) or not match or (name.startswith(("_", ".")) and name != SUCCESS_MARKER):
                continue
            try:
                day = datetime.date.fromisoformat(match.group(1))
            except ValueError:
                bad_folders.add(folder)
                continue
            parquet, marked = days.get(day, ([], False))
            if name == SUCCESS_MARKER:
                marked = True
            elif name.endswith(".parquet"):
                parquet.append(entry.path)
            days[day] = (parquet, marked)
        self.skipped += [{"folder": f, "reason": "not a valid date"} for f in sorted(bad_folders)]
        any_marked = any(marked for _, marked in days.values())
        for day in sorted(days):
            parquet, marked = sorted(days[day][0]), days[day][1]
            if marked:
                parquet = self._listed_by_marker(parquet)
            if any_marked and not marked:
                self.skipped.append({"day": day.isoformat(), "reason": f"no {SUCCESS_MARKER} (incomplete)"})
            elif not parquet:
                self.skipped.append({"day": day.isoformat(), "reason": "no Parquet files"})
            else:
                self.files[day] = parquet
        if not self.files:
            raise DataError(
                f"example table {self.root!r}: no complete day folders (expected dt=YYYY-MM-DD/*.parquet)"
                + (f"; skipped {self.skipped}" if self.skipped else "")
            )

    @property
    def days(self) -> list[datetime.date]:
        return sorted(self.files)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the newest day's first file (days must agree on the columns a spec reads)."""
        if self._schema is None:
            path = self.files[self.days[-1]][0]
            with self._open(path) as handle, self._unreadable(path):
                self._schema = pq.read_schema(handle)
        return self._schema

    def units(self, days: Iterable[datetime.date]) -> list[Unit]:
        out = []
        for day in days:
            if day not in self.files:
                raise DataError(f"day {day} is not in the example table {self.root!r}")
            if day not in self._units:
                found = []
                for path in self.files[day]:
                    with self._open(path) as handle, self._unreadable(path):
                        meta = pq.ParquetFile(handle).metadata
                    found += [Unit(path, i, meta.row_group(i).num_rows, day) for i in range(meta.num_row_groups)]
                self._units[day] = found
            out += self._units[day]
        return out

    def read(self, unit: Unit, columns: Sequence[str]) -> pa.Table:
        """One row group. String columns come back dictionary-encoded, as Parquet stores them: hashing then
        touches each distinct value once, and no string is materialised (measured: 20% less reading time and
        a fifth of the concatenation time on the bench day)."""
        strings = [c for c in columns if c in self._string_columns]
        with self._open(unit.path) as handle, self._unreadable(unit.path):
            reader = pq.ParquetFile(handle, read_dictionary=strings or None)
            return reader.read_row_group(unit.row_group, columns=list(columns), use_threads=False)

    @contextlib.contextmanager
    def _unreadable(self, path: str) -> Iterator[None]:
        """A corrupt Parquet file fails with its path and day, and what to do, not with Arrow's bare message."""
        try:
            yield
        except (pa.ArrowException, OSError) as exc:
            day = next((d for d, paths in self.files.items() if path in paths), None)
            raise DataError(
                f"example file {path} (day {day}) is not readable Parquet ({exc}); rebuild that day "
                f"(make backfill START={day} END={day} FORCE=1) or move its folder out of the table"
            ) from exc

    def _open(self, path: str) -> pa.NativeFile:
        """A random-access handle on ``path``: the file itself on a local disk, else its local copy."""
        if self._local:
            return self.fs.open_input_file(path)
        return pa.OSFile(self._local_copy(path))

    def _local_copy(self, path: str) -> str:
        # One lock for all copies: the background reader is the only caller while training runs.
        with self._copy_lock:
            local = self._copied.get(path)
            if local is None:
                if self._copies is None:
                    self._copies = tempfile.TemporaryDirectory(prefix="podtarget-examples-")
                local = os.path.join(self._copies.name, f"{len(self._copied):06d}.parquet")
                with self.fs.open_input_stream(path) as source, open(f"{local}.part", "wb") as target:
                    shutil.copyfileobj(source, target, 8 << 20)
                os.replace(f"{local}.part", local)
                self._copied[path] = local
        return local

    @functools.cached_property
    def _string_columns(self) -> frozenset[str]:
        return frozenset(f.name for f in self.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type))


def read_chunks(
    table: ExampleTable, units: Sequence[Unit], columns: Sequence[str], chunk_rows: int
) -> Iterator[tuple[list[tuple[datetime.date, int]], pa.Table]]:
    """Row groups in the given order, concatenated into tables of about ``chunk_rows`` rows (small files are
    merged so that per-call encoding overhead stays small). Each table comes with its ``(day, rows)`` segments."""
    pending: list[pa.Table] = []
    segments: list[tuple[datetime.date, int]] = []
    size = 0
    for unit in units:
        part = table.read(unit, columns)
        pending.append(part)
        segments.append((unit.day, part.num_rows))
        size += part.num_rows
        if size >= chunk_rows:
            yield segments, _concat(pending)
            pending, segments, size = [], [], 0
    if pending:
        yield segments, _concat(pending)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return (pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]).combine_chunks()


# ------------------------------------------------------------------------------- days, splits, labels


@dataclasses.dataclass(frozen=True)
class DaySplit:
    train: tuple[datetime.date, ...]
    valid: tuple[datetime.date, ...]
    test: tuple[datetime.date, ...]
    excluded: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        return {
            "train": [d.isoformat() for d in self.train],
            "valid": [d.isoformat() for d in self.valid],
            "test": [d.isoformat() for d in self.test],
            "excluded": list(self.excluded),
        }


def split_days(
    available: Sequence[datetime.date],
    *,
    train: Sequence[datetime.date] | None = None,
    valid: Sequence[datetime.date] | None = None,
    test: Sequence[datetime.date] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    excluded: Sequence[dict] = (),
) -> DaySplit:
    """A temporal split: explicit day lists win; otherwise the available days in order are cut by ``fractions``
    (earliest for training, then validation, the most recent for testing), with at least one day each."""
    available = sorted(available)
    if train is not None or valid is not None or test is not None:
        if train is None:
            raise DataError("explicit splits need --train_days (and usually --valid_days and --test_days)")
        chosen = {"train": list(train), "valid": list(valid or []), "test": list(test or [])}
        for name, days in chosen.items():
            missing = [d.isoformat() for d in days if d not in available]
            if missing:
                raise DataError(f"--{name}_days: {missing} not in the table; available: {_span(available)}")
        return DaySplit(tuple(chosen["train"]), tuple(chosen["valid"]), tuple(chosen["test"]), tuple(excluded))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise DataError(f"split fractions: expected three non-negative numbers summing to 1, found {fractions}")
    n = len(available)
    n_valid = max(1, round(fractions[1] * n)) if fractions[1] > 0 else 0
    n_test = max(1, round(fractions[2] * n)) if fractions[2] > 0 else 0
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise DataError(f"{n} usable day(s) ({_span(available)}) are too few for a train/valid/test split")
    return DaySplit(
        tuple(available[:n_train]),
        tuple(available[n_train : n_train + n_valid]),
        tuple(available[n_train + n_valid :]),
        tuple(excluded),
    )


def _span(days: Sequence[datetime.date]) -> str:
    return f"{days[0]}..{days[-1]} ({len(days)} days)" if days else "none"


def label_catalog(spec: Spec, table: ExampleTable, days: Iterable[datetime.date]) -> dict:
    """Per day, per source: rows; per label column and source: nulls and positives. Reads two small columns."""
    labels = sorted({t.label for t in spec.tasks})
    catalog: dict[str, dict] = {}
    for day in days:
        entry = {"rows": {}, "labels": {lab: {} for lab in labels}}
        for _, chunk in read_chunks(table, table.units([day]), [spec.source_column, *labels], 1 << 20):
            source = chunk.column(spec.source_column)
            for s in spec.sources:
                rows_s = pc.equal(source, s)
                n = int(pc.sum(rows_s).as_py() or 0)
                entry["rows"][s] = entry["rows"].get(s, 0) + n
                for lab in labels:
                    col = pc.cast(pc.filter(chunk.column(lab), rows_s), pa.int64())
                    counts = entry["labels"][lab].setdefault(s, {"nulls": 0, "positives": 0})
                    counts["nulls"] += col.null_count
                    counts["positives"] += int(pc.sum(pc.greater(col, 0)).as_py() or 0)
        catalog[day.isoformat()] = entry
    return catalog


def immature_labels(spec: Spec, catalog: Mapping[str, dict]) -> dict[str, list[tuple[str, str]]]:
    """Per day, the (label column, source) pairs whose null share exceeds ``spec.max_unobserved_share``: such a
    day's observed labels are the early-credited positives only, so all of them are treated as unobserved."""
    out: dict[str, list[tuple[str, str]]] = {}
    for day, entry in catalog.items():
        pairs = []
        for lab, by_source in entry["labels"].items():
            for s, counts in by_source.items():
                rows = entry["rows"].get(s, 0)
                if rows and counts["nulls"] / rows > spec.max_unobserved_share:
                    pairs.append((lab, s))
        out[day] = sorted(pairs)
    return out


def usable_days(spec: Spec, catalog: Mapping[str, dict]) -> tuple[list[datetime.date], list[dict]]:
    """Days where at least one early-stopping task (any task if none are named) has mature labels on its own
    source; the others (typically the most recent days, whose windows the logs do not cover yet) are excluded."""
    immature = immature_labels(spec, catalog)
    tasks = [spec.task(t) for t in spec.early_stopping_tasks] or list(spec.tasks)
    keep, excluded = [], []
    for day, entry in sorted(catalog.items()):
        lacking = [
            t.name
            for t in tasks
            if entry["rows"].get(t.source, 0) == 0 or (t.label, t.source) in set(map(tuple, immature[day]))
        ]
        if lacking and len(lacking) == len(tasks):
            excluded.append({"day": day, "reason": f"labels of {', '.join(lacking)} unobserved (immature)"})
        else:
            keep.append(datetime.date.fromisoformat(day))
    return keep, excluded


def task_priors(
    spec: Spec,
    catalog: Mapping[str, dict],
    days: Iterable[datetime.date],
    shares: Mapping[str, float] | None = None,
) -> dict[str, float | None]:
    """Each task's positive rate as training will see it: over ``days``, the observed labels (immature ones left
    out) of the sources that train the task, each source weighted by its share of a batch (``shares``, e.g. the
    sampling plan's) or, without shares, by its rows. None for a task without observed training labels.

        >>> task_priors(spec, catalog, split.train, {"ad": 4096, "promo": 4096})["Click"]
        0.0139...
    """
    immature = immature_labels(spec, catalog)
    priors: dict[str, float | None] = {}
    for task in spec.tasks:
        rates, weights = [], []
        for s in spec.training_sources:
            if not spec.trains_row(s, task.name) or (shares is not None and not shares.get(s)):
                continue
            observed = positives = 0
            for day in days:
                entry = catalog.get(day.isoformat())
                if entry is None or [task.label, s] in map(list, immature.get(day.isoformat(), ())):
                    continue
                counts = entry["labels"].get(task.label, {}).get(s, {"nulls": 0, "positives": 0})
                observed += entry["rows"].get(s, 0) - counts["nulls"]
                positives += counts["positives"]
            if observed:
                rates.append(positives / observed)
                weights.append(shares[s] if shares is not None else observed)
        priors[task.name] = float(np.average(rates, weights=weights)) if rates else None
    return priors


# -------------------------------------------------------------------------------------------- hashing


def hash_strings(values: Sequence[str | None]) -> np.ndarray:
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") if v is not None else 0
            for v in values
        ),
        dtype=np.uint64,
        count=len(values),
    )


def hash_buckets(array: pa.Array, buckets: int) -> np.ndarray:
    """Bucket ids in ``[0, buckets)`` of a flat Arrow array; 0 = null. Strings are hashed once per distinct value."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    typ = array.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        array = pc.dictionary_encode(array)
        typ = array.type
    if pa.types.is_dictionary(typ):
        dictionary = array.dictionary
        if pa.types.is_integer(dictionary.type):
            per_value = splitmix64(dictionary.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64))
        else:
            per_value = hash_strings(dictionary.to_pylist())
        indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        hashed = per_value[indices] if len(per_value) else np.zeros(len(array), np.uint64)
    elif pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        ints = pc.cast(array, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        hashed = splitmix64(ints.view(np.uint64))
    else:
        raise DataError(f"cannot hash a {typ} column (expected strings, integers or booleans)")
    out = (hashed % np.uint64(buckets - 1)).astype(np.int64) + 1
    if array.null_count:
        out[np.asarray(array.is_null())] = 0
    return out


def list_parts(array: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The flat values and per-row lengths of a list array (null lists have length 0)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.list_flatten(array), lengths


def numeric_values(array: pa.Array, log1p: bool) -> np.ndarray:
    """float64 values with NaN for nulls; ``log1p`` applies sign(x) * log1p(|x|)."""
    values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64)
    if log1p:
        values = np.sign(values) * np.log1p(np.abs(values))
    return values


# ----------------------------------------------------------------------------------------- statistics


@dataclasses.dataclass
class FeatureStats:
    """What encoding learns from the training split: numeric mean/std and the categorical buckets seen often
    enough (``known``, per feature, a bool array of its buckets). Saved with a model as JSON."""

    numeric: dict[str, dict[str, float]]
    known: dict[str, np.ndarray]
    rows: int

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "numeric": self.numeric,
            "known_buckets": {
                k: {"buckets": int(v.size), "seen": int(v.sum()), "bits": base64.b64encode(np.packbits(v)).decode()}
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


def fit_statistics(
    spec: Spec, table: ExampleTable, days: Sequence[datetime.date], chunk_rows: int = 65536
) -> FeatureStats:
    """One streamed pass over ``days``: sums for numeric features, bucket counts for categorical ones."""
    sums = {f.name: np.zeros(3) for f in spec.features_of("numeric")}
    counts = {f.name: np.zeros(f.buckets, np.int64) for f in spec.active_features if f.kind != "numeric"}
    columns = [f.name for f in spec.active_features]
    rows = 0
    for _, chunk in read_chunks(table, table.units(days), columns, chunk_rows):
        rows += chunk.num_rows
        for f in spec.active_features:
            col = chunk.column(f.name)
            if f.kind == "numeric":
                v = numeric_values(col, f.log1p)
                v = v[np.isfinite(v)]
                sums[f.name] += (v.size, v.sum(), np.square(v).sum())
            else:
                flat = list_parts(col)[0] if f.kind == "multi_categorical" else col
                counts[f.name] += np.bincount(hash_buckets(flat, f.buckets), minlength=f.buckets)
    if rows == 0:
        raise DataError(f"no rows in the training days {[d.isoformat() for d in days]}")
    numeric = {}
    for name, (n, s, ss) in sums.items():
        mean = s / n if n else 0.0
        var = max(ss / n - mean * mean, 0.0) if n else 0.0
        numeric[name] = {"mean": float(mean), "std": float(math.sqrt(var)) or 1.0, "count": int(n)}
    by_name = {f.name: f for f in spec.active_features}
    known = {}
    for name, c in counts.items():
        seen = c >= by_name[name].min_count
        seen[0] = True
        known[name] = seen
    return FeatureStats(numeric=numeric, known=known, rows=rows)


# ------------------------------------------------------------------------------------------- encoding


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
        self.single = spec.features_of("categorical")
        self.bags = spec.features_of("multi_categorical")
        self.numeric = spec.features_of("numeric")
        offsets, start = {}, 0
        for f in (*self.single, *self.bags):
            offsets[f.name] = start
            start += f.buckets
        self.offsets = offsets
        self.table_rows = max(start, 1)
        if self.table_rows > np.iinfo(ROW_DTYPE).max:
            raise DataError(
                f"the spec's categorical features need {self.table_rows} embedding rows; at most "
                f"{np.iinfo(ROW_DTYPE).max} are supported (fewer buckets, please)"
            )
        # remap[row] = row when its bucket is known, else the feature's row 0 (null / cold start).
        self.remap = np.arange(self.table_rows, dtype=ROW_DTYPE)
        for f in (*self.single, *self.bags):
            known = stats.known.get(f.name)
            if known is None or known.size != f.buckets:
                raise DataError(f"statistics lack the buckets of feature {f.name!r} (were they fit on another spec?)")
            block = self.remap[offsets[f.name] : offsets[f.name] + f.buckets]
            block[~known] = offsets[f.name]
        self.num_width = sum(2 if f.missing else 1 for f in self.numeric)
        self.task_index = {t.name: i for i, t in enumerate(spec.tasks)}
        self.source_index = {s: i for i, s in enumerate(spec.sources)}
        self.columns = [c for c in spec.columns]

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
            v = numeric_values(data.column(f.name), f.log1p)
            st = self.stats.numeric[f.name]
            missing = ~np.isfinite(v)
            z = (v - st["mean"]) / st["std"]
            z[missing] = 0.0
            num[:, k] = z
            k += 1
            if f.missing:
                num[:, k] = missing
                k += 1
        source = np.full(n, -1, np.int64)
        src_col = data.column(self.spec.source_column)
        encoded = pc.dictionary_encode(src_col.combine_chunks() if isinstance(src_col, pa.ChunkedArray) else src_col)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        lookup = np.array([self.source_index.get(v, -1) for v in encoded.dictionary.to_pylist()] or [-1], np.int64)
        source[:] = lookup[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)]
        if encoded.null_count:
            source[np.asarray(encoded.is_null())] = -1
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
                f.name: {"kind": f.kind, "offset": self.offsets[f.name], "buckets": f.buckets, "min_count": f.min_count}
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


# ------------------------------------------------------------------------------------------- sampling


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
    drawn with replacement from a sliding window. An epoch is one pass over the training days."""

    batch_size: int
    shares: dict[str, int] | None
    pacing: str | None
    sources: tuple[str, ...]
    expected_batches: int
    expected_rows: int
    rows: dict[str, int] = dataclasses.field(default_factory=dict)


def plan_sampling(
    spec: Spec, rows_by_source: Mapping[str, int], batch_size: int, source_ratio: float | None
) -> SamplingPlan:
    """``source_ratio``: the share of promotion rows (of the second spec source, generally: of ``sources[-1]``)
    per batch, or None for the natural mix. With one source there is nothing to balance."""
    sources = tuple(s for s in spec.training_sources if rows_by_source.get(s, 0) > 0)
    if not sources:
        raise DataError(f"no training rows of any source {list(spec.training_sources)}: {dict(rows_by_source)}")
    total = sum(rows_by_source[s] for s in sources)
    if source_ratio is None or len(sources) == 1:
        batches = max(1, total // batch_size)
        return SamplingPlan(batch_size, None, None, sources, batches, total, dict(rows_by_source))
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
    return SamplingPlan(batch_size, shares, pacing, sources, batches, batches * batch_size, dict(rows_by_source))


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

        def ready(final: bool = False) -> bool:
            for key, pool in pools.items():
                if isinstance(pool, _WindowPool):
                    if not pool.ready(final):
                        return False
                elif pool.available() < (1 if final else shares[key]):
                    return False
            return True

        def draw() -> RowBlock:
            pacer = "*" if plan.shares is None else plan.pacing
            k = min(shares[pacer], pools[pacer].available())
            parts = [pools[pacer].take(k)]
            for key, pool in pools.items():
                if key != pacer:
                    parts.append(pool.take(max(1, round(shares[key] * k / shares[pacer]))))
            return RowBlock.concat(parts)

        for segments, chunk in read_chunks(self.table, units, self.encoder.columns, self.chunk_rows):
            block = self.encoder.encode_rows(chunk, segments, self.immature)
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
            if plan.shares is None and pools["*"].available() == 0:
                break
            if plan.shares is not None and pools[plan.pacing].available() == 0:
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


class Prefetcher:
    """Runs a generator in a daemon thread, from construction on, with a bounded queue; re-raises its exception
    in the consumer. ``timer.wait_seconds`` (if given) accumulates the time the consumer waited. Starting at
    construction lets the next epoch's reading overlap this epoch's validation."""

    _DONE = object()

    def __init__(self, produce: Callable[[], Iterator[Any]], prefetch: int, timer: Any = None):
        self.queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop = threading.Event()
        self.timer = timer
        self.finished = False
        self.thread = threading.Thread(target=self._work, args=(produce,), name="batch-producer", daemon=True)
        self.thread.start()

    def _work(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in produce():
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it with its traceback
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self.finished:
            raise StopIteration
        started = time.perf_counter()
        item = self.queue.get()
        if self.timer is not None:
            self.timer.wait_seconds += time.perf_counter() - started
        if item is self._DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.finished = True
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop the producer (e.g. when training stops early)."""
        self.stop.set()


def background(produce: Callable[[], Iterator[Any]], prefetch: int, timer: Any = None) -> Prefetcher:
    return Prefetcher(produce, prefetch, timer)

"""Reading a day-partitioned Parquet example table (``<root>/dt=YYYY-MM-DD/*.parquet``, local or any filesystem
``pyarrow.fs`` resolves, e.g. ``gs://``), a row group at a time, never whole::

    >>> table = ExampleTable.open("./data/examples")
    >>> units = table.units(table.days[:2])                  # the row groups of the first two days
    >>> for segments, chunk in read_chunks(table, units, ["source", "label_click"], chunk_rows=16384): ...

A day counts when its ``_SUCCESS.json`` marker says it is complete (``podtarget.schemas.layout``); only the files the
marker lists are read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import DataError
from ...schemas.layout import (MANIFEST_KEY, SUCCESS_MARKER)

DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


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

"""File IO for every pipeline, through Beam's FileSystems (local paths and ``gs://`` alike).

- Avro part files are written atomically (temporary name, then rename) and read straight into Arrow with the
  polars Avro decoder (about 7x fastavro here), with a block-by-block fastavro fallback that salvages what a
  corrupt file still holds.
- Parquet parts and whole derived partitions are committed atomically: parts go to a staging folder, the staging
  folder replaces the partition, and ``_SUCCESS.json`` is written last. It lists the partition's files; readers
  take a partition's files from there (:func:`partition_files`), which is what makes the swap safe on object
  stores, where folders cannot be renamed (see :func:`commit_partition`).
- Run scratch (staging folders, shuffle files) is named after the run that owns it (:func:`new_run_id`: its
  process and machine), so that a later run can delete what a killed run left (:func:`remove_dead_runs`).

>>> result = read_avro_as_arrow("data/raw/click/dt=2026-03-02/part-00000.avro", "click")   # doctest: +SKIP
>>> result.table.schema.field("event_ts").type                                            # doctest: +SKIP
DataType(int64)
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from ...schemas import TableSchema, layout, load_schema


# -- plain bytes ---------------------------------------------------------------------------------------------------
def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def read_json(path: str) -> dict:
    return json.loads(read_bytes(path))


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling that no ``part-*`` glob matches, then rename it over
    ``path``: a reader sees the old content or the new, never none (on GCS a rename is a copy, which replaces the
    object whole; locally os.rename replaces the file)."""
    directory, _, name = path.rpartition("/")
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    with FileSystems.create(tmp) as handle:
        handle.write(data)
    FileSystems.rename([tmp], [path])


def list_files_with_metadata(pattern: str) -> list[tuple[str, int, float]]:
    """``(path, size in bytes, modified in epoch seconds)`` of files matching a glob, sorted by path; empty when
    nothing matches."""
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except OSError:
        return []
    return sorted((m.path, m.size_in_bytes, float(m.last_updated_in_seconds or 0.0)) for m in matches)


def list_files_with_sizes(pattern: str) -> list[tuple[str, int]]:
    """``(path, size in bytes)`` of files matching a glob, sorted by path; empty when nothing matches."""
    return [(path, size) for path, size, _ in list_files_with_metadata(pattern)]


def list_files(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; empty when nothing (or no folder) matches."""
    return [path for path, _ in list_files_with_sizes(pattern)]


# -- Avro ----------------------------------------------------------------------------------------------------------
def deterministic_sync_marker(*key: object) -> bytes:
    """A 16-byte Avro sync marker derived from ``key``, so identical inputs give byte-identical files."""
    return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()


def write_avro_part(
    path: str,
    schema: TableSchema,
    records: Iterable[Mapping[str, Any]],
    *,
    sync_marker: bytes | None = None,
) -> int:
    """Write ``records`` as one Avro file at ``path``, atomically. Returns the bytes written."""
    buffer = io.BytesIO()
    schema.write(buffer, records, sync_marker=sync_marker)
    atomic_write(path, buffer.getvalue())
    return buffer.tell()


def truncate_file(path: str, keep_fraction: float) -> int:
    """Rewrite ``path`` keeping only its first ``keep_fraction`` of bytes (planting a corrupt file on purpose)."""
    data = read_bytes(path)
    cut = data[: max(1, int(len(data) * keep_fraction))]
    with FileSystems.create(path) as handle:
        handle.write(cut)
    return len(data) - len(cut)


_AVRO_TO_ARROW = {
    "long": pa.int64(),
    "int": pa.int32(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "double": pa.float64(),
    "float": pa.float32(),
}


def _arrow_type(avro_type: Any) -> pa.DataType:
    if isinstance(avro_type, list):  # ["null", T]
        (inner,) = [t for t in avro_type if t != "null"]
        return _arrow_type(inner)
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-millis":
            return pa.int64()  # epoch milliseconds: what every computation downstream wants
        if logical == "date":
            return pa.date32()
        if avro_type.get("type") == "array":
            return pa.list_(_arrow_type(avro_type["items"]))
        return _arrow_type(avro_type["type"])
    return _AVRO_TO_ARROW[avro_type]


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema raw table ``table`` is read into: timestamps as int64 epoch ms, dates as date32."""
    return pa.schema([pa.field(f["name"], _arrow_type(f["type"])) for f in load_schema(table).raw["fields"]])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table`` to ``schema`` column by column; a column the file lacks (an older writer) becomes null."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            columns.append(column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass(frozen=True)
class AvroReadResult:
    """Rows read from one Avro file; ``error`` is set when the file was corrupt and only ``table`` was salvaged."""

    path: str
    table: pa.Table
    error: str | None = None


def _salvage_with_fastavro(data: bytes, table: str) -> tuple[pa.Table, str | None]:
    """Decode record by record until the first error; complete blocks before it are kept."""
    rows: list[Any] = []  # fastavro's records: dicts for the record schemas read here
    error = None
    try:
        for record in fastavro.reader(io.BytesIO(data)):
            rows.append(record)
    except Exception as exc:  # any decoding failure: keep what was read so far
        error = f"{type(exc).__name__}: {exc}"
    # fastavro yields datetimes for timestamp-millis; read them as Arrow timestamps, then conform to epoch ms.
    decoded = pa.schema(
        [pa.field(f.name, pa.timestamp("ms", tz="UTC")) if f.name == "event_ts" else f for f in arrow_schema(table)]
    )
    return conform(pa.Table.from_pylist(rows, schema=decoded), arrow_schema(table)), error


def read_avro_as_arrow(path: str, table: str, columns: list[str] | None = None) -> AvroReadResult:
    """Read one Avro part file of raw table ``table`` into Arrow (see :func:`arrow_schema`).

    Files written by an older schema (without a since-added optional field) read with that field null. A corrupt
    file is salvaged block by block and returned with ``error`` set, so the caller can dead-letter it.
    """
    import polars as pl

    schema = arrow_schema(table)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    data = read_bytes(path)
    try:
        # Projection: polars skips materialising unread columns (a file lacking one falls back to fastavro below).
        frame = pl.read_avro(io.BytesIO(data), columns=columns)
        got = frame.to_arrow()
        return AvroReadResult(path, conform(got.select([c for c in schema.names if c in got.column_names]), schema))
    except Exception as polars_error:
        # polars also refuses valid files it cannot handle (an empty container, for one): only a failure of the
        # record-by-record decoder means the file is corrupt.
        salvaged, error = _salvage_with_fastavro(data, table)
        if error is not None:
            error = f"{error} (polars: {polars_error})"
        return AvroReadResult(path, salvaged.select(schema.names), error)


# -- Parquet and whole partitions ----------------------------------------------------------------------------------
def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


class WriteBehind:
    """Encodes and writes Parquet parts on background threads while the caller computes the next ones.

    Parquet encoding (snappy, dictionaries, statistics) releases the GIL, so a bucket DoFn can hand a finished part
    here and go on; at most ``threads`` parts wait at a time, which bounds the memory they hold. Call :meth:`wait`
    before the bundle ends (``finish_bundle``) so that a failed write fails the bundle and its retry rewrites it.

        >>> writer = WriteBehind(threads=1)          # doctest: +SKIP
        >>> writer.submit("out/part-00000.parquet", table)
        >>> writer.wait()
    """

    def __init__(self, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="write")
        self._pending: list = []

    def submit(self, path: str, table: pa.Table) -> None:
        while len(self._pending) >= self.threads:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(lambda: atomic_write(path, parquet_bytes(table))))

    def wait(self) -> None:
        """Block until every submitted part is written; re-raises the first write error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()


def read_parquet(pattern: str, schema: pa.Schema | None = None) -> pa.Table:
    """All Parquet files matching ``pattern`` as one table (empty with ``schema`` when none match)."""
    return read_parquet_files(list_files(pattern), schema, what=f"match {pattern}")


def read_parquet_files(paths: list[str], schema: pa.Schema | None = None, what: str = "were given") -> pa.Table:
    """Parquet files as one table (empty with ``schema`` when there are none), e.g. :func:`partition_files`."""
    tables = [read_parquet_file(p) for p in paths]
    if not tables:
        if schema is None:
            raise FileNotFoundError(f"no Parquet files {what}")
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="default")
    return table.cast(schema) if schema is not None else table


def read_parquet_file(path: str) -> pa.Table:
    """One Parquet file; a corrupt one fails naming the file, its day and what to do (not Arrow's bare message)."""
    try:
        return pq.read_table(io.BytesIO(read_bytes(path)))
    except pa.ArrowException as exc:
        try:
            day = layout.parse_dt(path).isoformat()
        except ValueError:
            day = "unknown"
        reason = str(exc).split(". ")[0].removeprefix("Could not open Parquet input source '<Buffer>': ")
        raise ValueError(f"{path} (day {day}) is not readable Parquet ({reason}); {layout.rebuild_hint(path)}") from exc


def staging_dir(partition: str, run_id: str) -> str:
    """Where a run writes a partition's parts before committing: ``<table>/_staging/dt=D-<run_id>``."""
    parent, _, name = partition.rstrip("/").rpartition("/")
    return f"{parent}/_staging/{name}-{run_id}"


# This machine, as 6 hex digits of its name's hash: a run id names its machine, so a run can tell whether the process
# that owns some scratch is one it can check (on this machine) or not.
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()
_RUN_ID = re.compile(r"^(\d+)-([0-9a-f]{6})-[0-9a-f]{6}$")


def new_run_id() -> str:
    """A new run's id, ``<pid>-<machine>-<random>``: unique, and naming the process that owns the run's scratch
    (see :func:`run_is_dead`)."""
    return f"{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:6]}"


def run_is_dead(run_id: str) -> bool:
    """Whether the run ``run_id`` certainly ended without cleaning up: its process, on this machine, no longer
    exists. A run of another machine, of this very process, of a process that still exists (possibly a new one
    that reuses the number) or with an id of another form is never taken for dead."""
    match = _RUN_ID.match(run_id)
    if match is None or match.group(2) != _HOST:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user's process
    return False


def remove_dead_runs(folder: str, name: str) -> list[str]:
    """Delete the run folders ``<folder>/<name>-<run id>`` whose run is dead (:func:`run_is_dead`): the staging
    folder or shuffle files of a run that was killed, or the old version a killed commit had swapped out. Returns
    the folders deleted. Folders of live runs, and anything else, are left alone."""
    prefix = f"{name}-"
    if is_local(folder):
        try:
            entries = [e for e in os.listdir(folder) if e.startswith(prefix)]
        except (FileNotFoundError, NotADirectoryError):
            return []
    else:
        under = list_files(layout.join(folder, f"{prefix}*/**"))
        entries = sorted({p[len(folder.rstrip("/")) + 1 :].split("/", 1)[0] for p in under})
    dead = [layout.join(folder, e) for e in sorted(entries) if run_is_dead(e[len(prefix) :])]
    for path in dead:
        delete_tree(path)
    return dead


def remove_if_empty(*folders: str) -> None:
    """Remove each local folder that is empty, in order (a run's ``_staging/`` or ``_shuffle/<pipeline>/`` once its
    own folder is gone); object stores have no folders to remove."""
    for folder in folders:
        if is_local(folder):
            try:
                os.rmdir(folder)
            except OSError:
                return  # not empty (another run's scratch) or already gone


def is_local(path: str) -> bool:
    """A path on this machine's filesystem (not ``gs://`` or another scheme)."""
    return "://" not in path


def delete_tree(folder: str) -> None:
    """Delete ``folder`` and everything under it; nothing happens when it does not exist."""
    if is_local(folder):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return
    paths = list_files(layout.join(folder, "**"))
    if paths:
        FileSystems.delete(paths)


def commit_partition(staging: str, partition: str, success: Mapping[str, Any]) -> None:
    """Replace ``partition`` by the files in ``staging`` and mark it complete with ``_SUCCESS.json`` (``success``
    plus ``files``: the partition's file names).

    A crash at any point leaves the old partition or the new one readable, never a mix or nothing:

    - Locally the marker is written into the staging folder, and the staging folder and the partition are
      exchanged in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): the partition's path holds the old
      version until that instant and the new one after it. The old version, now under the staging folder's name,
      is deleted next; a crash before that leaves it there, where the next run of the day deletes it as a dead
      run's scratch (:func:`remove_dead_runs`). A first commit is one rename.
    - On object stores folders cannot be renamed, and renaming objects one by one over the old ones would mix the
      two. So the new files are copied in under names of their own (``part-00000-<generation>.parquet``) beside
      the old ones, which the old ``_SUCCESS.json`` still lists; then the new ``_SUCCESS.json`` replaces the old
      in one object write, and only then are the old files deleted. Readers take the files a marker lists
      (:func:`partition_files`), so until the marker changes they read the old partition, and after, the new;
      files a crash strands are deleted by the next commit. A local filesystem that cannot exchange two folders
      gets this scheme too.
    """
    staging, partition = staging.rstrip("/"), partition.rstrip("/")
    names = sorted(p[len(staging) + 1 :] for p in list_files(layout.join(staging, "**")))
    names = [n for n in names if n != layout.SUCCESS_MARKER]
    if is_local(partition):
        atomic_write(layout.success_marker(staging), _marker_bytes(success, names))
        os.makedirs(os.path.dirname(partition), exist_ok=True)
        if not os.path.exists(partition):
            os.rename(staging, partition)
            return
        if exchange_folders(staging, partition):
            delete_tree(staging)  # the old version
            return
    generation = new_run_id()
    committed = [_with_generation(name, generation) for name in names]
    if names:
        FileSystems.rename([f"{staging}/{n}" for n in names], [f"{partition}/{n}" for n in committed])
    atomic_write(layout.success_marker(partition), _marker_bytes(success, committed))
    keep = {f"{partition}/{n}" for n in committed} | {layout.success_marker(partition)}
    stale = [p for p in list_files(layout.join(partition, "**")) if p not in keep]
    if stale:
        FileSystems.delete(stale)
    delete_tree(staging)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_folders(a: str, b: str) -> bool:
    """Swap two local paths in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False, with nothing
    changed, where the system or the filesystem cannot (another OS, an old kernel, a filesystem without it)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), a, None, b)


def _marker_bytes(success: Mapping[str, Any], names: list[str]) -> bytes:
    return json.dumps({**success, layout.MANIFEST_KEY: names}, indent=2, sort_keys=True).encode()


def _with_generation(name: str, generation: str) -> str:
    """``part-00000.parquet`` -> ``part-00000-<generation>.parquet``: a name no earlier commit used."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-{generation}.{suffix}" if dot and "/" not in suffix else f"{name}-{generation}"


def partition_files(partition: str, suffix: str = "") -> list[str]:
    """The files of a committed partition ending in ``suffix``: those its ``_SUCCESS.json`` lists, or every
    ``part-*`` file of a partition committed before markers listed them; empty when it is not committed.

    Readers use this rather than a glob: after a crash mid-swap on an object store, a partition folder may also
    hold files of the other version (see :func:`commit_partition`).
    """
    partition = partition.rstrip("/")
    try:
        listed = json.loads(read_bytes(layout.success_marker(partition))).get(layout.MANIFEST_KEY)
    except (OSError, FileNotFoundError):
        return []
    if listed is None:
        return [p for p in list_files(layout.join(partition, "part-*")) if p.endswith(suffix)]
    return [f"{partition}/{name}" for name in listed if name.endswith(suffix)]


def is_complete(partition: str) -> bool:
    return FileSystems.exists(layout.success_marker(partition))


def read_success(partition: str) -> dict:
    return json.loads(read_bytes(layout.success_marker(partition)))


def use_system_allocator() -> None:
    """Make glibc malloc pyarrow's default memory pool in this process, unless ``ARROW_DEFAULT_MEMORY_POOL`` says
    otherwise.

    The daily pipelines allocate and free large, short-lived Arrow buffers (decoded files, bucket tables). With
    pyarrow's default mimalloc pool, a bench day's examples run spent 5.1-5.3 s in the kernel and peaked at
    0.99-1.02 GB; with the system pool 3.0-3.3 s and 0.77 GB, and ~2 s less wall time (two runs of each,
    interleaved). Called by the pipelines' drivers and by their DoFns' ``setup``, so workers get it too.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
        _limit_malloc_arenas(2)


_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _limit_malloc_arenas(arenas: int) -> None:
    """At most ``arenas`` glibc malloc arenas (unless ``MALLOC_ARENA_MAX`` is set), where glibc is the libc.

    glibc gives threads arenas of their own (up to 8 per core); memory freed in one is not reused by the others,
    and the reader, bucket and writer threads each free large buffers. With 2 arenas, a one-process backfill of
    day 6 of the 8-day world peaked at 648 MB instead of 772 MB, and the bench day at 845 MB instead of 925 MB, at
    the same speed.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune

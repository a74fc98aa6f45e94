"""Avro container files encoded from Arrow columns with numpy, for flat records of non-null primitives.

fastavro encodes about 200k records/s here (a Python dict per record), which made Avro output a third of the
scoring pipeline's time. The outputs of scoring are flat records of longs, ints, floats and strings, whose Avro
binary encoding is simple enough to produce column by column: zig-zag varints, little-endian floats,
length-prefixed UTF-8. The header (schema JSON, codec, ``podtarget.*`` metadata, sync marker) is written by the
schema registry's own writer, so a file differs from ``TableSchema.write`` output only in where blocks are cut::

    >>> write_avro_table(path, derived_avro_schema("audience"), table, sync_marker=marker)    # doctest: +SKIP

Any other schema (unions, nested types) falls back to the registry's record writer.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...schemas import TableSchema
from .storage import atomic_write, write_avro_part

ROWS_PER_BLOCK = 65536
_FIXED: dict[str, np.dtype] = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}
_SUPPORTED = {"long", "int", "float", "double", "boolean", "string"}


def supports(schema: TableSchema) -> bool:
    """Whether every field is a non-null primitive this encoder handles."""
    return all(isinstance(f["type"], str) and f["type"] in _SUPPORTED for f in schema.raw["fields"])


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zig-zag varints of int64 ``values``: a ``[n, width]`` byte matrix (row i's bytes first, then padding) and
    each value's byte length."""
    v = values.astype(np.int64)
    z = ((v << 1) ^ (v >> 63)).view(np.uint64)
    lengths = np.ones(len(z), np.int64)
    for k in range(1, 10):
        lengths += z >= np.uint64(1) << np.uint64(7 * k)
    width = int(lengths.max()) if len(z) else 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((z[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    groups |= np.where(np.arange(width)[None, :] < (lengths - 1)[:, None], np.uint8(0x80), np.uint8(0))
    return groups, lengths


def _strings(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Length-prefixed UTF-8 as a byte matrix, through the column's distinct values (few in scoring outputs)."""
    encoded = pc.dictionary_encode(column)
    values = [v.encode() for v in encoded.dictionary.to_pylist()]
    prefix, prefix_lengths = _varints(np.array([len(v) for v in values], np.int64))
    lengths = prefix_lengths + np.array([len(v) for v in values], np.int64)
    matrix = np.zeros((len(values), int(lengths.max()) if values else 1), np.uint8)
    for i, value in enumerate(values):
        k = prefix_lengths[i]
        matrix[i, :k] = prefix[i, :k]
        matrix[i, k : k + len(value)] = np.frombuffer(value, np.uint8)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return matrix[codes], lengths[codes]


def _column(avro_type: str, column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """One column as a ``[rows, width]`` byte matrix and each row's byte length (the rest is padding)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"column of Avro type {avro_type} has nulls; the schema declares it non-null")
    n = len(column)
    if avro_type in ("long", "int"):
        return _varints(column.to_numpy(zero_copy_only=False))
    if avro_type in _FIXED:
        dtype = _FIXED[avro_type]
        data = np.ascontiguousarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
        return data.view(np.uint8).reshape(n, dtype.itemsize), np.full(n, dtype.itemsize, np.int64)
    if avro_type == "boolean":
        return column.to_numpy(zero_copy_only=False).astype(np.uint8).reshape(n, 1), np.ones(n, np.int64)
    return _strings(column)


def encode_records(schema: TableSchema, table: pa.Table) -> bytes:
    """The Avro binary encoding of ``table``'s rows under ``schema`` (no container framing): every column as a
    padded byte matrix side by side, then the padding dropped in row-major order."""
    columns = [_column(f["type"], table.column(f["name"])) for f in schema.raw["fields"]]
    matrix = np.hstack([m for m, _ in columns])
    keep = np.hstack([np.arange(m.shape[1])[None, :] < lengths[:, None] for m, lengths in columns])
    return matrix[keep].tobytes()


def write_avro_table(path: str, schema: TableSchema, table: pa.Table, *, sync_marker: bytes, level: int = 1) -> int:
    """Write ``table`` as one Avro container file at ``path`` (deflate, like the registry's writer), atomically.

    Returns the bytes written. Schemas this encoder does not handle go through ``TableSchema.write``.
    """
    if not supports(schema):
        return write_avro_part(path, schema, table.to_pylist(), sync_marker=sync_marker)
    buffer = io.BytesIO()
    schema.write(buffer, [], sync_marker=sync_marker)  # the header, exactly as the registry writes it
    for start in range(0, table.num_rows, ROWS_PER_BLOCK):
        rows = table.slice(start, ROWS_PER_BLOCK)
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)  # raw deflate, as the Avro spec asks
        block = compressor.compress(encode_records(schema, rows)) + compressor.flush()
        counts, lengths = _varints(np.array([rows.num_rows, len(block)]))
        buffer.write(counts[0, : lengths[0]].tobytes() + counts[1, : lengths[1]].tobytes())
        buffer.write(block)
        buffer.write(sync_marker)
    atomic_write(path, buffer.getvalue())
    return buffer.tell()

"""Arrow columns to numpy for the encoder and the statistics: stable bucket hashing of categorical values (the same
in every process and on every machine; ``HASHING`` describes it and is saved with each model), the parts of list
columns, and numeric values::

    >>> hash_buckets(pa.array(["a", None, "a"]), 64)         # 0 = null; equal values, equal buckets
    array([33,  0, 33])
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...common.hashing import splitmix64
from .errors import DataError

HASHING = {
    "string": "blake2b, 8-byte digest of the UTF-8 bytes, little-endian",
    "integer": "splitmix64 of the value as a two's-complement 64-bit integer (booleans as 0/1)",
    "float": "integral values as that integer, others splitmix64 of their IEEE-754 bits (-0.0 as 0.0); NaN = null",
    "bucket": "1 + hash % (buckets - 1); 0 = null, or a bucket seen fewer than min_count times in training",
}


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
    elif pa.types.is_floating(typ):
        hashed, nan = _hash_floats(array)
    else:
        raise DataError(f"cannot hash a {typ} column (expected strings, integers, booleans or floats)")
    out = (hashed % np.uint64(buckets - 1)).astype(np.int64) + 1
    if array.null_count:
        out[np.asarray(array.is_null())] = 0
    if pa.types.is_floating(typ):
        out[nan] = 0
    return out


def _hash_floats(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of a float column (ids stored as floats: 3.0 hashes like the integer 3, so a column read back from
    pandas with NaN for null keeps its buckets) and where it is NaN or null."""
    values = np.asarray(pc.cast(array, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), np.float64)
    nan = np.isnan(values)
    integral = ~nan & (np.floor(values) == values) & (np.abs(values) < 2.0**62)
    ints = np.where(integral, values, 0.0).astype(np.int64).view(np.uint64)
    bits = np.where(values == 0.0, 0.0, values).view(np.uint64)  # -0.0 is 0.0 (integral anyway)
    return splitmix64(np.where(integral, ints, bits)), nan


def list_parts(array: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The flat values and per-row lengths of a list array (null lists have length 0)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.list_flatten(array), lengths


def numeric_values(array: pa.Array, log1p: bool = False, clip: tuple[float, float] | None = None) -> np.ndarray:
    """float64 values with NaN for nulls; ``clip`` = (low, high) clips them first, then ``log1p`` applies
    sign(x) * log1p(|x|)."""
    values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64)
    if clip is not None:
        values = np.clip(values, clip[0], clip[1])  # NaN stays NaN
    if log1p:
        values = np.sign(values) * np.log1p(np.abs(values))
    return values

"""Avro part files written atomically through Beam's FileSystems (local paths and ``gs://`` alike).

A part file is first written under a temporary name that no reader's glob matches, then renamed into place: a
crash mid-write never leaves a half file behind a ``part-*.avro`` name, and a retried bundle that writes the same
part again simply replaces it::

    >>> write_avro_part("/tmp/x/raw/click/dt=2026-01-01/part-00000.avro", load_schema("click"), records)
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from apache_beam.io.filesystems import FileSystems

from schemas import TableSchema


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
    """Write ``records`` to ``path`` atomically (temporary name, then rename). Returns the bytes written."""
    buffer = io.BytesIO()
    schema.write(buffer, records, sync_marker=sync_marker)
    data = buffer.getvalue()
    directory, _, name = path.rpartition("/")
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    with FileSystems.create(tmp) as handle:
        handle.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return len(data)


def truncate_file(path: str, keep_fraction: float) -> int:
    """Rewrite ``path`` keeping only its first ``keep_fraction`` of bytes (planting a corrupt file on purpose)."""
    with FileSystems.open(path) as handle:
        data = handle.read()
    cut = data[: max(1, int(len(data) * keep_fraction))]
    with FileSystems.create(path) as handle:
        handle.write(cut)
    return len(data) - len(cut)

"""Data contracts: the Avro schemas of every raw table and the dataset layout.

>>> from podtarget.schemas import load_schema, RAW_TABLES
>>> load_schema("stream").field_names[:3]
('event_id', 'event_ts', 'user_id')
"""

from .registry import LOG_TABLES, RAW_TABLES, SNAPSHOT_TABLES, SchemaError, TableSchema, load_schema, parse_schema

__all__ = [
    "LOG_TABLES",
    "RAW_TABLES",
    "SNAPSHOT_TABLES",
    "SchemaError",
    "TableSchema",
    "load_schema",
    "parse_schema",
]

# The folders are the package podtarget (pyproject's package-dir): imported as `schemas` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.schemas":
    raise ImportError(
        f"{__name__!r} is the folder schemas/ of podtarget: import podtarget.schemas (make setup installs it)"
    )

"""Data contracts: the Avro schemas of every raw table and the dataset layout.

>>> from podtarget.schemas import load_schema, RAW_TABLES
>>> load_schema("stream").field_names[:3]
('event_id', 'event_ts', 'user_id')
"""

from podtarget.schemas.registry import (
    LOG_TABLES,
    RAW_TABLES,
    SNAPSHOT_TABLES,
    SchemaError,
    TableSchema,
    load_schema,
    parse_schema,
)

__all__ = [
    "LOG_TABLES",
    "RAW_TABLES",
    "SNAPSHOT_TABLES",
    "SchemaError",
    "TableSchema",
    "load_schema",
    "parse_schema",
]

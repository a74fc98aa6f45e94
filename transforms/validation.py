"""Row-level validation of raw log tables in Arrow: what is rejected, why, and what is merely filtered.

Every rejected row becomes a dead-letter row (``schemas.derived.DEAD_LETTER``) carrying its reason and the row
itself as JSON; nothing is dropped without a count::

    >>> checked = validate_log_rows(table, "click", day, reference, source_path="...", pipeline="build_examples")
    >>> checked.valid.num_rows + checked.rejected.num_rows == table.num_rows
    True

Reasons, in the order they are checked (a row gets the first that applies):

- ``null_<field>``: a required id (``podtarget.required`` in the Avro schema) is null;
- ``bad_timestamp``: ``event_ts`` is after the end of its logging day, or earlier than the allowed lateness;
- ``unknown_user`` / ``unknown_podcast`` / ``unknown_campaign`` / ``unknown_creative``: the id is not in that
  day's dimension snapshot.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import load_schema
from schemas.derived import DEAD_LETTER
from transforms.arrays import IdSet

MS_PER_DAY = 86_400_000
_EPOCH = datetime.date(1970, 1, 1)


def day_start_ms(day: datetime.date) -> int:
    return (day - _EPOCH).days * MS_PER_DAY


@dataclass(frozen=True)
class ReferenceIds:
    """Ids known on a day, from its dimension snapshots (:class:`IdSet`, for vectorised membership)."""

    users: IdSet
    podcasts: IdSet
    campaigns: IdSet
    creatives: IdSet

    @classmethod
    def from_snapshots(
        cls, users: pa.Table, podcasts: pa.Table, campaigns: pa.Table, creatives: pa.Table
    ) -> ReferenceIds:
        def ids(table: pa.Table, column: str) -> IdSet:
            return IdSet(table.column(column).drop_null().to_numpy())

        return cls(
            users=ids(users, "user_id"),
            podcasts=ids(podcasts, "podcast_id"),
            campaigns=ids(campaigns, "campaign_id"),
            creatives=ids(creatives, "creative_id"),
        )


_REFERENCED = (
    ("user_id", "users", "unknown_user"),
    ("podcast_id", "podcasts", "unknown_podcast"),
    ("campaign_id", "campaigns", "unknown_campaign"),
    ("creative_id", "creatives", "unknown_creative"),
)


@dataclass(frozen=True)
class CheckedRows:
    valid: pa.Table
    rejected: pa.Table  # DEAD_LETTER rows


def dead_letters(
    rows: pa.Table, reasons: np.ndarray, *, pipeline: str, table: str, source_path: str, detail: str | None = None
) -> pa.Table:
    """Dead-letter rows for ``rows`` (each with its reason); the record is kept as JSON."""
    records = [json.dumps(r, default=str, sort_keys=True) for r in rows.to_pylist()]
    n = rows.num_rows
    return pa.Table.from_arrays(
        [
            pa.array([pipeline] * n, pa.string()),
            pa.array([table] * n, pa.string()),
            pa.array(reasons.tolist(), pa.string()),
            pa.array([detail] * n, pa.string()),
            pa.array([source_path] * n, pa.string()),
            pa.array(records, pa.string()),
        ],
        schema=DEAD_LETTER,
    )


def file_dead_letter(*, pipeline: str, table: str, source_path: str, detail: str) -> pa.Table:
    """One dead-letter row for a whole file that could not be (fully) read."""
    return pa.Table.from_pylist(
        [
            {
                "pipeline": pipeline,
                "table": table,
                "reason": "unreadable_file",
                "detail": detail,
                "source_path": source_path,
                "record_json": None,
            }
        ],
        schema=DEAD_LETTER,
    )


def validate_log_rows(
    rows: pa.Table,
    table: str,
    logging_day: datetime.date,
    reference: ReferenceIds | None,
    *,
    allowed_lateness_days: int,
    source_path: str,
    pipeline: str,
) -> CheckedRows:
    """Split rows of raw log ``table`` logged on ``logging_day`` into valid rows and dead letters.

    With ``reference=None`` only the structural checks run (null ids, timestamps): the snapshots of one day cannot
    judge rows logged on another (a show launched the day after is unknown to today's snapshot, yet real).
    Only the columns present in ``rows`` are checked, so a projected read checks what it read.
    """
    # The first failed check of a row is its reason. Codes, not strings: comparing an object array with "" once
    # per check cost ~1 s of a bench day.
    reason_code = np.zeros(rows.num_rows, np.int8)
    reasons = [""]

    def flag(mask: np.ndarray, why: str) -> None:
        reasons.append(why)
        reason_code[mask & (reason_code == 0)] = len(reasons) - 1

    for field in load_schema(table).required_fields:
        if field in rows.column_names:
            flag(rows.column(field).is_null().to_numpy(zero_copy_only=False), f"null_{field}")
    ts = rows.column("event_ts").to_numpy()
    start = day_start_ms(logging_day) - allowed_lateness_days * MS_PER_DAY
    end = day_start_ms(logging_day) + MS_PER_DAY
    flag((ts < start) | (ts >= end), "bad_timestamp")
    for column, kind, why in _REFERENCED if reference is not None else ():
        if column in rows.column_names:
            values = pc.fill_null(rows.column(column), -1).to_numpy()
            flag(~getattr(reference, kind).contains(values), why)
    bad = reason_code != 0
    if not bad.any():
        return CheckedRows(rows, DEAD_LETTER.empty_table())
    rejected = dead_letters(
        rows.filter(pa.array(bad)),
        np.array(reasons, dtype=object)[reason_code[bad]],
        pipeline=pipeline,
        table=table,
        source_path=source_path,
    )
    return CheckedRows(rows.filter(pa.array(~bad)), rejected)

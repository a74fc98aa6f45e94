"""Realistic defects planted into the simulated logs, each kind counted so tests can check they are caught.

With ``dirty_rate = r``, every row of a log partition independently falls into at most one defect kind, each with
probability ``r`` (so a row never carries two defects and the counts add up):

- ``null_id``: one required id (see ``podtarget.required`` in the schema) is null;
- ``unknown_id``: the user (or show) id refers to nobody in the dimension snapshots;
- ``bad_timestamp``: ``event_ts`` is the epoch or far in the future;
- ``late``: the row is logged one or two days after its event day (moved to a later partition);
- ``duplicate``: the row is logged twice with the same ids (the original stays clean);
- ``orphan_click``: extra clicks whose ``impression_id`` was never served (click table only);
- ``truncated_file``: one part file is cut short after it is written (see :func:`truncated_file_target`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..schemas import LOG_TABLES, load_schema
from .config import DIRT_KINDS, WorldConfig
from .world import rng_for

Columns = dict[str, np.ndarray]
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
UNKNOWN_ID_OFFSET = 1_000_000_000  # ids far above any real entity's id
_ROW_KINDS = ("null_id", "unknown_id", "bad_timestamp", "late", "duplicate")
assert set(_ROW_KINDS) | {"orphan_click", "truncated_file"} == set(DIRT_KINDS)


def truncated_file_target(config: WorldConfig) -> tuple[int, str, int] | None:
    """``(shard, table, day offset)`` of the one part file that is truncated, or None for a clean world."""
    if config.dirty_rate <= 0:
        return None
    return 0, "stream", config.n_days // 2


class DirtPlanter:
    """Plants row-level defects into one shard's partitions.

    Args:
        config: the world; ``config.dirty_rate`` is the probability of each defect kind per row.
        shard: the shard being simulated (seeds the defects).
        defer: ``defer(table, rows, day) -> bool`` logs rows in a later partition; False when that day is past
            the simulated horizon (the row then stays on time).
    """

    def __init__(self, config: WorldConfig, shard: int, defer: Callable[[str, Columns, int], bool]) -> None:
        self.config = config
        self.shard = shard
        self.defer = defer

    def plant(self, table: str, cols: Columns, day: int) -> tuple[Columns, dict[str, int]]:
        rate = self.config.dirty_rate
        if rate <= 0:
            return cols, {}
        rng = rng_for(self.config.seed, 2, self.shard, day, LOG_TABLES.index(table))
        n = len(cols["event_ts"])
        draw = rng.random(n)
        kind_of = {kind: (draw >= i * rate) & (draw < (i + 1) * rate) for i, kind in enumerate(_ROW_KINDS)}
        counts = {kind: 0 for kind in _ROW_KINDS}
        cols = {k: v.copy() for k, v in cols.items()}

        rows = np.flatnonzero(kind_of["null_id"])
        if len(rows):
            required = load_schema(table).required_fields
            which = rng.integers(0, len(required), size=len(rows))
            for field_index, name in enumerate(required):
                target = rows[which == field_index]
                if len(target):
                    cols[name] = cols[name].astype(object)
                    cols[name][target] = None
            counts["null_id"] = len(rows)

        rows = np.flatnonzero(kind_of["unknown_id"])
        if len(rows):
            field = np.where(("podcast_id" in cols) & (rng.random(len(rows)) < 0.5), "podcast_id", "user_id")
            for name in ("user_id", "podcast_id"):
                target = rows[field == name]
                if len(target):
                    cols[name][target] = UNKNOWN_ID_OFFSET + rng.integers(0, 1_000_000, size=len(target))
            counts["unknown_id"] = len(rows)

        rows = np.flatnonzero(kind_of["bad_timestamp"])
        if len(rows):
            cols["event_ts"][rows] = np.where(rng.random(len(rows)) < 0.5, 0, FAR_FUTURE_MS)
            counts["bad_timestamp"] = len(rows)

        duplicates = np.flatnonzero(kind_of["duplicate"])
        late = np.flatnonzero(kind_of["late"])
        keep = ~kind_of["late"]
        if len(late):
            delay = rng.integers(1, 3, size=len(late))
            for k in (1, 2):
                moved = late[delay == k]
                if len(moved) and self.defer(table, {c: v[moved] for c, v in cols.items()}, day + k):
                    counts["late"] += len(moved)
                else:
                    keep[moved] = True  # past the horizon: stays on time
        out = {c: np.concatenate([v[keep], v[duplicates]]) for c, v in cols.items()}
        counts["duplicate"] = len(duplicates)

        if table == "click":
            n_orphans = int(rng.binomial(n, rate)) if n else 0
            if n_orphans:
                template = np.flatnonzero(~kind_of["null_id"] & ~kind_of["bad_timestamp"])[:1]
                if len(template):
                    orphans = {c: np.repeat(v[template], n_orphans) for c, v in out.items()}
                    orphans["impression_id"] = np.array(
                        [f"orphan{x:010x}" for x in rng.integers(0, 2**40, size=n_orphans)], dtype=object
                    )
                    orphans["event_id"] = np.array(
                        [f"orphan{x:010x}" for x in rng.integers(2**40, 2**41, size=n_orphans)], dtype=object
                    )
                    out = {c: np.concatenate([v, orphans[c]]) for c, v in out.items()}
                    counts["orphan_click"] = n_orphans
        return out, {k: v for k, v in counts.items() if v}

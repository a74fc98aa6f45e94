"""The on-disk layout of every dataset: a public contract that all pipelines follow.

Paths are plain strings joined with ``/`` so they work for local folders and ``gs://bucket/prefix`` alike::

    >>> raw_partition("gs://b/p", "stream", datetime.date(2026, 1, 2))
    'gs://b/p/raw/stream/dt=2026-01-02'

Layout under ``DATA_ROOT``::

    raw/<table>/dt=YYYY-MM-DD/part-NNNNN.avro     logs and daily dimension snapshots (Avro, schemas/avro)
    world/                                        the simulator's config, ground truth and run summary
    features/{user,podcast}/dt=YYYY-MM-DD/        point-in-time feature snapshots (Parquet, schemas/derived.py)
    examples/dt=YYYY-MM-DD/                       labeled multi-task examples (Parquet, schemas/derived.py)
    deadletter/<pipeline>/dt=YYYY-MM-DD/          rejected records with their reason (Parquet)

Derived partitions are committed whole: written to a staging folder, then swapped in, with ``_SUCCESS.json`` (the
run's counts) written last, so a partition with that marker is complete.
"""

from __future__ import annotations

import datetime
import re

PART_PREFIX = "part-"
AVRO_SUFFIX = ".avro"
_DT_RE = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


def join(root: str, *parts: str) -> str:
    """Join path components with ``/`` (works for local and ``gs://`` roots)."""
    out = root.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def dt_dir(day: datetime.date) -> str:
    return f"dt={day.isoformat()}"


def parse_dt(path: str) -> datetime.date:
    """The partition day in a path containing ``dt=YYYY-MM-DD``."""
    match = _DT_RE.search(path)
    if not match:
        raise ValueError(f"path {path!r} has no dt=YYYY-MM-DD partition component")
    return datetime.date.fromisoformat(match.group(1))


def raw_table(root: str, table: str) -> str:
    return join(root, "raw", table)


def raw_partition(root: str, table: str, day: datetime.date) -> str:
    return join(raw_table(root, table), dt_dir(day))


def part_file(partition: str, shard: int, suffix: str = AVRO_SUFFIX) -> str:
    return join(partition, f"{PART_PREFIX}{shard:05d}{suffix}")


def raw_glob(root: str, table: str, day: datetime.date) -> str:
    """Glob of the finished part files of one partition (temporary files never match)."""
    return join(raw_partition(root, table, day), f"{PART_PREFIX}*{AVRO_SUFFIX}")


def world_dir(root: str) -> str:
    return join(root, "world")


PARQUET_SUFFIX = ".parquet"
SUCCESS_MARKER = "_SUCCESS.json"
# The key of the marker that lists the partition's file names, relative to its folder: readers read only those
# (a swap interrupted on an object store leaves the other version's files beside them; see
# podtarget.transforms.runtime.storage.commit_partition).
MANIFEST_KEY = "files"


def feature_partition(root: str, entity: str, day: datetime.date) -> str:
    if entity not in ("user", "podcast"):
        raise ValueError(f"feature entity must be 'user' or 'podcast', got {entity!r}")
    return join(root, "features", entity, dt_dir(day))


def examples_partition(root: str, day: datetime.date) -> str:
    return join(root, "examples", dt_dir(day))


def deadletter_partition(root: str, pipeline: str, day: datetime.date) -> str:
    return join(root, "deadletter", pipeline, dt_dir(day))


def shuffle_dir(root: str, pipeline: str, day: datetime.date, run_id: str) -> str:
    """Run-private scratch of a daily run's file-backed shuffle; deleted when the run ends."""
    return join(root, "_shuffle", pipeline, f"{dt_dir(day)}-{run_id}")


def decode_cache_dir(root: str) -> str:
    """Decoded copies of raw part files (``_cache/decoded/<table>/dt=D/``); see
    ``podtarget.transforms.runtime.decode_cache``."""
    return join(root, "_cache", "decoded")


def success_marker(partition: str) -> str:
    return join(partition, SUCCESS_MARKER)


def audience_partition(root: str, day: datetime.date, fmt: str = "parquet") -> str:
    """``audiences/dt=D`` (Parquet) or ``avro/audiences/dt=D`` (Avro): per campaign, its users ranked by score
    (pipelines/score.py). One folder per format, so ``pyarrow.parquet.read_table`` of the folder works."""
    return join(root, *_format_folder(fmt), "audiences", dt_dir(day))


def user_ranking_partition(root: str, day: datetime.date, fmt: str = "parquet") -> str:
    """``user_rankings/dt=D`` (Parquet) or ``avro/user_rankings/dt=D`` (Avro): per user, the top-N campaigns."""
    return join(root, *_format_folder(fmt), "user_rankings", dt_dir(day))


def _format_folder(fmt: str) -> tuple[str, ...]:
    if fmt not in ("parquet", "avro"):
        raise ValueError(f"format must be 'parquet' or 'avro', got {fmt!r}")
    return () if fmt == "parquet" else ("avro",)


# The command that rebuilds a day of each derived table, by the table's folder under the data root.
_REBUILT_BY = {
    "features": "make features DATE={day}",
    "examples": "make examples DATE={day} (UNOBSERVED=1 if its labels are immature)",
    "audiences": "make score DATE={day}",
    "user_rankings": "make score DATE={day}",
    "avro": "make score DATE={day}",
}


def rebuild_hint(path: str) -> str:
    """What rebuilds the derived partition ``path`` is in, for an error about one of its files, e.g.
    ``rebuild that day: make features DATE=2026-03-05``."""
    match = _DT_RE.search(path)
    folders = path[: match.start()].rstrip("/").split("/") if match else []
    for folder in reversed(folders):
        if folder in _REBUILT_BY and match:
            return "rebuild that day: " + _REBUILT_BY[folder].format(day=match.group(1))
    return "rebuild the partition it belongs to"


# Everything under a data root that is derived from raw/ (and world/): replacing the world makes all of it stale.
DERIVED_FOLDERS = ("features", "examples", "deadletter", "audiences", "user_rankings", "avro", "_cache", "_shuffle")


def derived_dirs(root: str) -> list[str]:
    """The folders of derived data under ``root`` (see :data:`DERIVED_FOLDERS`)."""
    return [join(root, name) for name in DERIVED_FOLDERS]

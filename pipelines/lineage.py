"""What a derived partition was built from, so that "complete" means complete *for the inputs there are now*.

A daily partition's ``_SUCCESS.json`` records ``inputs``: a fingerprint of every raw file the run read (path under
the data root, size, modification time), the dimension snapshots of the days involved, the derived partitions it
joined (their own ``_SUCCESS.json``), the world's configuration when there is one, and the settings that change
its content. ``pipelines/backfill.py`` recomputes the fingerprint a run would read today and rebuilds a
partition whose recorded one differs: a re-simulated world, a rewritten or late-arriving log file, new log days
that now cover an immature day's windows, or features rebuilt under its examples. Partitions written before
fingerprints were recorded count as stale.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from apache_beam.io.filesystems import FileSystems

from ..common.days import parse_day
from ..schemas import SNAPSHOT_TABLES, layout
from ..transforms.runtime.storage import list_files_with_metadata, read_bytes


def _digest(items: Iterable[str]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def fingerprint(
    data_root: str,
    files: Sequence[tuple[str, int, float]],
    snapshot_days: Iterable[str],
    settings: Mapping,
    derived: Sequence[str] = (),
) -> dict:
    """The inputs of one run: ``files`` ((path, size, modified) read), the snapshot tables of ``snapshot_days``
    (ISO days), the ``_SUCCESS.json`` of each ``derived`` partition joined, the world configuration and
    ``settings``. Equal fingerprints mean the same inputs."""
    root = data_root.rstrip("/") + "/"
    snapshots = [
        entry
        for day in sorted(set(snapshot_days))
        for table in SNAPSHOT_TABLES
        for entry in list_files_with_metadata(layout.raw_glob(data_root, table, parse_day(day)))
    ]
    listed = sorted(
        {(p[len(root) :] if p.startswith(root) else p, int(s), float(m)) for p, s, m in [*files, *snapshots]}
    )
    world = layout.join(layout.world_dir(data_root), "config.json")
    return {
        "files": len(listed),
        "bytes": sum(s for _, s, _ in listed),
        "files_sha256": _digest(f"{p}\t{s}\t{m:.3f}" for p, s, m in listed),
        "world_config_sha256": hashlib.sha256(read_bytes(world)).hexdigest()[:20]
        if FileSystems.exists(world)
        else None,
        "settings_sha256": _digest([json.dumps(settings, sort_keys=True, default=str)]),
        "derived_sha256": _digest(
            hashlib.sha256(read_bytes(layout.success_marker(p))).hexdigest()
            if FileSystems.exists(layout.success_marker(p))
            else f"{p}: missing"
            for p in derived
        ),
    }


def plan_fingerprint(
    data_root: str, day: datetime.date, files: Sequence, settings: Mapping, derived: Sequence[str] = ()
) -> dict:
    r"""The :func:`fingerprint` of a daily run of ``day`` that reads the planned ``files`` (``FileSpec``\ s): their
    versions, the snapshots of ``day`` and of every day they were logged, ``settings`` and the ``derived``
    partitions it joins."""
    used = [(f.path, f.size_bytes, f.modified) for f in files]
    return fingerprint(data_root, used, {day.isoformat(), *(f.day for f in files)}, settings, derived)


def stale_reason(recorded: Mapping | None, current: Mapping) -> str | None:
    """Why a partition whose ``_SUCCESS.json`` holds ``recorded`` (its ``inputs``) is out of date against the
    ``current`` fingerprint; None when it is up to date."""
    if not recorded:
        return "built before inputs were recorded"
    changed = [
        what
        for key, what in (
            ("world_config_sha256", "another world"),
            ("files_sha256", "raw files changed or arrived"),
            ("derived_sha256", "the features it joins were rebuilt"),
            ("settings_sha256", "other settings"),
        )
        if recorded.get(key) != current.get(key)
    ]
    return ", ".join(changed) if changed else None

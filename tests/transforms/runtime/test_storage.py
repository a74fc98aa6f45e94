import json

import pyarrow as pa
import pytest
from apache_beam.io.filesystems import FileSystems

from podtarget.schemas import layout
from podtarget.transforms.runtime.storage import (
    atomic_write,
    commit_partition,
    list_files,
    new_run_id,
    parquet_bytes,
    partition_files,
    read_parquet_files,
    read_success,
    staging_dir,
    use_system_allocator,
)


def test_the_system_allocator_is_used_unless_arrow_is_told_otherwise(monkeypatch):
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
        use_system_allocator()
        assert pa.default_memory_pool().backend_name == "mimalloc"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        use_system_allocator()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


# -- committing partitions ----------------------------------------------------------------------------------------


def _stage(partition: str, version: str, n_parts: int) -> str:
    staging = staging_dir(partition, new_run_id())
    for k in range(n_parts):
        rows = pa.table({"version": [version] * 3, "part": [k] * 3})
        atomic_write(layout.join(staging, f"part-{k:05d}.parquet"), parquet_bytes(rows))
    return staging


def _read_version(partition: str) -> set[str]:
    """The versions a reader of the partition sees (through its marker)."""
    files = partition_files(partition, ".parquet")
    return set(read_parquet_files(files).column("version").to_pylist()) if files else set()


@pytest.fixture(params=["local", "gcs"])
def table_root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "table")
    return f"{request.getfixturevalue('gcs_emulator')}/commit-{new_run_id()}"


def test_a_commit_replaces_the_partition_and_its_marker_lists_its_files(table_root):
    partition = layout.join(table_root, "dt=2026-03-03")
    commit_partition(_stage(partition, "old", 3), partition, {"rows": 9})
    commit_partition(_stage(partition, "new", 2), partition, {"rows": 6})
    assert _read_version(partition) == {"new"}
    marker = read_success(partition)
    assert marker["rows"] == 6 and len(marker["files"]) == 2
    on_disk = sorted(p.rsplit("/", 1)[1] for p in list_files(layout.join(partition, "*")))
    assert on_disk == sorted([*marker["files"], "_SUCCESS.json"])  # nothing of the old version is left
    assert not list_files(layout.join(table_root, "_staging", "**"))


def test_a_crash_at_any_step_of_a_commit_leaves_one_whole_version_readable(table_root, monkeypatch):
    """Fail the k-th storage operation of a commit, for every k: a reader then sees all of the old partition or
    all of the new one, and the next commit cleans up whatever the crash stranded."""
    partition = layout.join(table_root, "dt=2026-03-03")
    real = {name: getattr(FileSystems, name) for name in ("rename", "delete", "create")}
    step = 0
    after_crash = []
    while True:
        commit_partition(_stage(partition, "old", 3), partition, {"rows": 9})
        staging = _stage(partition, "new", 2)
        calls = {"n": 0}
        crash_at = step + 1

        def failing(name, calls=calls, crash_at=crash_at):
            def call(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == crash_at:
                    raise OSError(f"crash at storage step {crash_at} ({name})")
                return real[name](*args, **kwargs)

            return staticmethod(call)

        for name in real:
            monkeypatch.setattr(FileSystems, name, failing(name))
        try:
            commit_partition(staging, partition, {"rows": 6})
            crashed = False
        except OSError:
            crashed = True
        finally:
            for name, fn in real.items():
                monkeypatch.setattr(FileSystems, name, fn)
        version = _read_version(partition)
        assert version in ({"old"}, {"new"}), (crash_at, version)
        if not crashed:
            assert version == {"new"}
            break
        after_crash.append(version)
        step += 1
    assert len(after_crash) >= 2  # the commit has several steps, and each was crashed once
    if table_root.startswith("gs://"):
        # Crashes while copying the new files in leave the old version; crashes after the marker, the new one.
        assert {"old"} in after_crash and {"new"} in after_crash, after_crash
    commit_partition(_stage(partition, "next", 1), partition, {"rows": 3})
    marker = read_success(partition)
    on_disk = sorted(p.rsplit("/", 1)[1] for p in list_files(layout.join(partition, "*")))
    assert on_disk == sorted([*marker["files"], "_SUCCESS.json"]) and _read_version(partition) == {"next"}


def test_partitions_committed_before_markers_listed_files_are_read_by_glob(tmp_path):
    partition = str(tmp_path / "dt=2026-03-03")
    atomic_write(f"{partition}/part-00000.parquet", parquet_bytes(pa.table({"version": ["legacy"]})))
    atomic_write(f"{partition}/_SUCCESS.json", json.dumps({"rows": 1}).encode())
    assert _read_version(partition) == {"legacy"}
    assert partition_files(str(tmp_path / "dt=2026-03-04")) == []  # not committed: nothing to read

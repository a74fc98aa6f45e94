import json
import os

import pyarrow as pa
import pytest
from apache_beam.io.filesystems import FileSystems

from podtarget.schemas import layout
from podtarget.transforms.runtime import storage
from podtarget.transforms.runtime.storage import (
    atomic_write,
    commit_partition,
    list_files,
    new_run_id,
    parquet_bytes,
    partition_files,
    read_parquet_files,
    read_success,
    remove_dead_runs,
    run_is_dead,
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


def _run_id_of_an_ended_process() -> str:
    """A run id made by another process, which has exited since: the id of a run that died."""
    import subprocess
    import sys

    command = "from podtarget.transforms.runtime.storage import new_run_id; print(new_run_id())"
    return subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True).stdout.strip()


# -- a local commit killed between its steps ------------------------------------------------------------------------
_KILLED_COMMIT = """
import os, sys
from podtarget.transforms.runtime import storage

staging, partition, kill_at = sys.argv[1:]
real_exchange, real_delete, real_write = storage.exchange_folders, storage.delete_tree, storage.atomic_write


def exchange_then_die(a, b):
    if kill_at == "before_exchange":
        os._exit(9)  # a crash right before the swap: the marker is written into the staging folder
    assert real_exchange(a, b)
    if kill_at == "after_exchange":
        os._exit(9)  # a crash after the swap, before the old version is deleted
    return True


def no_exchange(a, b):
    return False  # a filesystem that cannot exchange two folders: the object-store scheme, locally


def write_then_die(path, data):
    partition_marker = path == partition + "/_SUCCESS.json"
    if kill_at == "before_marker" and partition_marker:
        os._exit(9)  # the new files are in, under names of their own; the old marker still rules
    real_write(path, data)
    if kill_at == "after_marker" and partition_marker:
        os._exit(9)  # the new marker rules; the old files are still there


if kill_at in ("before_marker", "after_marker"):
    storage.exchange_folders = no_exchange
    storage.atomic_write = write_then_die
else:
    storage.exchange_folders = exchange_then_die
storage.commit_partition(staging, partition, {"rows": 6})
"""


@pytest.mark.parametrize(
    "kill_at, seen",
    [
        ("before_exchange", {"old"}),
        ("after_exchange", {"new"}),
        ("before_marker", {"old"}),
        ("after_marker", {"new"}),
    ],
)
def test_a_local_commit_killed_between_its_steps_leaves_the_old_or_the_new_partition(tmp_path, kill_at, seen):
    """A real crash (the process exits mid-commit, no cleanup runs) at each point between the steps of a local
    commit: with the atomic exchange of the two folders, and with the object-store scheme a filesystem without it
    gets. A reader sees one whole version, and the next run of the day deletes what the crash left."""
    import subprocess
    import sys

    partition = str(tmp_path / "table" / "dt=2026-03-03")
    commit_partition(_stage(partition, "old", 3), partition, {"rows": 9})
    script = tmp_path / "killed_commit.py"
    script.write_text(_KILLED_COMMIT)
    # The killed commit runs in a process of its own, as a pipeline run would: its run id names that process.
    staging = _run_id_of_an_ended_process()
    staging = staging_dir(partition, staging)
    for k in range(2):
        rows = pa.table({"version": ["new"] * 3, "part": [k] * 3})
        atomic_write(layout.join(staging, f"part-{k:05d}.parquet"), parquet_bytes(rows))
    killed = subprocess.run([sys.executable, str(script), staging, partition, kill_at], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert _read_version(partition) == seen
    assert read_success(partition)["rows"] == (9 if seen == {"old"} else 6)
    # The next run of the day deletes the dead run's folder (the unused staging folder, or the swapped-out old
    # version) before it stages its own, and its commit deletes the files of the other version.
    if kill_at in ("before_exchange", "after_exchange"):
        assert os.path.isdir(staging)
        assert remove_dead_runs(str(tmp_path / "table" / "_staging"), "dt=2026-03-03") == [staging]
        assert not os.path.exists(staging)
    commit_partition(_stage(partition, "next", 1), partition, {"rows": 3})
    on_disk = sorted(p.rsplit("/", 1)[1] for p in list_files(layout.join(partition, "*")))
    assert on_disk == sorted([*read_success(partition)["files"], "_SUCCESS.json"])
    assert _read_version(partition) == {"next"}


def test_a_local_commit_exchanges_the_folders_and_keeps_the_part_names(tmp_path, monkeypatch):
    partition = str(tmp_path / "dt=2026-03-03")
    commit_partition(_stage(partition, "old", 3), partition, {"rows": 9})
    staging = _stage(partition, "new", 2)
    commit_partition(staging, partition, {"rows": 6})
    assert read_success(partition)["files"] == ["part-00000.parquet", "part-00001.parquet"]
    assert not os.path.exists(staging) and _read_version(partition) == {"new"}
    # Where the filesystem cannot exchange folders, the object-store scheme: new names, same guarantees.
    monkeypatch.setattr(storage, "exchange_folders", lambda a, b: False)
    commit_partition(_stage(partition, "newer", 1), partition, {"rows": 3})
    assert _read_version(partition) == {"newer"} and len(read_success(partition)["files"]) == 1
    assert read_success(partition)["files"][0].startswith("part-00000-")


def test_only_the_scratch_of_dead_runs_is_removed(table_root):
    import subprocess
    import sys

    dead = _run_id_of_an_ended_process()
    assert run_is_dead(dead)  # its process has exited
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = f"{live.pid}-{dead.split('-')[1]}-abcdef"
        mine = new_run_id()
        other_machine = f"{live.pid + 1}-000000-abcdef"
        folder = layout.join(table_root, "_staging")
        names = [f"dt=2026-03-03-{r}" for r in (dead, alive, mine, other_machine, "0123456789ab")]
        names.append(f"dt=2026-03-04-{dead}")  # another day: not this run's business
        for name in names:
            atomic_write(layout.join(folder, name, "part-00000.parquet"), b"x")
        assert not run_is_dead(alive) and not run_is_dead(mine) and not run_is_dead(other_machine)
        assert remove_dead_runs(folder, "dt=2026-03-03") == [layout.join(folder, f"dt=2026-03-03-{dead}")]
        left = {p[len(folder) + 1 :].split("/")[0] for p in list_files(layout.join(folder, "**"))}
        assert left == set(names[1:])
    finally:
        live.kill()
        live.wait()

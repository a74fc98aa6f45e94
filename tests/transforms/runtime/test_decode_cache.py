"""The decode cache returns exactly what decoding returns, follows rewrites of the raw file, and prunes old days."""

import datetime
import os
import shutil

import pyarrow as pa
import pytest

from podtarget.schemas import layout
from podtarget.transforms.beam.raw_input import read_spec
from podtarget.transforms.runtime.day_inputs import plan_files
from podtarget.transforms.runtime.decode_cache import DecodeCache
from podtarget.transforms.runtime.storage import list_files, read_avro_as_arrow

COLUMNS = ["event_id", "user_id", "podcast_id", "event_ts", "ms_played"]


@pytest.fixture
def world(clean_tiny_world, tmp_path):
    """A private copy of the tiny world's raw streams (the tests rewrite files)."""
    root, _ = clean_tiny_world
    copy = tmp_path / "data"
    shutil.copytree(os.path.join(root, "raw", "stream"), copy / "raw" / "stream")
    return str(copy)


def _specs(root: str):
    days = sorted({layout.parse_dt(p) for p in list_files(f"{root}/raw/stream/dt=*/part-*.avro")})
    return days, plan_files(root, [("stream", "stream", days, True)])


@pytest.mark.parametrize("columns", [None, COLUMNS[1:3]])
def test_a_cached_read_equals_a_decode(world, columns):
    _, specs = _specs(world)
    cache = DecodeCache(f"{world}/_cache/decoded")
    spec = specs[0]
    direct = read_avro_as_arrow(spec.path, "stream", columns).table
    first = read_spec(spec, columns, cache).table  # decodes and stores
    assert list_files(f"{world}/_cache/decoded/stream/dt={spec.day}/*.arrow")
    again = read_spec(spec, columns, cache).table  # from the cache
    assert first.equals(direct) and again.equals(direct)
    assert again.schema.equals(direct.schema)


def test_a_rewritten_raw_file_is_decoded_again_and_its_stale_entry_removed(world):
    _, specs = _specs(world)
    cache = DecodeCache(f"{world}/_cache/decoded")
    spec = specs[0]
    read_spec(spec, None, cache)
    # Rewrite the raw file with another file's content (new size and modification time), as a re-ingest would.
    other = specs[1]
    shutil.copyfile(other.path, spec.path)
    os.utime(spec.path, (spec.modified + 10, spec.modified + 10))
    _, replanned = _specs(world)
    fresh = next(s for s in replanned if s.path == spec.path)
    assert (fresh.size_bytes, fresh.modified) != (spec.size_bytes, spec.modified)
    rows = read_spec(fresh, None, cache).table
    assert rows.equals(read_avro_as_arrow(other.path, "stream").table)
    entries = list_files(f"{world}/_cache/decoded/stream/dt={spec.day}/{spec.path.rsplit('/', 1)[-1]}.*")
    assert entries == [cache.entry("stream", fresh.day, fresh.path, fresh.size_bytes, fresh.modified)]


def test_a_damaged_entry_is_decoded_again(world):
    _, specs = _specs(world)
    cache = DecodeCache(f"{world}/_cache/decoded")
    spec = specs[0]
    read_spec(spec, None, cache)
    entry = cache.entry("stream", spec.day, spec.path, spec.size_bytes, spec.modified)
    with open(entry, "wb") as handle:
        handle.write(b"not an Arrow IPC file")
    assert read_spec(spec, None, cache).table.equals(read_avro_as_arrow(spec.path, "stream").table)


def test_a_corrupt_raw_file_is_never_cached(world):
    _, specs = _specs(world)
    spec = specs[0]
    with open(spec.path, "r+b") as handle:
        handle.truncate(os.path.getsize(spec.path) // 2)
    _, replanned = _specs(world)
    spec = next(s for s in replanned if s.path == spec.path)
    cache = DecodeCache(f"{world}/_cache/decoded")
    result = read_spec(spec, None, cache)
    assert result.error is not None
    assert not list_files(f"{world}/_cache/decoded/**")


def test_prune_deletes_only_days_before_the_cutoff(world):
    days, specs = _specs(world)
    cache = DecodeCache(f"{world}/_cache/decoded")
    for spec in specs:
        read_spec(spec, None, cache)
    assert cache.prune_before(days[1]) == 1
    left = {layout.parse_dt(p) for p in list_files(f"{world}/_cache/decoded/stream/dt=*/*")}
    assert left == set(days[1:])
    assert cache.prune_before(datetime.date(2000, 1, 1)) == 0


def test_an_entry_with_another_schema_is_not_trusted(tmp_path):
    """E.g. written under an older contract: the reader decodes again rather than return other types."""
    from podtarget.transforms.runtime.decode_cache import _ipc_bytes, _read_entry
    from podtarget.transforms.runtime.storage import atomic_write

    path = str(tmp_path / "x.arrow")
    atomic_write(path, _ipc_bytes(pa.table({"user_id": pa.array([1, None], pa.int32())})))
    assert _read_entry(path, "stream", ["user_id"]) is None
    assert _read_entry(path, "stream", ["user_id", "podcast_id"]) is None  # a column it lacks


def test_entries_of_the_older_parquet_format_are_replaced(world):
    from podtarget.transforms.runtime.storage import atomic_write, parquet_bytes

    _, specs = _specs(world)
    cache = DecodeCache(f"{world}/_cache/decoded")
    spec = specs[0]
    entry = cache.entry("stream", spec.day, spec.path, spec.size_bytes, spec.modified)
    old = entry.rsplit(".", 1)[0] + ".parquet"
    atomic_write(old, parquet_bytes(read_avro_as_arrow(spec.path, "stream").table))
    assert read_spec(spec, None, cache).table.equals(read_avro_as_arrow(spec.path, "stream").table)
    assert list_files(f"{old.rsplit('.', 2)[0]}.*") == [entry]

"""The file-backed user-bucket shuffle: the rows a bucket gets back are exactly what Beam's shuffle would carry."""

import numpy as np
import pyarrow as pa
import pytest

from podtarget.transforms.arrow.bucketing import split_by_bucket
from podtarget.transforms.runtime.shuffle import (
    BucketEmitter,
    ShuffleFiles,
    SpilledRows,
    load_rows,
    removed_afterwards,
    rows_by_role,
    write_buckets,
)


def _rows(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": rng.integers(1, 500, n),
            "event_id": [f"e{i}" for i in range(n)],
            "tags": [[f"t{i % 3}"] * (i % 4) for i in range(n)],
        }
    )


def test_each_bucket_reads_back_the_rows_beam_would_have_carried(tmp_path):
    table = _rows(2_000)
    spilled = write_buckets(table, "user_id", 8, str(tmp_path / "00001-stream.arrow"))
    in_beam = split_by_bucket(table, "user_id", 8)
    assert [b for b, _ in spilled] == [b for b, _ in in_beam]
    for (_, ref), (_, rows) in zip(spilled, in_beam, strict=True):
        assert ref.num_rows == rows.num_rows
        assert load_rows(ref).equals(rows)
    assert sum(ref.num_rows for _, ref in spilled) == table.num_rows
    assert len(list(tmp_path.iterdir())) == 1  # one file per writer, one batch per bucket


def test_an_empty_table_writes_nothing(tmp_path):
    assert write_buckets(_rows(0), "user_id", 8, str(tmp_path / "x.arrow")) == []
    assert not list(tmp_path.iterdir())


def test_emitter_without_a_folder_keeps_tables_in_beams_shuffle():
    table = _rows(300)
    parts = BucketEmitter(4, None).split(table, "any")
    assert all(isinstance(rows, pa.Table) for _, rows in parts)
    assert load_rows(parts[0][1]) is parts[0][1]


def test_rows_by_role_mixes_references_and_tables(tmp_path):
    a, b = _rows(50, 1), _rows(60, 2)
    (_, ref), *_ = write_buckets(a, "user_id", 1, str(tmp_path / "a.arrow"))
    grouped = rows_by_role([("stream", ref), ("users", b), ("stream", b)])
    assert sorted(grouped) == ["stream", "users"]
    assert grouped["stream"][0].equals(a) and grouped["stream"][1].equals(b)


def test_a_changed_shuffle_file_is_an_error_not_wrong_rows(tmp_path):
    path = str(tmp_path / "a.arrow")
    (_, ref), *_ = write_buckets(_rows(50), "user_id", 1, path)
    with pytest.raises(ValueError, match="holds 50 rows, expected 51"):
        load_rows(SpilledRows(path, ref.batch, 51))


def test_the_folder_is_removed_even_when_the_run_fails(tmp_path):
    folder = tmp_path / "_shuffle" / "run"
    with pytest.raises(RuntimeError), removed_afterwards(str(folder)) as scratch:
        write_buckets(_rows(10), "user_id", 2, f"{scratch}/a.arrow")
        assert folder.exists()
        raise RuntimeError("pipeline failed")
    assert not folder.exists()


def test_round_trip_through_gcs(gcs_emulator):
    table = _rows(1_000)
    folder = f"{gcs_emulator}/shuffle-test/run"
    with removed_afterwards(folder):
        spilled = write_buckets(table, "user_id", 4, f"{folder}/00000-stream.arrow")
        back = pa.concat_tables([load_rows(ref) for _, ref in spilled])
    assert back.num_rows == table.num_rows
    assert sorted(back.column("event_id").to_pylist()) == sorted(table.column("event_id").to_pylist())
    from podtarget.transforms.runtime.storage import list_files

    assert not list_files(f"{folder}/**")


def test_write_behind_writes_every_part_and_reraises_a_failed_write(tmp_path):
    from podtarget.transforms.runtime.storage import WriteBehind, read_parquet

    writer = WriteBehind(threads=2)
    for i in range(5):
        writer.submit(str(tmp_path / f"part-{i:05d}.parquet"), _rows(100, i))
    writer.wait()
    assert read_parquet(str(tmp_path / "part-*.parquet")).num_rows == 500
    writer.submit(str(tmp_path / "missing-folder" / "x" / "part.parquet"), "not a table")
    with pytest.raises(AttributeError, match="no attribute 'schema'"):  # the encoder's error reaches the bundle
        writer.wait()
    writer.close()
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        WriteBehind(threads=0)


def test_open_shuffle_files_are_reused_per_thread_and_closed(tmp_path):
    rows = pa.table({"user_id": pa.array(range(200), pa.int64()), "v": pa.array(range(200), pa.int64())})
    parts = write_buckets(rows, "user_id", 4, str(tmp_path / "a.arrow"))
    files = ShuffleFiles()
    back = pa.concat_tables([load_rows(ref, files) for _, ref in parts])
    assert back.sort_by("user_id").equals(rows)
    assert len(files._readers) == 1  # one file, one thread: opened once for its four batches
    by_role = rows_by_role([("r", ref) for _, ref in parts], files)
    assert sum(t.num_rows for t in by_role["r"]) == 200
    files.close()
    assert not files._readers
    # Closed files are reopened on demand.
    assert load_rows(parts[0][1], files).num_rows == parts[0][1].num_rows

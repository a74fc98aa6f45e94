"""Reading plans (the order files are read in), logging order and first occurrences."""

import numpy as np
import pyarrow as pa
import pytest

from podtarget.transforms.beam.raw_input import first_occurrences, in_logging_order, largest_first
from podtarget.transforms.runtime.day_inputs import FileSpec


def _spec(index: int, size: int) -> FileSpec:
    return FileSpec("stream", "2026-03-02", f"/raw/{index}.avro", "stream", True, index, size)


def test_files_are_read_largest_first_and_deterministically_on_ties():
    files = [_spec(i, size) for i, size in enumerate([5, 100, 7, 90, 5])]
    assert [(f.size_bytes, f.index) for f in largest_first(files)] == [(100, 1), (90, 3), (7, 2), (5, 0), (5, 4)]


def _part(day: int, file: int, rows: list[int], ids: list[str | None]) -> pa.Table:
    n = len(rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "_pday": pa.array([day] * n, pa.int16()),
            "_file": pa.array([file] * n, pa.int32()),
            "_row": pa.array(rows, pa.int32()),
        }
    )


def test_parts_of_one_file_each_are_ordered_by_their_first_row():
    parts = [_part(1, 0, [0, 3], ["c", "d"]), _part(0, 5, [1, 2], ["a", "b"]), _part(0, 7, [0], ["e"])]
    ordered = in_logging_order(parts)
    assert ordered.column("id").to_pylist() == ["a", "b", "e", "c", "d"]


def test_many_shuffled_parts_come_out_as_a_full_sort_would_order_them():
    rng = np.random.default_rng(3)
    parts = []
    for file in range(40):
        rows = np.sort(rng.choice(1_000, rng.integers(1, 30), replace=False)).tolist()
        parts.append(_part(int(rng.integers(0, 3)), file, rows, [f"{file}-{r}" for r in rows]))
    parts += [_part(0, 99, [5], ["x"]).slice(0, 0)]  # empty parts are ignored
    rng.shuffle(parts)
    expected = pa.concat_tables(parts).sort_by([(c, "ascending") for c in ("_pday", "_file", "_row")])
    assert in_logging_order(parts).equals(expected)
    in_order = sorted(parts, key=lambda p: tuple(p.slice(0, 1).to_pylist()[0].values())[1:] if p.num_rows else ())
    assert in_logging_order(in_order).equals(expected)


def test_parts_mixing_files_are_sorted_row_by_row():
    mixed = pa.concat_tables([_part(0, 2, [0], ["x"]), _part(0, 1, [4], ["y"])])
    ordered = in_logging_order([mixed, _part(0, 1, [9], ["z"]), _part(0, 1, [0], ["w"]).slice(0, 0)])
    assert ordered.column("id").to_pylist() == ["y", "z", "x"]
    with pytest.raises(ValueError, match="at least one non-empty part"):
        in_logging_order([mixed.slice(0, 0)])


def test_first_occurrences_keep_the_first_row_of_each_id_nulls_included():
    table = _part(0, 0, list(range(7)), ["a", "b", "a", None, "c", None, "b"])
    assert first_occurrences(table, "id").tolist() == [True, True, False, True, True, False, False]
    assert first_occurrences(table.slice(0, 0), "id").tolist() == []
    ids = np.random.default_rng(0).integers(0, 500, 5_000).astype(str)
    expected = np.zeros(len(ids), bool)
    expected[np.unique(ids, return_index=True)[1]] = True
    assert np.array_equal(first_occurrences(pa.table({"id": ids}), "id"), expected)


def test_a_hash_collision_falls_back_to_the_ids_themselves(monkeypatch):
    import podtarget.transforms.beam.raw_input as raw_input

    table = _part(0, 0, list(range(5)), ["a", "b", "a", "c", "b"])
    # Every id hashes alike: the hashes call rows 1-4 repeats, the check against row 0 refutes it.
    monkeypatch.setattr(raw_input, "_string_hashes", lambda ids: pa.array(np.zeros(len(ids), np.uint64)))
    assert first_occurrences(table, "id").tolist() == [True, True, False, True, False]

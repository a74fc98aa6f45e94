"""Reading plans: files grouped for threaded reads."""

import pytest

from transforms.raw_input import FileSpec, file_groups


def _spec(index: int, size: int) -> FileSpec:
    return FileSpec("stream", "2026-03-02", f"/raw/{index}.avro", "stream", True, index, size)


def test_groups_pair_files_of_similar_size_and_keep_every_file():
    files = [_spec(i, size) for i, size in enumerate([5, 100, 7, 90, 1])]
    groups = file_groups(files, 2)
    assert [[f.size_bytes for f in g] for g in groups] == [[100, 90], [7, 5], [1]]
    assert sorted(f.index for g in groups for f in g) == list(range(5))


def test_groups_are_deterministic_on_equal_sizes():
    files = [_spec(i, 10) for i in range(4)]
    assert [[f.index for f in g] for g in file_groups(files, 3)] == [[0, 1, 2], [3]]


def test_group_size_must_be_positive():
    with pytest.raises(ValueError, match="group size must be >= 1, got 0"):
        file_groups([], 0)

"""IdSet answers exactly what np.isin answers, positions_of what a dictionary of first positions answers, for dense
ids, sparse (hashed) keys and edge values; rows_where filters only when something is dropped."""

import pickle

import numpy as np
import pyarrow as pa
import pytest

from podtarget.transforms.arrow.arrays import IdSet, isin_sorted, positions_of, rows_where, sorted_unique
from podtarget.transforms.arrow.bucketing import pair_keys


@pytest.mark.parametrize(
    "ids",
    [
        np.arange(1, 50_001, dtype=np.int64),  # dense: user ids
        np.array([3, 7, 7, 1_000, 65_000], dtype=np.int64),  # small span, duplicates
        pair_keys(np.arange(20_000, dtype=np.int64), np.arange(20_000, dtype=np.int64) % 97),  # hashed uint64
        np.random.default_rng(1).integers(-(2**62), 2**62, 30_000),  # sparse, negative too
    ],
    ids=["dense", "small", "pair_keys", "sparse_signed"],
)
def test_contains_matches_np_isin(ids):
    rng = np.random.default_rng(0)
    members = rng.choice(ids, 5_000)
    if ids.dtype == np.uint64:
        others = rng.integers(0, 2**63, 20_000).astype(np.uint64)
    else:
        others = np.concatenate([rng.integers(-5, 70_000, 10_000), rng.integers(-(2**62), 2**62, 10_000)])
    values = np.concatenate([members, others.astype(ids.dtype)])
    rng.shuffle(values)
    known = IdSet(ids)
    expected = np.isin(values, ids)
    assert np.array_equal(known.contains(values), expected)
    assert np.array_equal(isin_sorted(values, sorted_unique(ids)), expected)


def test_empty_sets_and_queries():
    assert IdSet(np.array([], np.int64)).contains(np.array([1, 2])).tolist() == [False, False]
    assert IdSet(np.array([1, 2])).contains(np.array([], np.int64)).tolist() == []


def test_the_index_is_not_pickled_and_is_rebuilt():
    known = IdSet(np.arange(0, 10**7, 7, dtype=np.int64))
    known.contains(np.array([7, 8]))
    copy = pickle.loads(pickle.dumps(known))
    assert len(pickle.dumps(known)) < known.ids.nbytes + 1_000
    assert copy.contains(np.array([14, 15, -7])).tolist() == [True, False, False]


def test_only_integer_ids():
    with pytest.raises(TypeError, match="IdSet holds integer ids, got an array of <U1"):
        IdSet(np.array(["a"]))


@pytest.mark.parametrize(
    "ids",
    [
        np.arange(50_000, 0, -1, dtype=np.int64),  # dense, unsorted (the direct table)
        np.array([3, 7, 7, 1_000, 3], dtype=np.int64),  # duplicates: the first position wins
        np.random.default_rng(2).integers(-(2**62), 2**62, 5_000),  # sparse (the binary search)
    ],
    ids=["dense", "duplicates", "sparse_signed"],
)
def test_positions_of_gives_each_key_its_first_position(ids):
    first: dict[int, int] = {}
    for position, value in enumerate(ids.tolist()):
        first.setdefault(value, position)
    rng = np.random.default_rng(0)
    keys = np.concatenate([rng.choice(ids, 2_000), rng.integers(-10, 60_000, 2_000), np.array([-(2**63), 2**63 - 1])])
    expected = np.array([first.get(k, -1) for k in keys.tolist()])
    np.testing.assert_array_equal(positions_of(keys, ids), expected)
    assert positions_of(keys, ids[:0]).tolist() == [-1] * len(keys)
    assert positions_of(keys[:0], ids).tolist() == []
    with pytest.raises(TypeError, match="integer keys and ids"):
        positions_of(keys.astype(float), ids)


def test_rows_where_returns_the_table_itself_when_nothing_is_dropped():
    table = pa.table({"x": [1, 2, 3]})
    assert rows_where(table, np.ones(3, bool)) is table
    assert rows_where(table, np.array([True, False, True])).column("x").to_pylist() == [1, 3]
    with pytest.raises(ValueError, match="2 values for a table of 3 rows"):
        rows_where(table, np.ones(2, bool))

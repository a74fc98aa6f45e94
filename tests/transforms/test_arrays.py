"""IdSet answers exactly what np.isin answers, for dense ids, sparse (hashed) keys and edge values."""

import pickle

import numpy as np
import pytest

from transforms.arrays import IdSet, isin_sorted, sorted_unique
from transforms.bucketing import pair_keys


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

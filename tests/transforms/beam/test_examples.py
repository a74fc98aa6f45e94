"""SortedUnion: the distinct values of every array, sorted, in a pipeline as in a direct call."""

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from podtarget.transforms.beam.examples import FirstTimeByPair, SortedUnion


def test_sorted_union_in_a_pipeline_matches_np_unique():
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 1_000, 300).astype(np.uint64) for _ in range(7)] + [np.zeros(0, np.uint64)]
    expected = np.unique(np.concatenate(parts))

    def check(outputs):
        (union,) = outputs
        assert np.array_equal(union, expected), (union[:5], expected[:5])

    with TestPipeline("FnApiRunner") as pipeline:
        union = pipeline | beam.Create(parts) | beam.CombineGlobally(SortedUnion(np.uint64))
        assert_that(union, check)


def test_sorted_union_of_strings_and_of_nothing():
    fn = SortedUnion(str)
    accumulator = fn.merge_accumulators(
        [fn.add_input(fn.create_accumulator(), np.array(["b", "a"])), [np.array(["a", "c"])]]
    )
    assert fn.extract_output(accumulator).tolist() == ["a", "b", "c"]
    assert len(fn.extract_output(fn.create_accumulator())) == 0


def test_sorted_union_of_nothing_keeps_the_ids_kind():
    # An empty day's pair keys must still be integer ids (IdSet refuses floats): the day used to crash here.
    empty = SortedUnion(np.uint64).extract_output([np.zeros(0, np.uint64)])
    assert empty.dtype == np.uint64 and len(empty) == 0
    assert SortedUnion(str).extract_output([]).dtype.kind == "U"


def test_first_time_by_pair_keeps_each_pairs_earliest_timestamp():
    fn = FirstTimeByPair()
    parts = [
        (np.array([5, 3, 5], np.uint64), np.array([50, 30, 40], np.int64)),
        (np.array([3, 9], np.uint64), np.array([20, 90], np.int64)),
    ]
    accumulator = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), parts[0]), [parts[1]]])
    keys, first = fn.extract_output(accumulator)
    assert keys.tolist() == [3, 5, 9] and first.tolist() == [20, 40, 90]
    empty_keys, empty_first = fn.extract_output(fn.create_accumulator())
    assert empty_keys.dtype == np.uint64 and len(empty_keys) == len(empty_first) == 0

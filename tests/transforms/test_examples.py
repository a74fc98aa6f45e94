"""SortedUnion: the distinct values of every array, sorted, in a pipeline as in a direct call."""

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from transforms.examples import SortedUnion


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

"""The daily pipelines' shared composites: the day's inputs, files read one element each, and the per-bucket step
over rows grouped from several readers."""

import datetime

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from podtarget.transforms.beam.shared_steps import ComputeUserBuckets, LoadDayInputs, ReadEachFile

DAY = datetime.date(2026, 3, 3)


class SplitByBucketFn(beam.DoFn):
    """A file name -> (bucket, (role, rows)) for each character, and a count of what it read."""

    def process(self, name: str):
        for i, char in enumerate(name):
            yield i % 2, ("letters", char)
        yield pvalue.TaggedOutput("counts", {"read": len(name)})


class JoinBucketFn(beam.DoFn):
    def process(self, element, suffix: str):
        bucket, items = element
        yield bucket, "".join(sorted(rows for _, rows in items)) + suffix
        yield pvalue.TaggedOutput("sizes", len(items))


def test_day_inputs_are_loaded_from_the_iso_day_under_their_names():
    with TestPipeline("FnApiRunner") as pipeline:
        inputs = pipeline | LoadDayInputs(DAY, {"Length": len, "Year": lambda day: int(day[:4])})
        assert_that(inputs["Length"], equal_to([len("2026-03-03")]), label="CheckLength")
        assert_that(inputs["Year"], equal_to([2026]), label="CheckYear")


def test_rows_of_several_readers_meet_per_bucket_with_the_side_inputs():
    with TestPipeline("FnApiRunner") as pipeline:
        first = pipeline | "First" >> ReadEachFile(["abc", "de"], SplitByBucketFn(), "counts")
        second = pipeline | "Second" >> ReadEachFile(["fg"], SplitByBucketFn(), "counts")
        suffix = pipeline | "Suffix" >> beam.Create(["!"])
        built = (first.rows, second.rows) | ComputeUserBuckets(
            JoinBucketFn(), pvalue.AsSingleton(suffix), outputs=("sizes",)
        )
        assert_that(built.main, equal_to([(0, "acdf!"), (1, "beg!")]), label="CheckBuckets")
        assert_that(built["sizes"], equal_to([4, 3]), label="CheckSizes")
        assert_that(first["counts"], equal_to([{"read": 3}, {"read": 2}]), label="CheckCounts")

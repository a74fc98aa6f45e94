"""ComputesBuckets: every unit emitted once, in arrival order, counted and written, on threads or in worker
processes; failures fail the bundle."""

import os
import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam import pvalue
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from podtarget.transforms.runtime.bucket_work import BucketResult, ComputesBuckets


class SquareBucket(ComputesBuckets, beam.DoFn):
    """Emits (bucket, bucket * factor) and a tagged count, writes one part per bucket; slow on even buckets so
    that threads finish out of order."""

    counter_namespace = "test"

    def __init__(self, out_dir: str, threads: int, processes: int = 0) -> None:
        self.out_dir = out_dir
        self.threads = threads
        self.processes = processes

    def compute_bucket(self, element: int, factor: int) -> BucketResult:
        if element % 2 == 0:
            time.sleep(0.01)
        table = pa.table({"bucket": [element] * element})
        return BucketResult(
            outputs=[(element, element * factor), pvalue.TaggedOutput("counts", element)],
            parts=[(f"{self.out_dir}/part-{element:03d}.parquet", table)] if element else [],
            counters={"rows": element},
        )


def _run(tmp_path, threads: int, processes: int = 0):
    pipeline = test_pipeline.TestPipeline("FnApiRunner")
    factor = pipeline | "Factor" >> beam.Create([3])
    out = (
        pipeline
        | beam.Create(list(range(12)))
        | beam.ParDo(SquareBucket(str(tmp_path), threads, processes), beam.pvalue.AsSingleton(factor)).with_outputs(
            "counts", main="main"
        )
    )
    assert_that(out.main, equal_to([(b, 3 * b) for b in range(12)]), label="Main")
    assert_that(out.counts, equal_to(list(range(12))), label="Counts")
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("rows"))["counters"]
    return sum(c.committed for c in counters)


@pytest.mark.parametrize("threads, processes", [(1, 0), (2, 0), (3, 0), (1, 2)])
def test_every_bucket_is_emitted_counted_and_written_whatever_the_threads(tmp_path, threads, processes):
    assert _run(tmp_path, threads, processes) == sum(range(12))
    for bucket in range(1, 12):
        assert pq.read_table(tmp_path / f"part-{bucket:03d}.parquet").num_rows == bucket
    assert not (tmp_path / "part-000.parquet").exists()


def _drain(fn: SquareBucket, elements) -> tuple[list, list]:
    fn.setup()
    fn.start_bundle()
    processed = [o for e in elements for o in fn.process(e, 2)]
    finished = list(fn.finish_bundle())
    fn.teardown()
    return processed, finished


# In flight when the bundle ends: threads - 1 buckets on threads, 2 per worker - 1 in worker processes.
@pytest.mark.parametrize("threads, processes, in_flight", [(3, 0, 2), (1, 2, 3)])
def test_outputs_keep_the_order_of_their_elements(tmp_path, threads, processes, in_flight):
    processed, finished = _drain(SquareBucket(str(tmp_path), threads, processes), range(9))
    # Outputs of finish_bundle carry the global window, tagged or not.
    assert len(finished) == 2 * in_flight  # each bucket emits two outputs
    assert all(hasattr(o.value if isinstance(o, pvalue.TaggedOutput) else o, "windows") for o in finished)
    unwrapped = processed + [o.value if hasattr(o, "windows") else o for o in finished]
    assert [o for o in unwrapped if not isinstance(o, pvalue.TaggedOutput)] == [(b, 2 * b) for b in range(9)]


class FailingBucket(SquareBucket):
    def compute_bucket(self, element: int, factor: int) -> BucketResult:
        if element == 4:
            raise OSError("disk full (simulated)")
        return super().compute_bucket(element, factor)


@pytest.mark.parametrize("threads, processes", [(1, 0), (2, 0), (1, 2)])
def test_a_failing_bucket_fails_the_bundle(tmp_path, threads, processes):
    with pytest.raises(OSError, match="disk full"):
        _drain(FailingBucket(str(tmp_path), threads, processes), range(8))


class WhereComputed(SquareBucket):
    def compute_bucket(self, element: int, factor: int) -> BucketResult:
        return BucketResult(outputs=[os.getpid()])


def test_worker_processes_compute_the_buckets_and_stop_with_the_bundle(tmp_path):
    fn = WhereComputed(str(tmp_path), threads=1, processes=2)
    fn.setup()
    fn.start_bundle()
    pids = [o for e in range(6) for o in fn.process(e, 1)]
    pids += [o.value for o in fn.finish_bundle()]
    assert len(pids) == 6 and os.getpid() not in pids and 1 <= len(set(pids)) <= 2
    assert fn._workers is None  # stopped with the bundle: they held its side inputs
    fn.teardown()


def test_threads_and_processes_are_checked(tmp_path):
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        SquareBucket(str(tmp_path), threads=0).setup()
    with pytest.raises(ValueError, match="processes must be >= 0"):
        SquareBucket(str(tmp_path), threads=1, processes=-1).setup()

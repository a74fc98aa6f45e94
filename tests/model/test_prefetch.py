"""The background batch producer: order, errors, and a close that leaves no thread running."""

import itertools
import threading

import pytest

from podtarget.model.data.prefetch import background


def test_items_arrive_in_order_and_an_error_is_raised_in_the_consumer():
    def produce():
        yield from range(5)
        raise ValueError("bad row group")

    batches = background(produce, prefetch=2)
    assert [next(batches) for _ in range(5)] == list(range(5))
    with pytest.raises(ValueError, match="bad row group"):
        next(batches)
    assert not batches.thread.is_alive()


def test_close_waits_for_a_producer_blocked_on_a_full_queue():
    started = threading.Event()

    def produce():
        started.set()
        yield from itertools.count()  # endless: the producer only stops when told

    batches = background(produce, prefetch=1)
    started.wait(5)
    assert next(batches) == 0
    batches.close()
    # Joined, not merely told: a thread left decoding at interpreter exit can abort the process.
    assert not batches.thread.is_alive()

"""A generator run in a background thread with a bounded queue, so that reading overlaps training:

>>> for item in background(produce, prefetch=6): ...
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Prefetcher:
    """Runs a generator in a daemon thread, from construction on, with a bounded queue; re-raises its exception
    in the consumer. ``timer.wait_seconds`` (if given) accumulates the time the consumer waited. Starting at
    construction lets the next epoch's reading overlap this epoch's validation."""

    _DONE = object()

    def __init__(self, produce: Callable[[], Iterator[Any]], prefetch: int, timer: Any = None):
        self.queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop = threading.Event()
        self.timer = timer
        self.finished = False
        self.thread = threading.Thread(target=self._work, args=(produce,), name="batch-producer", daemon=True)
        self.thread.start()

    def _work(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in produce():
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it with its traceback
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self.finished:
            raise StopIteration
        started = time.perf_counter()
        item = self.queue.get()
        if self.timer is not None:
            self.timer.wait_seconds += time.perf_counter() - started
        if item is self._DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.finished = True
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop the producer (e.g. when training stops early) and wait until it has left its current item.

        Waiting matters at exit: a daemon thread still decoding Parquet inside pyarrow while the interpreter shuts
        down can abort the whole process (SIGABRT) after the run's work is done."""
        self.stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join()


def background(produce: Callable[[], Iterator[Any]], prefetch: int, timer: Any = None) -> Prefetcher:
    return Prefetcher(produce, prefetch, timer)

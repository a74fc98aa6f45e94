"""Per-bucket work of the daily pipelines, computed on threads and written behind.

A bucket DoFn (examples or user features) spends its time in pyarrow and numpy kernels, most of which release the
GIL, and in Parquet encoding, which releases it entirely. On a local runner one bundle holds many buckets and runs
them on one thread, so a second core sits idle; :class:`ComputesBuckets` lets the DoFn compute up to ``threads``
buckets side by side and write their parts behind, while Beam sees an ordinary DoFn:

- the DoFn implements :meth:`ComputesBuckets.compute_bucket`, a pure function of its element and side inputs that
  returns a :class:`BucketResult` (what it would have yielded, the Parquet parts to write, counter increments);
- results are emitted in the order their elements arrived, from the bundle's own thread, so outputs (and files
  gathered from them, such as dead letters) do not depend on the thread count, and Beam's metrics, which live in
  the bundle's thread, see every increment;
- ``finish_bundle`` waits for every bucket and every write, so a failure fails the bundle and its retry redoes it;
- ``self.shuffle_files`` keeps the bundle's shuffle files open across its buckets (pass it to
  :func:`podtarget.transforms.runtime.shuffle.rows_by_role`); they are closed when the bundle ends.

With ``threads=1`` nothing runs on another thread except the write of the previous part.

**Worker processes** (``processes > 0``). Threads share one GIL, and on a bench day the GIL is held for two thirds
of the run, so a second thread bought ~6%. With ``processes=N`` the units are computed in N worker processes
instead, each with its own GIL; a worker writes its own parts and sends back only outputs and counter increments,
which the bundle's thread emits in arrival order as before. The workers are forked from a clean server process
(multiprocessing's ``forkserver``, which has imported the pipeline modules once, see
:mod:`podtarget.transforms.runtime.worker_server`): never from the SDK process itself, whose threads (Beam's, Arrow's,
polars') a plain ``fork`` would leave half-copied. A bundle starts its workers when its first element arrives, with the
DoFn and the bundle's side inputs, and stops them in ``finish_bundle``. Use it where one process would otherwise do all
the work (the in-process DirectRunner); runners that already run an SDK process per core (multi_processing, Dataflow,
Flink) gain nothing from it.

Workers never outlive the process they work for: a watch thread in each checks the driver twice a second and ends
the worker when the driver is gone, even killed by SIGKILL (a worker blocked on its task queue would otherwise wait
forever: it holds a copy of that queue's writing end, and of the server's liveness pipe, so neither ever closes).
With the workers gone the server exits too; should the server itself die first, Linux's parent-death signal ends its
workers. On Ctrl-C, which reaches the whole process group, a worker exits at once and quietly: the command reports
the interruption.

    >>> class CountRows(ComputesBuckets, beam.DoFn):            # doctest: +SKIP
    ...     def compute_bucket(self, element):
    ...         bucket, table = element
    ...         return BucketResult(outputs=[table.num_rows], parts=[(f"out/part-{bucket}.parquet", table)])
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from apache_beam import pvalue
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from . import worker_server
from .shuffle import ShuffleFiles
from .storage import WriteBehind, atomic_write, parquet_bytes, use_system_allocator

# Attributes a bundle creates at run time: never pickled with the DoFn (see ComputesBuckets.__getstate__).
_RUNTIME_ATTRIBUTES = ("_compute_pool", "_workers", "_writer", "_pending", "shuffle_files")


@dataclass
class BucketResult:
    """What one bucket produced.

    Attributes:
        outputs: the elements the DoFn emits (plain values or ``pvalue.TaggedOutput``), in order.
        parts: Parquet parts to write, ``(path, table)``.
        counters: increments of the DoFn's counters (in its ``counter_namespace``), by name.
    """

    outputs: list = field(default_factory=list)
    parts: list[tuple[str, pa.Table]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


class ComputesBuckets:
    """Mixin for a ``beam.DoFn`` whose elements are independent buckets; see the module docstring.

    The DoFn sets ``threads`` (buckets computed at once; one part is written behind them), ``processes`` (0: in
    this process; N: in N worker processes, see the module docstring) and ``counter_namespace``, and implements
    ``compute_bucket(element, *side_inputs) -> BucketResult``. Side inputs are passed positionally. An element
    may be any independent unit of work: a user bucket, or one file to read.
    """

    threads: int = 1
    processes: int = 0
    counter_namespace: str = "podtarget"

    def compute_bucket(self, element, *side_inputs) -> BucketResult:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in _RUNTIME_ATTRIBUTES}

    def setup(self) -> None:
        use_system_allocator()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0 (0: compute in this process), got {self.processes}")
        threaded = self.threads > 1 and not self.processes
        self._compute_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="bucket") if threaded else None
        self._workers: ProcessPoolExecutor | None = None
        # One part written behind at a time: Parquet encoding is a small share of a bucket's work, and each part
        # waiting to be written is a whole bucket's output in memory (two waiting peaked 5-10% higher).
        self._writer = WriteBehind(1)
        self._pending: collections.deque[Future] = collections.deque()
        self.shuffle_files = ShuffleFiles()

    def start_bundle(self) -> None:
        # A bundle that failed in process() may have left buckets in flight: they belong to no bundle now.
        self._discard_pending()
        self._stop_workers()  # and its workers hold that bundle's side inputs

    def process(self, element, *side_inputs) -> Iterator:
        if self.processes:
            if self._workers is None:
                self._workers = _start_workers(self, side_inputs)
            self._pending.append(self._workers.submit(_compute_in_worker, element))
            # Two units per worker in flight: one computing, one queued, so no worker waits for the next.
            while len(self._pending) >= 2 * self.processes:
                yield from self._emit(self._pending.popleft().result())
            return
        if self._compute_pool is None:
            yield from self._emit(self.compute_bucket(element, *side_inputs))
            return
        self._pending.append(self._compute_pool.submit(self.compute_bucket, element, *side_inputs))
        # At most `threads` buckets in flight: their tables are what the DoFn holds in memory.
        while len(self._pending) >= self.threads:
            yield from self._emit(self._pending.popleft().result())

    def finish_bundle(self) -> Iterator:
        try:
            while self._pending:
                # Outputs of finish_bundle carry their window explicitly; buckets live in the global window.
                for output in self._emit(self._pending.popleft().result()):
                    if isinstance(output, pvalue.TaggedOutput):
                        yield pvalue.TaggedOutput(output.tag, _in_global_window(output.value))
                    else:
                        yield _in_global_window(output)
        finally:
            self._discard_pending()
            self._stop_workers()
            self.shuffle_files.close()
            self._writer.wait()

    def _stop_workers(self) -> None:
        workers, self._workers = getattr(self, "_workers", None), None
        if workers is not None:
            workers.shutdown(cancel_futures=True)

    def _discard_pending(self) -> None:
        for future in self._pending:
            future.cancel()
        for future in self._pending:
            if not future.cancelled():
                future.exception()  # wait: a bucket still computing must not outlive its bundle
        self._pending.clear()

    def teardown(self) -> None:
        self._stop_workers()
        compute_pool = getattr(self, "_compute_pool", None)
        if compute_pool is not None:
            compute_pool.shutdown(cancel_futures=True)
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
        if getattr(self, "shuffle_files", None) is not None:
            self.shuffle_files.close()

    def _emit(self, result: BucketResult) -> Iterator:
        for path, table in result.parts:
            self._writer.submit(path, table)
        for name, value in result.counters.items():
            Metrics.counter(self.counter_namespace, name).inc(value)
        yield from result.outputs


def _in_global_window(value) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, (GlobalWindow(),))


# -- worker processes ----------------------------------------------------------------------------------------------
_worker_state: tuple | None = None  # in a worker: (the DoFn, the bundle's side inputs)


def _start_workers(fn: ComputesBuckets, side_inputs: tuple) -> ProcessPoolExecutor:
    worker_server.start([type(fn).__module__])
    return ProcessPoolExecutor(
        fn.processes,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(fn, side_inputs, dict(os.environ), os.getpid()),
    )


def _init_worker(fn: ComputesBuckets, side_inputs: tuple, environ: dict[str, str], driver: int) -> None:
    global _worker_state
    end_with_driver(driver)
    # A worker is forked from the server, which kept the environment of its own start: take this process's now
    # (credentials, an emulator host, anything set since), as a worker forked from here would have.
    os.environ.clear()
    os.environ.update(environ)
    use_system_allocator()
    fn.shuffle_files = ShuffleFiles()  # the worker's own open shuffle files, closed when it exits
    _worker_state = (fn, side_inputs)


def _compute_in_worker(element) -> BucketResult:
    """Compute one unit in a worker and write its parts there: only outputs and counters travel back."""
    assert _worker_state is not None, "not in a worker process: _start_worker sets the state"
    fn, side_inputs = _worker_state
    result = fn.compute_bucket(element, *side_inputs)
    for path, table in result.parts:
        atomic_write(path, parquet_bytes(table))
    return BucketResult(outputs=result.outputs, counters=result.counters)


# -- a worker's life is its driver's --------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1
DRIVER_CHECK_SECONDS = 0.5


def end_with_driver(driver: int) -> None:
    """Make this worker end when ``driver`` (the process it computes for) dies, and exit quietly on Ctrl-C.

    A daemon thread checks the driver every :data:`DRIVER_CHECK_SECONDS` and ends the worker once it is gone (nothing
    else would: the worker holds copies of the pipes whose closing would tell it). Linux's parent-death signal
    (``PR_SET_PDEATHSIG``) also ends it if its parent, the worker server, dies first.
    """
    signal.signal(signal.SIGINT, _exit_quietly)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the server (worker_server.start)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watch thread alone
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(target=_watch_driver, args=(driver,), name="watch-driver", daemon=True).start()


def _exit_quietly(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def _watch_driver(driver: int) -> None:
    while process_alive(driver):
        time.sleep(DRIVER_CHECK_SECONDS)
    os._exit(1)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: it exists

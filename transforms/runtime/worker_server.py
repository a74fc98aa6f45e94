"""The server that the daily pipelines' worker processes are forked from, and when there is one.

Worker processes (see :mod:`podtarget.transforms.runtime.bucket_work`) are forked from multiprocessing's ``forkserver``:
a clean process that imports the pipeline modules once (Beam, pyarrow, polars: ~2 s), so that each worker starts in
milliseconds. This module decides whether a run wants workers and starts the server (it imports only the standard
library). The daily commands start it first thing in their ``main()``
(:func:`podtarget.pipelines.daily_options.start_worker_server`), so that it imports while the command plans its day; a
run started otherwise gets it when its first bundle needs a worker.

    >>> workers_wanted("DirectRunner", "in_memory", "auto", cores=2)
    2
    >>> workers_wanted("DataflowRunner", None, "auto", cores=8)
    0
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Sequence

# The daily pipelines' DoFn modules: what their workers need imported (bucket_work brings Beam and pyarrow).
DAILY_WORKER_MODULES = (
    "podtarget.transforms.runtime.bucket_work",
    "podtarget.transforms.beam.examples",
    "podtarget.transforms.beam.feature_snapshots",
)
IN_PROCESS_RUNNERS = (None, "DirectRunner", "direct", "SwitchingDirectRunner", "FnApiRunner")

_preloaded: list[str] = []


def workers_wanted(runner: str | None, running_mode: str | None, value: str, cores: int | None = None) -> int:
    """Worker processes for ``--bucket_processes=value``: ``auto`` is one per core where the runner runs the whole
    pipeline in this process (the in-process DirectRunner, unless ``multi_processing``), else 0."""
    if value == "auto":
        cores = cores if cores is not None else (os.cpu_count() or 1)
        in_process = runner in IN_PROCESS_RUNNERS and running_mode != "multi_processing"
        return cores if in_process and cores > 1 else 0
    try:
        processes = int(value)
    except (TypeError, ValueError):
        processes = -1
    if processes < 0:
        raise ValueError(f"--bucket_processes must be auto or a number >= 0, got {value!r}")
    return processes


def start(modules: Sequence[str] = ()) -> None:
    """Start the server (once per process), having it import ``modules`` and :data:`DAILY_WORKER_MODULES`.

    The modules are fixed when the server starts: later calls add nothing, and a module it lacks is imported by
    each worker that needs it.
    """
    for module in (*DAILY_WORKER_MODULES, *modules):
        if module not in _preloaded:
            _preloaded.append(module)
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(_preloaded))
    from multiprocessing import forkserver

    # Ctrl-C is the command's to handle, not the server's: started with SIGINT blocked (a blocked signal stays
    # blocked across exec, in any thread), the server cannot be interrupted while it imports (which printed an
    # import traceback), and its workers inherit the mask until they choose (bucket_work._init_worker).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

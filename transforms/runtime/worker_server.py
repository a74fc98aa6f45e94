"""The server that the daily pipelines' worker processes are forked from, and when there is one.

Worker processes (see :mod:`podtarget.transforms.runtime.bucket_work`) are forked from multiprocessing's ``forkserver``:
a clean process that imports the pipeline modules once (Beam, pyarrow, polars: ~2 s), so that each worker starts in
milliseconds. This module decides whether a run wants workers and starts the server; it imports only the standard
library, so that a command can start the server before it imports Beam itself (see ``pipelines/__init__.py``):
the two imports then overlap, where a server started after this process's own imports kept the first bundle that
needed a worker waiting ~0.8 s.

    >>> workers_wanted("DirectRunner", "in_memory", "auto", cores=2)
    2
    >>> workers_wanted("DataflowRunner", None, "auto", cores=8)
    0
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence

# The daily pipelines' DoFn modules: what their workers need imported (bucket_work brings Beam and pyarrow).
DAILY_WORKER_MODULES = (
    "podtarget.transforms.runtime.bucket_work",
    "podtarget.transforms.beam.examples",
    "podtarget.transforms.beam.feature_snapshots",
)
# The commands that run the daily pipelines (``python -m <module>``).
DAILY_COMMANDS = (
    "podtarget.pipelines.backfill",
    "podtarget.pipelines.build_features",
    "podtarget.pipelines.build_examples",
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

    forkserver.ensure_running()


def start_for_command(command_line: Sequence[str]) -> bool:
    """Start the server now if ``command_line`` (``sys.orig_argv``) runs a daily pipeline whose options want
    workers; returns whether it did. Only ``python -m <daily command>`` qualifies, and only the options' plain
    spellings are read (``--opt=value`` or ``--opt value``): anything else leaves the start to the pipeline itself,
    which only costs the overlap."""
    args = list(command_line)
    if "-m" not in args or args.index("-m") + 1 >= len(args) or args[args.index("-m") + 1] not in DAILY_COMMANDS:
        return False
    options = args[args.index("-m") + 2 :]

    def value(name: str, default: str | None) -> str | None:
        found = default
        for i, arg in enumerate(options):
            if arg.startswith(f"--{name}="):
                found = arg.split("=", 1)[1]
            elif arg == f"--{name}" and i + 1 < len(options):
                found = options[i + 1]
        return found

    try:
        wanted = workers_wanted(
            value("runner", None), value("direct_running_mode", None), value("bucket_processes", "auto")
        )
    except ValueError:
        return False  # the pipeline reports the bad value itself
    if wanted:
        start()
    return bool(wanted)

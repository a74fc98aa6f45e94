"""Run a command as a child process and measure it: wall time and the peak memory of its process tree.

Two memory figures, because a pipeline may run in several processes (multi_processing SDK workers, or the
daily pipelines' worker processes and the server they are forked from):

- ``peak_rss_mb``: the largest resident set of any one process of the tree (``getrusage(RUSAGE_CHILDREN)``, the
  kernel's own high-water mark: exact, where sampling could miss a short peak). The measuring process makes itself
  the tree's subreaper, so processes orphaned by their parent (a worker server outliving the driver by a moment)
  are still waited for and counted;
- ``peak_tree_pss_mb``: the most the whole tree held at once, as the sum of every process's proportional set size
  (shared pages split between the processes sharing them, so a forked worker's inherited pages count once),
  sampled every 0.2 s with psutil (the tree from ``children(recursive=True)``, each process's PSS from
  ``memory_full_info()``, which reads ``/proc/<pid>/smaps_rollup``) until the last process of the tree ends.

Each measured command runs in its own fresh measuring process: this file run as a script (``python harness.py
cmd...``), so that the measuring process holds nothing but the standard library and psutil, and its
RUSAGE_CHILDREN holds only the measured tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36  # prctl option (linux/prctl.h): orphans of the tree are reparented to us
SAMPLE_S = 0.2
MIB = 1024 * 1024


def measure(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh measuring process; returns ``{"seconds", "peak_rss_mb", "peak_tree_pss_mb",
    "stdout"}``."""
    # -P: benchmarks/ (this file's folder) is not put on the measuring process's sys.path, where its train.py and
    # score.py could shadow a module of the same name.
    out = subprocess.run([sys.executable, "-P", __file__, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        # Errors print as one line, so the command's own stderr goes to a file the line names.
        with tempfile.NamedTemporaryFile("w", prefix="bench-failed-", suffix=".log", delete=False) as log:
            log.write(result["stderr"])
        raise RuntimeError(f"benchmark command failed ({result['rc']}; its stderr: {log.name}): {' '.join(cmd)}")
    return result


def tree_pss_mb(root: psutil.Process) -> float:
    """The summed PSS of every descendant of ``root`` (MiB); processes that end while being read count 0."""
    total = 0
    for process in root.children(recursive=True):
        # Ended, or a zombie, since the tree was listed: it holds nothing now.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_full_info().pss
    return total / MIB


def _probe(cmd: list[str]) -> dict:
    """Run ``cmd`` as a child of this (fresh) process and measure it; see the module docstring."""
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = psutil.Process()
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = [0.0]
    reaped = threading.Event()

    def sample() -> None:
        # Until the last process of the tree is reaped: an orphan outliving the driver still holds memory.
        while not reaped.is_set():
            peak_tree[0] = max(peak_tree[0], tree_pss_mb(me))
            reaped.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    while True:  # reap what the driver left behind, so that its peak is in RUSAGE_CHILDREN
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    reaped.set()
    sampler.join()
    return {
        "rc": child.returncode,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,  # ru_maxrss is in KiB
        "peak_tree_pss_mb": peak_tree[0],
        "stdout": stdout,
        "stderr": stderr[-4000:],
    }


def environment() -> dict:
    """What the figures were measured on."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    except OSError:
        commit = ""
    return {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": commit.strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "max_rss_units": "MiB (peak_rss_mb: ru_maxrss of the largest process; peak_tree_pss_mb: the whole tree)",
    }


def write_report(out_dir: str, name: str, figures: dict) -> pathlib.Path:
    path = pathlib.Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, **environment(), **figures}, indent=2) + "\n")
    return path


def elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 2)


if __name__ == "__main__":  # the measuring process of measure()
    print(json.dumps(_probe(sys.argv[1:])))

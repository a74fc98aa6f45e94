"""Run a command as a child process and measure it: wall time and the peak memory of its process tree.

Two memory figures, because a pipeline may run in several processes (multi_processing SDK workers, or the
daily pipelines' worker processes and the server they are forked from):

- ``peak_rss_mb``: the largest resident set of any one process of the tree (``getrusage(RUSAGE_CHILDREN)``). The
  measuring process makes itself the tree's subreaper, so processes orphaned by their parent (a worker server
  outliving the driver by a moment) are still waited for and counted;
- ``peak_tree_pss_mb``: the most the whole tree held at once, as the sum of every process's proportional set size
  (shared pages split between the processes sharing them, so a forked worker's inherited pages count once),
  sampled every 0.2 s.

Each measured command runs in its own fresh measuring process.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time


def measure(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh measuring process; returns ``{"seconds", "peak_rss_mb", "peak_tree_pss_mb",
    "stdout"}``."""
    probe = (
        "import ctypes, json, os, resource, subprocess, sys, time\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the tree stay ours\n"
        "def tree_pss():\n"
        "    parents = {}\n"
        "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "        try:\n"
        "            stat = open(f'/proc/{pid}/stat').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        parents[int(pid)] = int(stat.rsplit(')', 1)[1].split()[1])\n"
        "    ours, total = {os.getpid()}, 0\n"
        "    for _ in range(8):  # descendants, generation by generation\n"
        "        ours |= {p for p, parent in parents.items() if parent in ours}\n"
        "    for pid in ours - {os.getpid()}:\n"
        "        try:\n"
        "            for line in open(f'/proc/{pid}/smaps_rollup'):\n"
        "                if line.startswith('Pss:'):\n"
        "                    total += int(line.split()[1])\n"
        "        except OSError:\n"
        "            pass\n"
        "    return total / 1024\n"
        "t = time.perf_counter()\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
        "import threading\n"
        "peak_tree = [0.0]\n"
        "def sample():\n"
        "    while p.poll() is None:\n"
        "        peak_tree[0] = max(peak_tree[0], tree_pss())\n"
        "        time.sleep(0.2)\n"
        "sampler = threading.Thread(target=sample, daemon=True)\n"
        "sampler.start()\n"
        "stdout, stderr = p.communicate()\n"
        "s = time.perf_counter() - t\n"
        "sampler.join()\n"
        "while True:  # reap what the driver left behind, so that its peak is in RUSAGE_CHILDREN\n"
        "    try:\n"
        "        os.waitpid(-1, 0)\n"
        "    except ChildProcessError:\n"
        "        break\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': s, 'peak_rss_mb': peak, 'peak_tree_pss_mb': peak_tree[0],"
        " 'stdout': stdout, 'stderr': stderr[-4000:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"benchmark command failed ({result['rc']}): {' '.join(cmd)}\n{result['stderr']}")
    return result


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

"""Run a command as a child process and measure it: wall time and the peak RSS of its process tree.

Peak memory comes from ``getrusage(RUSAGE_CHILDREN)``, the largest resident set of any waited-for descendant
(the driver, or a multi_processing SDK worker), so each measured command runs in its own fresh harness process.
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
    """Run ``cmd`` in a fresh measuring process; returns ``{"seconds", "peak_rss_mb", "stdout"}``."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "s = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': s, 'peak_rss_mb': peak, 'stdout': p.stdout,"
        " 'stderr': p.stderr[-4000:]}))\n"
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
        "max_rss_units": "MiB (getrusage ru_maxrss of the largest process)",
    }


def write_report(out_dir: str, name: str, figures: dict) -> pathlib.Path:
    path = pathlib.Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, **environment(), **figures}, indent=2) + "\n")
    return path


def elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 2)

"""Worker processes end with the command they work for: killed (SIGKILL, nothing runs in the driver) or interrupted
(Ctrl-C reaches the whole process group), while they are in the middle of a unit of work."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import apache_beam as beam
import pytest

from podtarget.transforms.runtime.bucket_work import BucketResult, ComputesBuckets, process_alive

REPO = pathlib.Path(__file__).resolve().parents[3]


class SlowUnit(ComputesBuckets, beam.DoFn):
    """A unit that says which worker took it, then works for a minute (far longer than any test waits)."""

    def __init__(self, out_dir: str, processes: int) -> None:
        self.out_dir = out_dir
        self.processes = processes

    def compute_bucket(self, element: int) -> BucketResult:
        pathlib.Path(self.out_dir, f"worker-{os.getpid()}").write_text(str(element))
        time.sleep(60)
        return BucketResult(outputs=[element])


# A command as the pipelines are: run_cli around a Beam pipeline whose DoFn computes in two worker processes.
DRIVER = """
import logging, sys
import apache_beam as beam
from podtarget.common.cli import configure_logging, run_cli
from tests.transforms.runtime.test_worker_lifetime import SlowUnit

def main():
    with beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([0, 1, 2, 3]) | beam.ParDo(SlowUnit(sys.argv[1], processes=2))

configure_logging(logging.WARNING)
sys.exit(run_cli(main))
"""


def _start_driver(tmp_path) -> tuple[subprocess.Popen, list[int]]:
    """The driver in a session of its own (a terminal's process group), once both workers are inside a unit."""
    out = tmp_path / "workers"
    out.mkdir()
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(out.iterdir())) < 2:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.1)
    return driver, [int(p.name.split("-")[1]) for p in out.iterdir()]


def _server_of(worker: int) -> int:
    """The worker's parent: the server it was forked from."""
    with open(f"/proc/{worker}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if process_alive(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if process_alive(pid)]


@pytest.mark.slow
def test_workers_end_when_their_driver_is_killed(tmp_path):
    driver, workers = _start_driver(tmp_path)
    assert all(process_alive(pid) for pid in workers)
    server = _server_of(workers[0])
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=30)
    # Units of a minute are in flight: only the driver's death can end them this soon. Before, they and their server
    # lived on for good (each worker holds the pipes whose closing would have told it).
    assert _gone_within(workers, 5) == []
    assert _gone_within([server], 5) == []


@pytest.mark.slow
def test_ctrl_c_while_workers_compute_is_one_line_and_ends_them(tmp_path):
    driver, workers = _start_driver(tmp_path)
    server = _server_of(workers[0])
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert err == "interrupted\n", err  # no traceback, no Beam ERROR log, no failure
    assert _gone_within(workers, 5) == []
    assert _gone_within([server], 5) == []

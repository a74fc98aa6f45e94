"""Backfill on a daily schedule: a partition is complete only for the inputs it was built from (a new world, a
rewritten log file, logs that arrive and cover an immature day), rows as they finish, and Ctrl-C."""

import datetime
import io
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from podtarget.pipelines import backfill
from podtarget.schemas import layout
from podtarget.transforms.runtime.storage import read_success
from tests.conftest import simulate

START = datetime.date(2026, 3, 2)
DAYS = [START + datetime.timedelta(days=i) for i in range(4)]
# One-day windows and no lateness: day 1's labels are covered by the logs of day 2.
WINDOWS = [
    "--stream_window_hours=24",
    "--follow_window_days=1",
    "--like_window_days=1",
    "--allowed_lateness_days=0",
    "--runner=FnApiRunner",
    "--n_buckets=2",
]
REPO = pathlib.Path(__file__).resolve().parents[2]


def _backfill(root: str, first: datetime.date, last: datetime.date, *extra: str) -> list[dict]:
    return backfill.run([f"--data_root={root}", f"--start={first}", f"--end={last}", *WINDOWS, *extra])


def _status(statuses: list[dict]) -> list[tuple[str, str, str]]:
    return [(s["date"], s["stage"], s["status"]) for s in statuses]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("backfill") / "data")
    simulate(root, "--n_days=4", "--n_users=300")
    return root


def test_an_immature_day_is_rebuilt_once_its_logs_arrive(world, tmp_path):
    # Only day 1's logs have arrived: its windows reach into day 2, so it is built with unobserved labels.
    root = tmp_path / "data"
    shutil.copytree(pathlib.Path(world) / "world", root / "world")
    for table in pathlib.Path(world, "raw").iterdir():
        shutil.copytree(table / f"dt={DAYS[0]}", root / "raw" / table.name / f"dt={DAYS[0]}")
    assert _status(_backfill(str(root), DAYS[0], DAYS[0], "--allow_unobserved"))[-1][2] == "built"
    examples = layout.examples_partition(str(root), DAYS[0])
    assert read_success(examples)["labels_mature"] is False
    # Without new logs, the day is complete as built.
    assert _status(_backfill(str(root), DAYS[0], DAYS[0]))[-1][2] == "skipped (complete)"
    # Day 2's logs arrive: the windows are covered now, so the next run rebuilds it, mature, without the flag.
    for table in pathlib.Path(world, "raw").iterdir():
        shutil.copytree(table / f"dt={DAYS[1]}", root / "raw" / table.name / f"dt={DAYS[1]}")
    statuses = _backfill(str(root), DAYS[0], DAYS[0])
    assert _status(statuses) == [
        (DAYS[0].isoformat(), "features", "skipped (complete)"),  # features of D read only days before D
        (DAYS[0].isoformat(), "examples", f"rebuilt (labels were immature; logs now reach {DAYS[1]})"),
    ]
    success = read_success(examples)
    assert success["labels_mature"] is True
    assert all(not v["unobserved"] for labels in success["labels"].values() for v in labels.values())
    assert _status(_backfill(str(root), DAYS[0], DAYS[0]))[-1][2] == "skipped (complete)"


def test_a_changed_log_file_or_another_world_makes_derived_days_stale(world, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(world, root)
    first = _backfill(str(root), DAYS[1], DAYS[2], "--allow_unobserved")
    assert {s["status"] for s in first} == {"built"}
    recorded = read_success(layout.feature_partition(str(root), "user", DAYS[1]))["inputs"]
    assert recorded["files"] > 0 and recorded["world_config_sha256"]
    # A log file of day 1 is rewritten (here: its modification time moves): every partition that read it is stale,
    # and so are the examples joining rebuilt features.
    part = sorted((root / "raw" / "stream" / f"dt={DAYS[0]}").glob("part-*.avro"))[0]
    os.utime(part, (time.time() + 60, time.time() + 60))
    statuses = _backfill(str(root), DAYS[1], DAYS[2], "--allow_unobserved")
    assert _status(statuses) == [
        (DAYS[1].isoformat(), "features", "rebuilt (raw files changed or arrived)"),
        (DAYS[1].isoformat(), "examples", "rebuilt (the features it joins were rebuilt)"),
        (DAYS[2].isoformat(), "features", "rebuilt (raw files changed or arrived)"),
        (DAYS[2].isoformat(), "examples", "rebuilt (the features it joins were rebuilt)"),
    ]
    # Another world into the same root (make data): the derived data of the old one is removed, not trusted.
    simulate(str(root), "--n_days=4", "--n_users=200", "--seed=5", "--overwrite")
    for folder in ("features", "examples", "deadletter", "_cache"):
        assert not (root / folder).exists(), folder
    with pytest.raises(FileExistsError, match="pass --overwrite .* everything derived from it"):
        simulate(str(root), "--n_days=4", "--n_users=200", "--seed=5")


def test_rows_print_as_days_finish_and_ctrl_c_reports_the_finished_days(world, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(world, root)
    cmd = [
        sys.executable,
        "-m",
        "podtarget.pipelines.backfill",
        f"--data_root={root}",
        f"--start={DAYS[0]}",
        f"--end={DAYS[2]}",
    ]
    proc = subprocess.Popen(
        [*cmd, *WINDOWS, "--allow_unobserved"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    try:
        while len(lines) < 3:  # the header, then day 1's two rows: printed while day 2 is still to come
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert lines[0].split() == ["date", "stage", "rows", "seconds", "status"]
    assert lines[1].split()[:2] == [DAYS[0].isoformat(), "features"] and lines[1].rstrip().endswith("built")
    assert lines[2].split()[:2] == [DAYS[0].isoformat(), "examples"]
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert f"finished: {DAYS[0]}" in err and "the same command resumes" in err, err


def test_a_terminal_gets_a_progress_bar_under_the_rows():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Terminal()
    progress = backfill.Progress(4, out=out, err=err)
    progress.row({"date": "2026-03-02", "stage": "features", "status": "built", "rows": 1500, "seconds": 2.0})
    assert out.getvalue().splitlines()[1].split() == ["2026-03-02", "features", "1,500", "2.0", "built"]
    assert "[#######-----------------------] 1/4 stages" in err.getvalue()
    progress.clear()
    assert err.getvalue().endswith("\r\033[K")  # the bar is wiped before the next row or the end
    plain = io.StringIO()
    backfill.Progress(4, out=io.StringIO(), err=plain).row({"date": "d", "stage": "s", "status": "built"})
    assert plain.getvalue() == ""  # not a terminal (a log file, a scheduler): rows only

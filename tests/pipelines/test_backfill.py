"""Backfill on a daily schedule: a partition is complete only for the inputs it was built from (a new world, a
rewritten log file, logs that arrive and cover an immature day), rows as they finish, and Ctrl-C."""

import datetime
import io
import json
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
    assert lines[0].split() == HEADER
    assert lines[1].split()[:2] == [DAYS[0].isoformat(), "features"] and lines[1].rstrip().endswith("built")
    assert lines[2].split()[:2] == [DAYS[0].isoformat(), "examples"]
    assert proc.returncode == 130, err
    # One line: no traceback, no Beam error log, no failed row (the workers reading day 2 were interrupted too).
    assert err.splitlines() == [
        f"interrupted during features of {DAYS[1]}; finished: {DAYS[0]} (committed); the same command resumes there "
        f"(finished days are skipped), or resume with --start={DAYS[1]}"
    ], err
    assert "failed" not in out


@pytest.mark.parametrize("after_seconds", [0.3, 1.0])
def test_ctrl_c_while_the_command_still_imports_is_one_line(world, after_seconds):
    proc = subprocess.Popen(
        [sys.executable, "-m", "podtarget.pipelines.backfill", f"--data_root={world}", f"--start={DAYS[0]}"]
        + [f"--end={DAYS[0]}", *WINDOWS],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after_seconds)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the command and the worker server it may have started
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err.splitlines()[-1:] == ["interrupted"] or err.startswith("interrupted during"), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


HEADER = ["date", "stage", "rows", "dead-lettered", "unreadable", "unreadable", "context", "seconds", "status"]


def test_a_terminal_gets_a_progress_bar_under_the_rows():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Terminal()
    progress = backfill.Progress(4, out=out, err=err)
    progress.row({"date": "2026-03-02", "stage": "features", "status": "built", "rows": 1500, "seconds": 2.0})
    assert out.getvalue().splitlines()[1].split() == ["2026-03-02", "features", "1,500", "-", "2.0", "built"]
    assert "[#######-----------------------] 1/4 stages" in err.getvalue()
    progress.clear()
    assert err.getvalue().endswith("\r\033[K")  # the bar is wiped before the next row or the end
    plain = io.StringIO()
    backfill.Progress(4, out=io.StringIO(), err=plain).row({"date": "d", "stage": "s", "status": "built"})
    assert plain.getvalue() == ""  # not a terminal (a log file, a scheduler): rows only


def _scratch(root: pathlib.Path) -> list[str]:
    """Every run-scratch path under a data root: staging folders and shuffle files."""
    found = [p for p in root.rglob("_staging")] + [p for p in root.rglob("_shuffle")]
    return sorted(str(p.relative_to(root)) for p in found)


def test_a_killed_backfill_leaves_scratch_that_the_next_run_deletes(world, tmp_path):
    """SIGKILL mid-run: nothing in the process can clean up, so staging folders and shuffle files stay. The next run
    of those days deletes them (their owner is dead), and a successful run leaves no empty scratch folder."""
    root = tmp_path / "data"
    shutil.copytree(world, root)
    cmd = [sys.executable, "-m", "podtarget.pipelines.backfill", f"--data_root={root}"]
    cmd += [f"--start={DAYS[0]}", f"--end={DAYS[2]}", *WINDOWS, "--allow_unobserved"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Kill it while a run has shuffle files and staged parts on disk (each day's runs write both).
        while not (any(p.is_file() for p in (root / "_shuffle").rglob("*")) and any(root.rglob("_staging/*/part-*"))):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    left = _scratch(root)
    assert "_shuffle" in left and any(p.endswith("_staging") for p in left), left
    statuses = _backfill(str(root), DAYS[0], DAYS[2], "--allow_unobserved")
    assert {s["status"] for s in statuses} <= {"built", "skipped (complete)"}
    assert _scratch(root) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [f"--start={DAYS[2]}", f"--end={DAYS[0]}"],
            f"error: --end={DAYS[0]} is before --start={DAYS[2]}: the range runs from --start to --end",
        ),
        (
            ["--start=2026/03/05", f"--end={DAYS[0]}"],
            "error: --start: expected a day as YYYY-MM-DD, got '2026/03/05'; see `python -m "
            "podtarget.pipelines.backfill --help`",
        ),
        (
            ["--start=2026-02-30", f"--end={DAYS[0]}"],
            "error: --start: 2026-02-30 is not a day: February 2026 has 28 days; see `python -m "
            "podtarget.pipelines.backfill --help`",
        ),
        (
            [f"--start={DAYS[0]}", f"--end={DAYS[0]}", "--forc"],
            "error: unknown option(s) --forc: no option of this pipeline or of Beam",
        ),
        (
            [f"--start={DAYS[2]}", "--end=2026-03-09"],
            f"error: 4 day(s) of the range lack raw data (2026-03-06..2026-03-09): 2026-03-06 has no "
            f"raw/user/dt=2026-03-06, raw/podcast/dt=2026-03-06, raw/campaign/dt=2026-03-06 (and 7 more); the raw "
            f"data cover {DAYS[0]}..{DAYS[-1]}: end the range there with --end={DAYS[-1]} or add the missing files. "
            "Every log table needs a partition every day",
        ),
    ],
    ids=["end_before_start", "slashes", "no_such_day", "abbreviation", "past_the_logs"],
)
def test_a_bad_range_is_one_line_and_no_work(world, capsys, monkeypatch, args, message):
    monkeypatch.delenv("MAKELEVEL", raising=False)
    assert backfill.main([f"--data_root={world}", *args, "--runner=FnApiRunner"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1 and "built" not in out


def test_a_missing_or_empty_data_root_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAKELEVEL", "1")  # run from make: the variable to change is named
    missing = tmp_path / "nope"
    assert backfill.main([f"--data_root={missing}", f"--start={DAYS[0]}", f"--end={DAYS[0]}"]) == 2
    assert capsys.readouterr().err == (
        f"error: data root --data_root={missing} (make: DATA_ROOT={missing}) does not exist: point it at the folder "
        "that holds raw/ (make data simulates one into ./data)\n"
    )
    assert backfill.main(["--data_root=", f"--start={DAYS[0]}", f"--end={DAYS[0]}"]) == 2
    assert capsys.readouterr().err.startswith("error: --data_root (make: DATA_ROOT=<folder>) is empty")


def test_a_failed_day_says_from_where_to_resume(world, tmp_path, capsys, monkeypatch):
    """Immature labels stop the backfill at that day: the error says what to pass, and that the rerun resumes there
    (with --force, only a later --start does: the same command would rebuild the finished days)."""
    monkeypatch.setenv("MAKELEVEL", "1")
    args = [f"--data_root={world}", f"--start={DAYS[2]}", f"--end={DAYS[3]}", *WINDOWS[:-2], "--runner=FnApiRunner"]
    root = tmp_path / "data"
    shutil.copytree(world, root)
    args[0] = f"--data_root={root}"
    assert backfill.main(args) == 2
    out, err = capsys.readouterr()
    assert f"{DAYS[3]}  examples" in out and "failed: labels of" in out
    assert err.startswith(f"error: backfill stopped at examples of {DAYS[3]}: labels of {DAYS[3]} are not mature")
    assert "--allow_unobserved (make: UNOBSERVED=1)" in err
    assert err.rstrip().endswith(
        f"the same command resumes there (finished days are skipped), or resume with --start={DAYS[3]} "
        f"(make: START={DAYS[3]})"
    ), err
    assert backfill.main([*args, "--force"]) == 2
    err = capsys.readouterr().err.rstrip()
    assert err.endswith(
        f"resume from there with --start={DAYS[3]} (make: START={DAYS[3]}) (with --force (make: FORCE=1) the same "
        "command would rebuild the finished days)"
    ), err


def test_rows_show_dead_letters_and_unreadable_files_with_totals_and_a_warning(world, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(world, root)
    # One log file of day 2 is cut short: day 2 dead-letters it, and the examples of day 1 and the features of day 3
    # read it as context.
    part = sorted((root / "raw" / "stream" / f"dt={DAYS[1]}").glob("part-*.avro"))[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    status_json = tmp_path / "status.json"
    args = [f"--data_root={root}", f"--start={DAYS[0]}", f"--end={DAYS[2]}", *WINDOWS, "--allow_unobserved"]
    assert backfill.main([*args, f"--status_json={status_json}"]) == 0  # a warning, not a failure
    out, err = capsys.readouterr()
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()[1:]}
    statuses = json.loads(status_json.read_text())
    by_stage = {(s["date"], s["stage"]): s for s in statuses}
    for day in DAYS[:3]:
        examples = by_stage[(day.isoformat(), "examples")]
        success = read_success(layout.examples_partition(str(root), day))
        dead = sum(n for r in success["dead_letter"].values() for k, n in r.items() if k != "unreadable_file")
        assert examples["dead_lettered"] == dead
        own = [str(part)] if day == DAYS[1] else []
        assert examples["unreadable_files"] == own
        # With one-day windows and no lateness, only the day before reads day 2's streams as context.
        context = [str(part)] if day == DAYS[0] else []
        assert examples["context_unreadable_files"] == context
        cells = rows[(day.isoformat(), "examples")]
        assert cells[2:6] == [f"{examples['rows']:,}", f"{dead:,}", str(len(own)), str(len(context))]
    assert rows[(DAYS[0].isoformat(), "features")][3:6] == ["-", "0", "0"]  # features of D read days before D only
    assert rows[(DAYS[2].isoformat(), "features")][3:6] == ["-", "0", "1"]
    total = rows[("total", "examples")]
    assert total[2] == f"{sum(by_stage[(d.isoformat(), 'examples')]['rows'] for d in DAYS[:3]):,}"
    assert total[4:6] == ["1", "1"]  # the one file, counted once
    assert err.startswith(f"warning: unreadable raw file {part} (logged {DAYS[1]})"), err
    assert len(err.splitlines()) == 1
    # Skipped days show what their partitions recorded.
    assert backfill.main(args) == 0
    again = {tuple(line.split()[:2]): line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert again[(DAYS[1].isoformat(), "examples")][2:6] == rows[(DAYS[1].isoformat(), "examples")][2:6]

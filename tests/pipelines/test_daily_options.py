"""The daily pipelines' options: the day to build, the worker processes and when their server starts."""

import datetime

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from podtarget.pipelines.daily_options import bucket_processes
from podtarget.pipelines.options import resolve_runner


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "cores"),  # the default in-process runner: a worker per core
        (["--runner=DirectRunner", "--direct_running_mode=in_memory"], "cores"),
        (["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"], 0),
        (["--runner=PortableRunner", "--job_endpoint=embed"], 0),
        (["--runner=DataflowRunner"], 0),
        (["--bucket_processes=0"], 0),
        (["--runner=DataflowRunner", "--bucket_processes=3"], 3),
    ],
)
def test_bucket_processes_default_to_a_worker_per_core_only_where_one_process_runs_everything(
    args, expected, monkeypatch
):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    want = 2 if expected == "cores" else expected
    assert bucket_processes(resolve_runner(PipelineOptions(args))) == want
    monkeypatch.setattr("os.cpu_count", lambda: 1)  # one core: nothing to gain from a worker
    assert bucket_processes(resolve_runner(PipelineOptions([]))) == 0


@pytest.fixture
def server_starts(monkeypatch) -> list[str]:
    """Records each start of the workers' server (none really starts) in a log shared with fake runs."""
    events: list[str] = []
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("podtarget.transforms.runtime.worker_server.start", lambda modules=(): events.append("start"))
    return events


@pytest.mark.parametrize(
    ("args", "started"),
    [
        ([], True),
        (["--runner", "DirectRunner", "--date=2026-03-02"], True),
        (["--bucket_processes=0"], False),
        (["--runner", "DataflowRunner"], False),
        (["--direct_running_mode=multi_processing"], False),
    ],
)
def test_only_options_that_want_workers_start_their_server(args, started, server_starts):
    from podtarget.pipelines.daily_options import start_worker_server

    assert (start_worker_server(PipelineOptions(args)) > 0) is started
    assert server_starts == (["start"] if started else [])


def test_a_bad_worker_count_starts_nothing_and_says_what_was_expected(server_starts):
    from podtarget.pipelines.daily_options import start_worker_server

    with pytest.raises(ValueError, match="--bucket_processes must be auto or a number >= 0, got 'many'"):
        start_worker_server(PipelineOptions(["--bucket_processes=many"]))
    assert server_starts == []


def test_importing_the_pipelines_starts_no_server(server_starts, monkeypatch):
    import importlib
    import sys

    import podtarget.pipelines

    # What `python -m podtarget.pipelines.backfill` would see; the package used to start the server from it.
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "podtarget.pipelines.backfill"], raising=False)
    importlib.reload(podtarget.pipelines)
    assert server_starts == []


@pytest.mark.parametrize("command", ["build_features", "build_examples", "backfill"])
def test_daily_commands_start_the_server_first_thing_in_main(command, server_starts, monkeypatch):
    import importlib

    module = importlib.import_module(f"podtarget.pipelines.{command}")

    def fake_run(argv, on_status=None):
        server_starts.append("run")
        return [] if command == "backfill" else {"dry_run": True, "state": "DONE"}

    monkeypatch.setattr(module, "run", fake_run)
    args = ["--date=2026-03-02"] if command != "backfill" else ["--start=2026-03-02", "--end=2026-03-02"]
    module.main(args)
    assert server_starts == ["start", "run"]
    server_starts.clear()
    module.main([*args, "--bucket_processes=0"])
    assert server_starts == ["run"]


def test_the_day_to_build_is_parsed_by_the_one_day_parser():
    from podtarget.pipelines.daily_options import build_day

    assert build_day(PipelineOptions(["--date=2026-03-02"])) == datetime.date(2026, 3, 2)
    with pytest.raises(ValueError, match=r"--date: expected a day as YYYY-MM-DD, got '2026/03/01'"):
        build_day(PipelineOptions(["--date=2026/03/01"]))
    with pytest.raises(ValueError, match=r"--date: 2026-02-30 is not a day: February 2026 has 28 days"):
        build_day(PipelineOptions(["--date=2026-02-30"]))
    with pytest.raises(ValueError, match=r"--date=YYYY-MM-DD is required: the day to build"):
        build_day(PipelineOptions([]))

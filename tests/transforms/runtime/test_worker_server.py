"""When the daily pipelines want worker processes, and which command lines start their server early."""

import pytest

from podtarget.transforms.runtime.worker_server import start_for_command, workers_wanted


@pytest.mark.parametrize(
    ("runner", "mode", "value", "expected"),
    [
        (None, None, "auto", 2),
        ("FnApiRunner", "in_memory", "auto", 2),
        ("DirectRunner", "multi_processing", "auto", 0),
        ("PortableRunner", None, "auto", 0),
        ("DataflowRunner", None, "auto", 0),
        ("DataflowRunner", None, "3", 3),
        (None, None, "0", 0),
    ],
)
def test_auto_means_a_worker_per_core_only_where_one_process_runs_everything(runner, mode, value, expected):
    assert workers_wanted(runner, mode, value, cores=2) == expected
    assert workers_wanted(runner, mode, "auto", cores=1) == 0  # one core: nothing to gain


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_count_is_refused(value):
    with pytest.raises(ValueError, match=f"--bucket_processes must be auto or a number >= 0, got '{value}'"):
        workers_wanted(None, None, value)


@pytest.mark.parametrize(
    ("command_line", "started"),
    [
        (["python", "-m", "podtarget.pipelines.backfill", "--start=2026-03-02", "--end=2026-03-03"], True),
        (["python", "-m", "podtarget.pipelines.build_examples", "--runner", "DirectRunner", "--date=2026-03-02"], True),
        (["python", "-m", "podtarget.pipelines.backfill", "--bucket_processes=0"], False),
        (["python", "-m", "podtarget.pipelines.build_features", "--runner", "DataflowRunner"], False),
        (["python", "-m", "podtarget.pipelines.build_features", "--direct_running_mode=multi_processing"], False),
        (["python", "-m", "podtarget.pipelines.backfill", "--bucket_processes=many"], False),  # the pipeline reports it
        (["python", "-m", "podtarget.pipelines.score", "--date=2026-03-02"], False),  # no workers there
        (["python", "-m", "pytest"], False),
        (["python", "script.py", "-m", "x"], False),
    ],
)
def test_only_daily_pipeline_commands_that_want_workers_start_the_server(command_line, started, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert start_for_command(command_line) is started

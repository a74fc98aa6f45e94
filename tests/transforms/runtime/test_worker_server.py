"""When the daily pipelines want worker processes."""

import pytest

from podtarget.transforms.runtime.worker_server import workers_wanted


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

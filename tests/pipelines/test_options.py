"""The pipelines' command lines: unknown options are refused, --help lists a pipeline's options, errors are one
line with the make variable to use."""

import os
import pathlib
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from podtarget.pipelines import build_features
from podtarget.pipelines.options import IN_PROCESS_RUNNER, resolve_runner

REPO = pathlib.Path(__file__).resolve().parents[2]


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, env={**os.environ, **env}
    )


def test_an_unknown_option_fails_instead_of_running_with_defaults(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option\(s\) --n_bucket: no option of this pipeline or of Beam"):
        build_features.run([f"--data_root={tmp_path}", "--date=2026-03-02", "--n_bucket=4"])


def test_help_lists_the_pipelines_own_options():
    result = _cli("podtarget.pipelines.score", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m podtarget.pipelines.score")
    for option in ("--model", "--heads", "--transfers", "--audience_cut", "--top_n", "--formats", "--date"):
        assert option in result.stdout, option
    assert "Any Beam pipeline option is accepted too" in result.stdout


def test_a_missing_input_is_one_line_naming_the_command_to_run(tmp_path):
    result = _cli("podtarget.pipelines.build_examples", f"--data_root={tmp_path}", "--date=2026-03-02", MAKELEVEL="1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: features/user for 2026-03-02 are missing or incomplete; run `make features DATE=2026-03-02` first"
    ]


def test_an_unsafe_local_mode_names_the_option_what_to_use_and_what_was_given():
    options = PipelineOptions(["--direct_running_mode=multi_threading", "--direct_num_workers=2"])
    with pytest.raises(ValueError) as raised:
        resolve_runner(options)
    assert str(raised.value) == (
        "The '--direct_running_mode' parameter of the pipeline options must be in_memory, or multi_processing for "
        "parallel workers (multi_threading with more than one worker corrupts data in Beam 2.77; "
        "--direct_num_workers=2). Got 'multi_threading' instead."
    )
    one_worker = PipelineOptions(["--direct_running_mode=multi_threading", "--direct_num_workers=1"])
    assert resolve_runner(one_worker).view_as(StandardOptions).runner == IN_PROCESS_RUNNER

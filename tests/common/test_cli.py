"""Command-line errors: one line, with the make variable to use when run from make; and what commands log."""

import importlib
import logging
import os
import pathlib
import subprocess
import sys

import pytest

from podtarget.common.cli import one_line, run_cli, warn_if_threads_spin

REPO = pathlib.Path(__file__).resolve().parents[2]
UNOBSERVED = {"--allow_unobserved": "UNOBSERVED=1", "--resume": "TRAIN_ARGS=--resume"}


def test_a_flag_in_a_message_gets_its_make_variable_under_make(monkeypatch):
    error = ValueError("labels of 2026-03-14 are not mature ...\nPass --allow_unobserved to build it anyway.")
    monkeypatch.delenv("MAKELEVEL", raising=False)
    assert one_line(error, UNOBSERVED) == "labels of 2026-03-14 are not mature ..."  # the first line only
    error = ValueError("run 'models/demo' exists; pass --resume to continue it or --overwrite to replace it")
    assert "(make:" not in one_line(error, UNOBSERVED)
    monkeypatch.setenv("MAKELEVEL", "1")
    assert one_line(error, UNOBSERVED) == (
        "run 'models/demo' exists; pass --resume (make: TRAIN_ARGS=--resume) to continue it or --overwrite to "
        "replace it"
    )


def test_errors_return_a_status_and_print_one_line(capsys, monkeypatch):
    monkeypatch.delenv("PODTARGET_TRACEBACK", raising=False)

    def broken() -> int:
        raise FileNotFoundError("no such table ./data/examples: run make backfill first")

    assert run_cli(broken) == 2
    assert capsys.readouterr().err == "error: no such table ./data/examples: run make backfill first\n"
    assert run_cli(lambda: {}["missing"]) == 2  # a bug says so, and how to see its traceback
    assert "KeyError: 'missing' (a bug, not a bad input: rerun with PODTARGET_TRACEBACK=1" in capsys.readouterr().err


_LOGGING_SCRIPT = """
import logging
import apache_beam as beam
from podtarget.common.cli import configure_logging

configure_logging()
logging.getLogger("podtarget.evaluation.ablations").info("own progress")
with beam.Pipeline("FnApiRunner") as p:
    _ = p | beam.Create([1, 2]) | beam.Map(lambda x: x + 1)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_commands_log_their_own_progress_and_only_warnings_from_libraries(verbose):
    env = {k: v for k, v in os.environ.items() if k != "PODTARGET_VERBOSE"}
    if verbose:
        env["PODTARGET_VERBOSE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", _LOGGING_SCRIPT], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    lines = result.stderr.splitlines()
    assert any("INFO podtarget.evaluation.ablations: own progress" in line for line in lines)
    beam_info = [line for line in lines if " INFO apache_beam" in line]
    assert (len(beam_info) > 0) == verbose, beam_info[:3]


def test_a_missing_omp_wait_policy_is_one_warning_saying_how_to_set_it(monkeypatch, caplog):
    log = logging.getLogger("podtarget.test")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with caplog.at_level(logging.WARNING, logger="podtarget.test"):
        assert warn_if_threads_spin(log)
    assert len(caplog.records) == 1 and "OMP_WAIT_POLICY=PASSIVE" in caplog.records[0].getMessage()
    caplog.clear()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # whatever the user chose: not ours to judge
    with caplog.at_level(logging.WARNING, logger="podtarget.test"):
        assert not warn_if_threads_spin(log)
    assert caplog.records == []


@pytest.mark.parametrize(
    "command", ["podtarget.model.train", "podtarget.evaluation.ablations", "podtarget.evaluation.abtest"]
)
def test_the_training_commands_warn_when_threads_would_spin(command, monkeypatch, caplog):
    main = importlib.import_module(command).main
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit):
        main(["--help"])
    assert [r.name for r in caplog.records if "OMP_WAIT_POLICY" in r.getMessage()] == [command]


def test_scoring_warns_too(monkeypatch, caplog, capsys):
    from podtarget.pipelines.score import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with caplog.at_level(logging.WARNING):
        main(["--help"])
    assert [r.name for r in caplog.records if "OMP_WAIT_POLICY" in r.getMessage()] == ["podtarget.pipelines.score"]
    assert "--model" in capsys.readouterr().out


def test_importing_the_model_leaves_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, podtarget.model.train; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "None"


def test_make_variables_take_the_value_the_message_names(monkeypatch):
    variables = {"--start": "START=YYYY-MM-DD", "--force": "FORCE=1", "--model": "MODEL=models/<run>"}
    monkeypatch.setenv("MAKELEVEL", "1")
    error = ValueError("--end=2026-03-06 is before --start=2026-03-08: resume with --force.")
    assert one_line(error, variables) == (
        "--end=2026-03-06 is before --start=2026-03-08 (make: START=2026-03-08): resume with --force (make: FORCE=1)."
    )
    assert one_line(ValueError("--model is required"), variables) == ("--model (make: MODEL=models/<run>) is required")


def test_the_step_beam_names_is_left_out_of_the_line():
    error = ValueError("features/x.parquet is corrupt; rebuild it [while running 'ScoreUserBlocks/UserBlocks/Read']")
    assert one_line(error) == "features/x.parquet is corrupt; rebuild it"


def test_flags_are_whole_names_and_a_bad_one_is_one_line(capsys):
    from podtarget.common.cli import CommandParser, UsageError

    parser = CommandParser("podtarget.some.command", "What it does.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    assert parser.parse_args(["--epochs=2"]).epochs == 2
    cases = {
        "--epoch=1": "unknown option --epoch=1 (did you mean --epochs?)",  # an abbreviation is not taken
        "--epochz=1": "unknown option --epochz=1 (did you mean --epochs?)",
        "--lr=abc": "--lr: invalid float value: 'abc'",
        "--nothing_like_it": "unknown option --nothing_like_it",
    }
    for flag, message in cases.items():
        with pytest.raises(UsageError) as error:
            parser.parse_args([flag])
        assert str(error.value) == f"{message}; see `python -m podtarget.some.command --help`"
    assert run_cli(lambda: parser.parse_args(["--epoch=1"])) == 2
    assert capsys.readouterr().err.startswith("error: unknown option --epoch=1 (did you mean --epochs?)")


def test_training_refuses_an_abbreviated_flag():
    from podtarget.common.cli import UsageError
    from podtarget.model.train_config import parse_args

    assert parse_args(["--epochs=1"]).epochs == 1
    with pytest.raises(UsageError, match="unknown option --epoch=1 .did you mean --epochs"):
        parse_args(["--epoch=1"])


_FAILING_STEP = """
import logging, sys
import apache_beam as beam
from podtarget.common.cli import configure_logging, run_cli

def fail(x):
    raise ValueError(f"row {x} is bad: fix the input")

def main():
    with beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([1]) | beam.Map(fail)

configure_logging(logging.WARNING)
sys.exit(run_cli(main))
"""


@pytest.mark.parametrize("env_name", [None, "PODTARGET_VERBOSE", "PODTARGET_TRACEBACK"])
def test_an_error_inside_a_beam_step_is_one_line_unless_asked_for_more(env_name):
    env = {k: v for k, v in os.environ.items() if k not in ("PODTARGET_VERBOSE", "PODTARGET_TRACEBACK")}
    if env_name:
        env[env_name] = "1"
    result = subprocess.run([sys.executable, "-c", _FAILING_STEP], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode != 0
    if env_name is None:
        assert result.stderr == "error: row 1 is bad: fix the input\n"
    else:
        assert "Traceback" in result.stderr  # Beam's log of the failing step, or the command's own traceback

"""Command-line errors: one line, with the make variable to use when run from make."""

import pathlib

from model.cli import one_line, run_cli
from model.train import main
from tests.model.conftest import toy_config

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


def test_training_into_an_existing_run_names_train_args(trained_toy, podcast_toy, capsys, monkeypatch):
    run = pathlib.Path(trained_toy.run_dir)
    config = toy_config(podcast_toy, run.parent)
    monkeypatch.setenv("MAKELEVEL", "1")
    args = [f"--examples={config.examples}", f"--out={run.parent}", f"--run={run.name}", f"--spec={config.spec}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pass --resume (make: TRAIN_ARGS=--resume) to continue it" in err

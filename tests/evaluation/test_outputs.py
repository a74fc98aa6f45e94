"""Report folders: one run per folder, and the committed record rewritten only when named."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from podtarget.evaluation.ablations import run_ablations
from podtarget.evaluation.abtest import run_abtest
from podtarget.evaluation.outputs import MixedReportError, portable, report_identity

from .conftest import TRAIN

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_both_reports_of_one_run_record_the_same_identity(ablations, abtest):
    out = pathlib.Path(abtest[0].out)
    ours = json.loads((out / "ablations.json").read_text())["report_identity"]
    theirs = json.loads((out / "abtest.json").read_text())["report_identity"]
    assert ours == theirs
    assert ours["examples_fingerprint"] and ours["world_config_sha256"]


def test_a_run_on_other_data_refuses_to_write_beside_another_runs_report(eval_world, ablations, abtest, tmp_path):
    # Another build of the table: only its first day. Its fingerprint differs, so the ablations of it must not
    # land beside the A/B test of the full table; the refusal comes before any training.
    other = tmp_path / "other" / "examples"
    shutil.copytree(pathlib.Path(eval_world) / "examples" / f"dt={TRAIN}", other / f"dt={TRAIN}")
    assert report_identity(str(other), None) != report_identity(f"{eval_world}/examples", None)
    report = tmp_path / "report"
    shutil.copytree(abtest[0].out, report)
    config = dataclasses.replace(ablations[0], examples=str(other), out=str(report), models=str(tmp_path / "m"))
    with pytest.raises(MixedReportError, match="abtest.json was measured on other data.*EVAL_OUT="):
        run_ablations(config)
    assert not (tmp_path / "m").exists()
    # The same for the A/B test beside ablations of other data (an identity written before they were recorded).
    ablation_json = json.loads((report / "ablations.json").read_text())
    ablation_json.pop("report_identity")
    (report / "ablations.json").write_text(json.dumps(ablation_json))
    with pytest.raises(MixedReportError, match="no recorded identity"):
        run_abtest(dataclasses.replace(abtest[0], out=str(report)))


def test_make_writes_reports_outside_the_committed_record_by_default():
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "evaluate", "abtest", "report", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    outs = [word.split("=", 1)[1] for word in dry.split() if word.startswith("--out=")]
    assert len(outs) == 4, dry
    # make report rebuilds the newest report, make demo's (reports/demo, ignored by git too) when it is the newest.
    assert all(o.startswith("reports/local/") or o == "reports/demo" for o in outs), outs
    named = subprocess.run(
        ["make", "-n", "--no-print-directory", "evaluate", "EVAL_OUT=reports/eval"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--out=reports/eval " in named


def test_make_report_rebuilds_the_report_just_made(tmp_path):
    """Without EVAL_OUT, make report takes the folder whose JSON is newest: make demo's small report right after
    make demo (it failed on reports/local/eval, which the demo does not write)."""

    def report_out(*variables: str) -> str:
        dry = subprocess.run(
            ["make", "-n", "--no-print-directory", "report", *variables],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return next(word.split("=", 1)[1] for word in dry.split() if word.startswith("--out="))

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "ablations.json").write_text("{}")  # newer than any report of the checkout
    assert report_out(f"DEMO_EVAL_OUT={demo}") == str(demo)
    assert report_out(f"DEMO_EVAL_OUT={demo}", "EVAL_OUT=reports/eval") == "reports/eval"  # named: as told


def test_a_refused_report_is_one_line_naming_the_make_variable(tmp_path):
    examples = tmp_path / "data" / "examples" / "dt=2026-03-02"
    examples.mkdir(parents=True)
    (examples / "_SUCCESS.json").write_text("{}")
    report = tmp_path / "report"
    report.mkdir()
    (report / "abtest.json").write_text(json.dumps({"report_identity": {"examples_fingerprint": "x"}}))
    result = subprocess.run(
        [sys.executable, "-m", "podtarget.evaluation.ablations", f"--examples={examples.parent}", f"--out={report}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKELEVEL": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {report}/abtest.json was measured on other data")
    assert "--out (make: EVAL_OUT=reports/<name>)" in last


def test_make_report_with_nothing_to_report_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "podtarget.evaluation.report", f"--out={tmp_path}", f"--world={tmp_path}/world"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: nothing to report in {tmp_path}: run `make evaluate`, `make abtest` and/or `make coldstart` first"
    )


def test_written_reports_name_their_folders_by_role_not_by_the_machines_path(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    result = {
        "config": {"examples": f"{data}/examples", "out": str(out), "spec": str(REPO / "model/specs/podtarget.toml")},
        "runs": [f"{data}/world", "gs://bucket/eval/examples", "models/eval-eval", 3],
    }
    got = portable(result, {"$DATA_ROOT": str(data), "$EVAL_OUT": str(out)})
    assert got == {
        "config": {"examples": "$DATA_ROOT/examples", "out": "$EVAL_OUT", "spec": "model/specs/podtarget.toml"},
        "runs": ["$DATA_ROOT/world", "gs://bucket/eval/examples", "models/eval-eval", 3],
    }
    assert str(tmp_path) not in json.dumps(got)

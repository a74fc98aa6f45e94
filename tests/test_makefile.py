"""The make targets' own checks, run for real (setup's stamp taken as done, so nothing is installed)."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _make(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    "target",
    [["score"], ["backfill", "START=2026-03-02", "END=2026-03-03"], ["train"], ["features", "DATE=2026-03-02"]],
)
def test_a_missing_or_empty_data_root_is_said_to_be_so(target, tmp_path):
    missing = tmp_path / "nope"
    result = _make(*target, f"DATA_ROOT={missing}")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        f"error: DATA_ROOT={missing} does not exist: point it at the folder that holds raw/ (make data simulates one "
        "into ./data)"
    )
    result = _make(*target, "DATA_ROOT=")
    assert result.stderr.splitlines()[0].startswith("error: DATA_ROOT is empty: give the folder")


def test_make_score_looks_the_latest_model_up_once(tmp_path):
    """MODEL's default loaded every model once per use: 'skipping' was printed twice."""
    root = tmp_path / "data"
    root.mkdir()
    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{}")
    result = _make("score", f"DATA_ROOT={root}", f"MODELS={tmp_path / 'models'}")
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.startswith("skipping")] == [
        f"skipping {broken}: model '{broken}': manifest format None, expected 1"
    ]
    assert f"error: no complete features under {root}/features/user" in result.stderr

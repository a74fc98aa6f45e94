"""gs:// without credentials: a clear error within seconds, from every command that takes a path."""

import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["podtarget.pipelines.build_features", "--data_root=gs://podtarget-nowhere/data", "--date=2026-03-02"],
        [
            "podtarget.pipelines.backfill",
            "--data_root=gs://podtarget-nowhere/data",
            "--start=2026-03-02",
            "--end=2026-03-02",
        ],
        ["podtarget.model.train", "--examples=gs://podtarget-nowhere/data/examples", "--out=models", "--run=x"],
        [
            "podtarget.pipelines.score",
            "--data_root=./data",
            "--date=2026-03-02",
            "--model=gs://podtarget-nowhere/models/demo",
        ],
    ],
    ids=["features", "backfill", "train", "score"],
)
def test_gs_without_credentials_fails_fast_and_says_so(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST")}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # the error alone: google-auth's warnings of each place it looked are not shown
    assert lines[-1].startswith("error: gs://podtarget-nowhere/") and "no credentials were found" in lines[-1]
    assert "GOOGLE_APPLICATION_CREDENTIALS" in lines[-1] and "Traceback" not in result.stderr
    assert seconds < 30, seconds  # interpreter and imports included; before: minutes of retries

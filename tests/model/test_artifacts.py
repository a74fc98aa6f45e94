"""A run's folder: what it holds, loading it back for scoring, and clear errors for anything wrong with it."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch

from podtarget.model.artifacts import ArtifactError, latest_run, load_model
from podtarget.model.data import ExampleTable
from podtarget.model.spec import load_spec
from podtarget.model.train import train
from tests.model.conftest import toy_config


@pytest.fixture
def run_copy(trained_toy, tmp_path) -> pathlib.Path:
    target = tmp_path / "run"
    shutil.copytree(trained_toy.run_dir, target)
    return target


def _rows(podcast_toy):
    table = ExampleTable.open(podcast_toy[0])
    return table, table.read(table.units(table.days[-2:-1])[0], table.schema.names)


def test_run_folder_layout(trained_toy):
    run = pathlib.Path(trained_toy.run_dir)
    names = {p.name for p in run.iterdir()}
    expected = {"manifest.json", "weights.pt", "spec.json", "normalization.json", "hashing.json"}
    assert expected | {"metrics.json", "metrics.txt", "checkpoints"} <= names
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["heads"] == ["PromotionStream", "AdStream", "Click", "Like", "Follow"]
    assert set(manifest["sha256"]) >= expected - {"manifest.json"}
    assert manifest["columns"]["label_stream"] == "int8" and manifest["versions"]["torch"]
    state = torch.load(run / "weights.pt", weights_only=True)
    assert "embedding.weight" in state and all(isinstance(v, torch.Tensor) for v in state.values())
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == set(manifest["heads"])
    assert "PromotionStream" in (run / "metrics.txt").read_text()


def test_load_round_trip_gives_identical_predictions(trained_toy, podcast_toy):
    table, rows = _rows(podcast_toy)
    model = load_model(trained_toy.run_dir, table_schema=table.schema, spec=trained_toy.spec)
    again = load_model(trained_toy.run_dir)
    scores = model.score(rows)
    assert set(scores) == set(model.tasks) and all(len(v) == rows.num_rows for v in scores.values())
    for task, values in again.score(rows, tasks=["AdStream", "Click"]).items():
        assert (values == scores[task]).all()
    # Scoring takes a RecordBatch without labels just as well: the training-time encoding, minus the labels.
    no_labels = pa.RecordBatch.from_pylist(
        rows.drop_columns([c for c in rows.schema.names if c.startswith("label_")]).to_pylist()[:7]
    )
    # (a 7-row matmul may round differently from a 1,000-row one, hence a tolerance here only)
    np.testing.assert_allclose(model.score(no_labels, tasks=["AdStream"])["AdStream"], scores["AdStream"][:7], 1e-5)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['Stream'\]"):
        model.predict(model.encode(rows), tasks=["Stream"])


def test_missing_and_corrupt_files_fail_clearly(run_copy):
    (run_copy / "weights.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="weights.pt is corrupt"):
        load_model(str(run_copy))
    (run_copy / "weights.pt").unlink()
    with pytest.raises(ArtifactError, match="weights.pt is missing"):
        load_model(str(run_copy))
    (run_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest.json is corrupt"):
        load_model(str(run_copy))
    (run_copy / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        load_model(str(run_copy))
    with pytest.raises(ArtifactError, match="no such folder"):
        load_model(str(run_copy / "absent"))


def test_corrupt_weights_that_pass_the_checksum_still_fail_clearly(run_copy):
    """A manifest rewritten after the weights broke (no checksum help): torch's error becomes an ArtifactError."""
    (run_copy / "weights.pt").write_bytes(b"PK\x03\x04 not a zip")
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["sha256"].pop("weights.pt")
    manifest["sha256"]["weights.pt"] = __import__("hashlib").sha256(b"PK\x03\x04 not a zip").hexdigest()
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="weights.pt .* is corrupt or not a torch state file"):
        load_model(str(run_copy))


def test_schema_mismatch_names_the_column_and_types(trained_toy, podcast_toy):
    table, _ = _rows(podcast_toy)
    fields = [pa.field(f.name, pa.int64()) if f.name == "label_click" else f for f in table.schema]
    with pytest.raises(ArtifactError, match="column 'label_click': trained on int8, the table has int64"):
        load_model(trained_toy.run_dir, table_schema=pa.schema(fields))
    dropped = pa.schema([f for f in table.schema if f.name != "surface"])
    with pytest.raises(ArtifactError, match="feature 'surface' in group 'context': column not in the table"):
        load_model(trained_toy.run_dir, table_schema=dropped)


def test_spec_mismatch(trained_toy):
    other = trained_toy.spec.with_changes(disabled_groups=["ad"])
    with pytest.raises(ArtifactError, match="trained with a different spec .*groups"):
        load_model(trained_toy.run_dir, spec=other)
    assert load_spec(pathlib.Path(trained_toy.run_dir) / "spec.json") == trained_toy.spec


@pytest.mark.parametrize("run", ["../x", "/tmp/abs", "a/b", "..", ".hidden", "a b"])
def test_a_run_name_is_one_folder_under_the_models_folder(podcast_toy, tmp_path, run):
    models = tmp_path / "models"
    with pytest.raises(ArtifactError, match="not a plain folder name"):
        train(toy_config(podcast_toy, models, run=run))
    assert not any(tmp_path.iterdir())  # refused before anything was written, inside or outside models/


def test_the_latest_run_skips_corrupt_and_unfinished_runs(trained_toy, tmp_path):
    models = tmp_path / "models"
    for name in ("older", "newer", "unfinished"):
        shutil.copytree(trained_toy.run_dir, models / name)
    os.utime(models / "older" / "manifest.json", (1_000, 1_000))
    weights = models / "newer" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10])  # a crash or a bad copy: the checksum catches it
    (models / "unfinished" / "manifest.json").unlink()  # written last: a run without one never finished
    path, skipped = latest_run(str(models))
    assert path == str(models / "older")
    assert [(pathlib.Path(p).name, "weights.pt is corrupt" in why) for p, why in skipped] == [("newer", True)]
    cli = subprocess.run(
        [sys.executable, "-m", "podtarget.model.artifacts", "latest", str(models)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert cli.stdout.strip() == str(models / "older") and "skipping" in cli.stderr and "newer" in cli.stderr
    assert latest_run(str(tmp_path / "none")) == (None, [])

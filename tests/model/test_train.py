"""Training end to end: resume, transfer, ablation options, the CLI, and a second unrelated table."""

import dataclasses
import datetime
import io
import json
import logging
import pathlib

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

from podtarget.model.artifacts import ArtifactError, load_model
from podtarget.model.data import ExampleTable
from podtarget.model.progress import EpochProgress
from podtarget.model.spec_types import SpecError
from podtarget.model.train import TrainConfig, main, train
from tests.model.conftest import quick_config, toy_config


def _weights(run_dir: str) -> dict:
    return torch.load(pathlib.Path(run_dir) / "weights.pt", weights_only=True)


@pytest.mark.parametrize(
    "changes", [{}, {"architecture": "ple", "loss_weighting": "pcgrad"}], ids=["default", "ple_pcgrad"]
)
def test_resumed_run_equals_an_uninterrupted_one(podcast_toy, tmp_path, changes):
    common = dict(epochs=3, patience=5, **changes)
    whole = train(toy_config(podcast_toy, tmp_path / "a", **common))
    first = train(toy_config(podcast_toy, tmp_path / "b", **{**common, "epochs": 1}))
    assert len(first.history) == 1
    resumed = train(toy_config(podcast_toy, tmp_path / "b", **common, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    a, b = _weights(whole.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: {k: v for k, v in h.items() if k not in ("seconds", "examples_per_s", "data_wait_share")}  # noqa: E731
    assert [strip(h) for h in whole.history] == [strip(h) for h in resumed.history]
    assert whole.metrics["test"] == resumed.metrics["test"]


def test_existing_runs_are_not_overwritten_and_resume_checks_the_config(podcast_toy, trained_toy):
    out = str(pathlib.Path(trained_toy.run_dir).parent)
    with pytest.raises(ArtifactError, match="exists; pass --resume to continue it or --overwrite"):
        train(toy_config(podcast_toy, out))
    with pytest.raises(ArtifactError, match="written by a different configuration"):
        train(toy_config(podcast_toy, out, resume=True, lr=0.5))


def test_the_model_beats_a_constant_on_the_toy_table(trained_toy):
    for task, report in trained_toy.metrics["test"].items():
        m = report["overall"]
        assert m["ap_lift"] > 1.3 and m["log_loss"] < m["baseline_log_loss"], (task, m)
    assert trained_toy.metrics["split"]["excluded"][0]["reason"].startswith("labels of PromotionStream, AdStream")


def test_transfer_new_head_with_a_frozen_encoder(trained_toy, podcast_toy, tmp_path):
    result = train(
        toy_config(
            podcast_toy,
            tmp_path,
            run="follow_any",
            init_from=trained_toy.run_dir,
            add_task=["FollowAny:label_follow:ad"],
            freeze_encoder=True,
            epochs=1,
        )
    )
    before, after = _weights(trained_toy.run_dir), _weights(result.run_dir)
    for key, value in before.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, after[key]), key  # encoder, embeddings and existing heads untouched
    new = [k for k in after if k.startswith("towers.FollowAny.")]
    assert new and result.metrics["trainable_heads"] == ["FollowAny"]
    assert load_model(result.run_dir).tasks[-1] == "FollowAny"


def test_apply_an_existing_head_as_is(trained_toy, podcast_toy, tmp_path):
    result = train(
        toy_config(
            podcast_toy,
            tmp_path,
            run="zero_shot",
            init_from=trained_toy.run_dir,
            add_task=["AdStreamFromPromo:label_stream:ad"],
            apply_head=["AdStreamFromPromo=PromotionStream"],
        )
    )
    assert result.history == [] and result.metrics["applied_heads"] == {"AdStreamFromPromo": "PromotionStream"}
    model = load_model(result.run_dir)
    table = ExampleTable.open(podcast_toy[0])
    rows = table.read(table.units(table.days[-2:-1])[0], table.schema.names)
    scores = model.score(rows)
    assert (scores["AdStreamFromPromo"] == scores["PromotionStream"]).all()
    assert result.metrics["test"]["AdStreamFromPromo"]["overall"]["rows"] > 0  # evaluated on ad rows


def test_fine_tune_everything_from_a_promotion_only_model(podcast_toy, tmp_path):
    promo = train(
        toy_config(podcast_toy, tmp_path, run="promo_only", sources=["promo"], epochs=1, tasks=["PromotionStream"])
    )
    assert list(promo.metrics["sampling"]["sources"]) == ["promo"]
    assert promo.metrics["sampling"]["shares"] is None  # one source: nothing to balance
    tuned = train(
        toy_config(
            podcast_toy, tmp_path, run="tuned", init_from=promo.run_dir, add_task=["AdStream:label_stream:ad"], epochs=1
        )
    )
    assert tuned.metrics["trainable_heads"] == ["PromotionStream", "AdStream"]
    assert list(tuned.metrics["sampling"]["sources"]) == ["ad", "promo"]
    # The paper's Figure 2A: the promotions-only model scores ads with its stream head (AdStream from the spec).
    applied = train(
        toy_config(podcast_toy, tmp_path, run="fig2a", init_from=promo.run_dir, apply_head=["AdStream=PromotionStream"])
    )
    ad_eval = applied.metrics["test"]["AdStream"]["overall"]
    assert applied.history == [] and ad_eval["rows"] > 0 and ad_eval["average_precision"] is not None


def test_transfer_option_errors(trained_toy, podcast_toy, tmp_path):
    with pytest.raises(SpecError, match="need --init_from"):
        train(toy_config(podcast_toy, tmp_path, add_task=["X:label_click:ad"]))
    with pytest.raises(SpecError, match="no head 'Nope'"):
        train(toy_config(podcast_toy, tmp_path, init_from=trained_toy.run_dir, apply_head=["AdStream2=Nope"]))
    with pytest.raises(SpecError, match="already have a head"):
        train(toy_config(podcast_toy, tmp_path, init_from=trained_toy.run_dir, add_task=["Click:label_click:ad"]))


@pytest.mark.parametrize(
    "changes",
    [
        {"architecture": "mmoe", "loss_weighting": "uncertainty"},
        {"architecture": "ple", "loss_weighting": "pcgrad"},
        {"prior_init": True},
        {"source_ratio": None, "directional_mask": False, "disable_groups": ["ad", "promotion"]},
    ],
    ids=["mmoe_uncertainty", "ple_pcgrad", "prior_init", "natural_mix_no_mask_fewer_groups"],
)
def test_ablation_options_train(podcast_toy, tmp_path, changes):
    result = train(toy_config(podcast_toy, tmp_path, epochs=1, **changes))
    spec = result.spec
    assert spec.model.architecture == changes.get("architecture", "shared_bottom")
    if "disable_groups" in changes:
        assert set(spec.disabled_groups) == {"ad", "promotion"} and result.metrics["sampling"]["shares"] is None
        assert spec.trains["ad"] == spec.task_names
    weights = result.history[0]["task_weights"]
    assert (weights["AdStream"] != 1.0) == (changes.get("loss_weighting") == "uncertainty")
    assert result.metrics["test"]["AdStream"]["overall"]["average_precision"] is not None


def test_a_cold_started_source_trains_on_its_last_days_only(podcast_toy, tmp_path):
    result = train(toy_config(podcast_toy, tmp_path, epochs=1, source_history_days={"ad": 1}, max_source_repeats=2))
    split, sampling = result.metrics["split"], result.metrics["sampling"]
    assert split["source_days"] == {"ad": [split["train"][-1]]}
    table = ExampleTable.open(podcast_toy[0])
    from podtarget.model.data import label_catalog
    from podtarget.model.spec import load_spec

    counted = label_catalog(load_spec(podcast_toy[1]), table, table.days)
    assert sampling["rows"]["ad"] == counted[split["train"][-1]]["rows"]["ad"]
    assert sampling["rows"]["promo"] == sum(counted[d]["rows"]["promo"] for d in split["train"])
    assert sampling["repeats"]["ad"] <= 2.2  # the cap (rounding of the share and of the batches aside)
    with pytest.raises(SpecError, match="unknown source"):
        train(toy_config(podcast_toy, tmp_path, epochs=1, run="x", source_history_days={"radio": 1}))
    # An epoch reads only the days some drawn source needs: an ads-only run on one day reads that day alone.
    from podtarget.model.data import SamplingPlan
    from podtarget.model.train import drawn_days

    days = [datetime.date(2026, 3, d) for d in (2, 3, 4)]
    ads_only = SamplingPlan(8, None, None, ("ad",), 1, 8, {"ad": 8}, {"ad": ("2026-03-04",)})
    assert drawn_days(days, ads_only) == days[-1:]
    both = dataclasses.replace(ads_only, sources=("ad", "promo"))
    assert drawn_days(days, both) == days


def test_cli(podcast_toy, tmp_path, capsys):
    examples, spec = podcast_toy
    args = [f"--examples={examples}", f"--spec={spec}", f"--out={tmp_path}", "--run=cli", "--epochs=1"]
    assert main([*args, "--batch_size=512", "--no_progress", "--task_weights=Click=0.5"]) == 0
    out = capsys.readouterr().out
    assert "[test]" in out and "model written to" in out
    saved = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert saved["config"]["task_weights"] == {"Click": 0.5}
    assert main([*args, "--overwrite", "--tasks=Nope"]) == 2
    assert "--tasks: unknown task(s) ['Nope']" in capsys.readouterr().err


def test_progress_in_a_log_is_one_line_per_epoch(podcast_toy, tmp_path, capsys, caplog):
    # stderr is captured here, as make's output is in a log or CI: not a terminal, so no bar (no carriage returns).
    config = toy_config(podcast_toy, tmp_path, progress=None, max_batches_per_epoch=3)
    with caplog.at_level(logging.INFO, logger="podtarget.model.train"):
        train(config)
    err = capsys.readouterr().err
    assert "\r" not in err and "batch" not in err and "epoch 1/2" not in err, err
    epochs = [r.getMessage().split(":")[0] for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert epochs == ["epoch 1", "epoch 2"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _draw(stream: io.StringIO, enabled: bool | None) -> str:
    progress = EpochProgress("epoch 1/2", total_batches=4, enabled=enabled, stream=stream)
    for _ in range(3):
        progress.update(rows=512, loss=0.5, wait_share=0.25)
    progress.close()
    return stream.getvalue()


def test_a_terminal_gets_a_bar_over_the_epochs_batches():
    drawn = _draw(_Terminal(), enabled=None)
    assert "epoch 1/2" in drawn and "3/4" in drawn and "loss 0.5000" in drawn and "data wait 25.0%" in drawn, drawn
    assert _draw(_Terminal(), enabled=False) == ""  # --no_progress
    assert _draw(io.StringIO(), enabled=None) == ""  # not a terminal
    assert "3/4" in _draw(io.StringIO(), enabled=True)  # --progress: e.g. an IDE console that is not a terminal


def test_a_second_unrelated_table_trains_end_to_end(movie_toy, tmp_path):
    examples, spec = movie_toy
    result = train(
        TrainConfig(
            examples=examples, spec=spec, out=str(tmp_path), run="movies", epochs=6, batch_size=256, lr=0.003, threads=1
        )
    )
    assert result.metrics["split"]["train"][0] == "2026-03-02"
    assert set(result.metrics["test"]) == {"Open", "Watch"}
    assert result.metrics["sampling"]["shares"] == {"email": 128, "banner": 128}
    for task, report in result.metrics["test"].items():
        m = report["overall"]
        assert m["ap_lift"] > 1.2 and m["log_loss"] < m["baseline_log_loss"], (task, m)
    # Open is observed on email rows only; Watch is evaluated on both channels
    assert result.metrics["test"]["Open"]["overall"]["rows"] < result.metrics["test"]["Watch"]["overall"]["rows"]


@pytest.mark.slow
def test_examples_are_read_from_gcs(gcs_emulator, podcast_toy, tmp_path):
    """An example table on gs:// trains exactly as its local twin: same rows, same split, same weights."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    examples, spec = podcast_toy
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(gcs_emulator[len("gs://") :])
    for path in pathlib.Path(examples).rglob("*"):
        if path.is_file():
            bucket.blob(f"model-test/examples/{path.relative_to(examples)}").upload_from_filename(str(path))
    remote = ExampleTable.open(f"{gcs_emulator}/model-test/examples")
    local = ExampleTable.open(examples)
    assert remote.days == local.days and remote.schema == local.schema
    unit = remote.units(remote.days[:1])[0]
    assert remote.read(unit, ["user_id"]).equals(local.read(local.units(local.days[:1])[0], ["user_id"]))
    from_gcs = train(toy_config((f"{gcs_emulator}/model-test/examples", spec), tmp_path / "gcs", epochs=1))
    from_disk = train(toy_config(podcast_toy, tmp_path / "disk", epochs=1))
    assert from_gcs.metrics["test"] == from_disk.metrics["test"]


@pytest.mark.slow
def test_runs_are_written_to_and_loaded_from_gcs(gcs_emulator, podcast_toy):
    """The run folder on gs:// (through a local GCS emulator): written, resumed from, and loaded back."""
    out = f"{gcs_emulator}/model-test/models"
    result = train(toy_config(podcast_toy, out, epochs=1))
    assert result.run_dir == f"{out}/toy"
    resumed = train(toy_config(podcast_toy, out, epochs=2, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    model = load_model(resumed.run_dir)
    table = ExampleTable.open(podcast_toy[0])
    rows = table.read(table.units(table.days[-2:-1])[0], table.schema.names)
    assert set(model.score(rows)) == set(model.tasks)
    with pytest.raises(ArtifactError, match="no such folder"):
        load_model(f"{out}/absent")


def test_training_into_an_existing_run_names_train_args(trained_toy, podcast_toy, capsys, monkeypatch):
    run = pathlib.Path(trained_toy.run_dir)
    config = toy_config(podcast_toy, run.parent)
    monkeypatch.setenv("MAKELEVEL", "1")
    args = [f"--examples={config.examples}", f"--out={run.parent}", f"--run={run.name}", f"--spec={config.spec}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pass --resume (make: TRAIN_ARGS=--resume) to continue it" in err


def test_a_table_without_channels_trains_with_a_spec_without_source(tabular_toy, tmp_path, caplog):
    examples, spec, days = tabular_toy
    config = quick_config(
        examples,
        tmp_path,
        spec=spec,
        run="tabular",
        epochs=3,
        batch_size=256,
        lr=0.003,
        train_days=days["train"][0],
        valid_days=days["valid"][0],
        test_days=days["test"][0],
    )
    with caplog.at_level(logging.INFO, logger="podtarget.model.train"):
        result = train(config)
    assert "one source (all): batches are the natural mix" in caplog.text
    assert result.metrics["sampling"]["shares"] is None and result.metrics["sampling"]["sources"] == ("all",)
    for task in ("Click", "Purchase"):
        m = result.metrics["test"][task]["overall"]
        assert m["rows"] == 2000, (task, m)  # every row evaluates every task
        assert m["roc_auc"] > 0.6 and m["log_loss"] < m["baseline_log_loss"], (task, m)
    model = load_model(result.run_dir)
    assert model.spec.source_column is None and set(model.calibration) == {"Click/all", "Purchase/all"}
    rows = pq.read_table(pathlib.Path(examples) / f"dt={days['test'][0]}").drop_columns(["click", "purchase"])
    rows = rows.slice(0, 5)
    assert {t: p.shape for t, p in model.score(rows).items()} == {"Click": (5,), "Purchase": (5,)}


def test_the_spec_chooses_the_metric_that_picks_the_best_epoch(tabular_toy, tmp_path, caplog):
    examples, spec_path, days = tabular_toy
    text = pathlib.Path(spec_path).read_text() + '\n[evaluation]\nselection_metric = "log_loss"\n'
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    split = {f"{k}_days": v[0] for k, v in days.items()}
    config = quick_config(examples, tmp_path, spec=str(spec), run="ll", epochs=4, patience=4, lr=0.02, **split)
    with caplog.at_level(logging.INFO, logger="podtarget.model.train"):
        result = train(config)
    assert "best epoch: the lowest mean validation log loss of Click, Purchase (every task" in caplog.text
    assert result.metrics["selection"] == {"metric": "log_loss", "tasks": ["Click", "Purchase"]}
    losses = [h["valid_score"] for h in result.history]
    assert len(losses) == 4 and len(set(losses)) == 4
    assert result.best_epoch == 1 + int(np.argmin(losses)) and result.metrics["best_valid_score"] == min(losses)
    mean_ll = np.mean([result.metrics["valid"][t]["overall"]["log_loss"] for t in ("Click", "Purchase")])
    assert mean_ll == pytest.approx(min(losses), rel=1e-6)


def test_bucketed_numerics_and_float_codes_train_and_score_as_they_trained(tabular_toy, tmp_path):
    examples, spec_path, days = tabular_toy
    text = pathlib.Path(spec_path).read_text()
    text = text.replace("age = {}", "age = { buckets = 10 }").replace(
        "price = { log1p = true }", "price = { log1p = true, buckets = 10, clip = [0, 200] }"
    )
    text = text.replace(
        "device = 8", "device = { buckets = 8, embedding_dim = 2 }\nregion = { buckets = 128, floats = true }"
    )
    text = text.replace("min_count = 2 }", "min_count = 2, embedding_dim = 6 }")  # brand: wider than the model's 4
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    split = {f"{k}_days": v[0] for k, v in days.items()}
    result = train(quick_config(examples, tmp_path, spec=str(spec), run="b", epochs=2, batch_size=256, **split))
    model = load_model(result.run_dir)
    assert [f.name for f in model.encoder.single][-2:] == ["age", "price"]
    assert len(model.encoder.edges["age"]) == 9 and model.spec.fingerprint() == result.spec.fingerprint()
    assert model.network.embedding.dim == 6 and model.manifest["layout"]["dims"][:2] == [2, 4]  # device, country
    saved = json.loads((pathlib.Path(result.run_dir) / "normalization.json").read_text())
    assert saved["numeric"]["price"]["edges"] == model.encoder.edges["price"].tolist()
    rows = pq.read_table(pathlib.Path(examples) / f"dt={days['test'][0]}")
    scored = model.score(rows.drop_columns(["click", "purchase"]))
    # The saved model's scores on the test day are the ones its test metrics were computed from.
    auc = roc_auc_score(rows.column("purchase").to_numpy(), scored["Purchase"])
    assert auc == pytest.approx(result.metrics["test"]["Purchase"]["overall"]["roc_auc"], abs=1e-9)


def test_the_spec_alone_sets_the_training_and_a_short_epoch_is_warned(tabular_toy, tmp_path, caplog):
    examples, spec_path, days = tabular_toy
    spec = tmp_path / "spec.toml"
    training = '[training]\nepochs = 2\nbatch_size = 2000\nlr = 0.01\nlr_schedule = "linear"\npatience = 0\n'
    spec.write_text(pathlib.Path(spec_path).read_text() + training)
    split = {f"{k}_days": v[0] for k, v in days.items()}
    config = TrainConfig(examples=examples, out=str(tmp_path), spec=str(spec), run="s", threads=1, **split)
    with caplog.at_level(logging.INFO, logger="podtarget.model.train"):
        result = train(config)
    assert "from the spec's [training]: epochs=2, batch_size=2000, lr=0.01, lr_schedule=linear" in caplog.text
    assert "an epoch is only 3 step(s) of --batch_size=2000 over 6,000 training rows" in caplog.text
    assert len(result.history) == 2 and result.metrics["sampling"]["batch_size"] == 2000
    saved = load_model(result.run_dir).manifest["config"]
    assert (saved["epochs"], saved["lr"], saved["lr_schedule"]) == (2, 0.01, "linear")


def test_a_scheduled_run_resumes_where_its_schedule_was(podcast_toy, tmp_path, monkeypatch):
    """The decay spans the run's epochs: a run cut after its first epoch resumes on the same rates, and resuming
    with other epochs (another decay) is refused."""
    import podtarget.model.train as training

    common = dict(epochs=3, patience=5, lr_schedule="cosine", warmup_steps=3)
    whole = train(toy_config(podcast_toy, tmp_path / "a", **common))
    real = training.write_checkpoint

    def cut_after_the_first_epoch(run, learner, state, fingerprint):
        real(run, learner, state, fingerprint)
        if state.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_checkpoint", cut_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(toy_config(podcast_toy, tmp_path / "b", **common))
    monkeypatch.setattr(training, "write_checkpoint", real)
    with pytest.raises(ArtifactError, match="written by a different configuration"):
        train(toy_config(podcast_toy, tmp_path / "b", **{**common, "epochs": 4}, resume=True))
    resumed = train(toy_config(podcast_toy, tmp_path / "b", **common, resume=True))
    a, b = _weights(whole.run_dir), _weights(resumed.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.metrics["test"] == resumed.metrics["test"]

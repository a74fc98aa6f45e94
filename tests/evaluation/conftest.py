"""A small simulated world with features and mature examples, the ablation driver run on it once, and the A/B
test run on its held-out day: shared by the evaluation tests (built once per session, about 20-30 s)."""

from __future__ import annotations

import datetime
import re

import pytest

from podtarget.evaluation.ablations import run_ablations
from podtarget.evaluation.ablations_config import EvaluateConfig
from podtarget.evaluation.abtest import run_abtest
from podtarget.evaluation.abtest_config import ABTestConfig
from podtarget.model.spec import DEFAULT_SPEC
from podtarget.pipelines import build_examples, build_features
from tests.conftest import simulate

START = datetime.date(2026, 3, 2)
TRAIN, TEST, AB_DAY = START, START + datetime.timedelta(days=1), START + datetime.timedelta(days=2)
SEEDS = (1, 2)  # the driver loops over any number; two give a spread and keep the tests quick


@pytest.fixture(scope="session")
def eval_world(tmp_path_factory) -> str:
    """Data root: 700 users over 5 days; features of days 1-3, examples of days 1-2 (train, test), day 3 held out.
    One-day windows and no lateness make the examples' labels mature inside the 5 simulated days."""
    root = str(tmp_path_factory.mktemp("eval_world") / "data")
    simulate(root, "--n_days=5", "--n_users=700")
    common = [f"--data_root={root}", "--runner=FnApiRunner", "--n_buckets=2"]
    for day in (TRAIN, TEST, AB_DAY):
        build_features.run([*common, f"--date={day}"])
    windows = ["--stream_window_hours=24", "--follow_window_days=1", "--like_window_days=1"]
    for day in (TRAIN, TEST):
        build_examples.run([*common, f"--date={day}", "--allowed_lateness_days=0", *windows])
    return root


@pytest.fixture(scope="session")
def small_spec(tmp_path_factory) -> str:
    """The default spec with every hash table and layer shrunk: the same features, groups and tasks, but runs that
    write kilobytes instead of 50 MB each (the evaluation tests train dozens)."""
    text = DEFAULT_SPEC.read_text()
    text = re.sub(r"buckets = (\d+)", lambda m: f"buckets = {min(int(m.group(1)), 512)}", text)
    text = re.sub(r"^(\w+) = (\d+)$", lambda m: f"{m.group(1)} = {min(int(m.group(2)), 256)}", text, flags=re.M)
    for old, new in (("bottom = [128, 64]", "bottom = [16, 8]"), ("tower = [32]", "tower = [8]")):
        assert old in text, f"the default spec changed: {old!r} not found"
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("spec") / "small.toml"
    path.write_text(text)
    return str(path)


def small_evaluate(root: str, spec: str, models: str, out: str, **changes) -> EvaluateConfig:
    """Every configuration, tiny runs: one epoch of a few batches, one torch thread, no validation day (every
    evaluation pass costs more than the training here)."""
    base = dict(
        examples=f"{root}/examples",
        spec=spec,
        models=models,
        out=out,
        seeds=SEEDS,
        epochs=1,
        batch_size=256,
        max_batches_per_epoch=3,
        train_days=TRAIN.isoformat(),
        valid_days="",
        test_days=TEST.isoformat(),
        threads=1,
        calibration_bins=4,
    )
    return EvaluateConfig(**{**base, **changes})


@pytest.fixture(scope="session")
def ablations(eval_world, small_spec, tmp_path_factory) -> tuple[EvaluateConfig, dict]:
    folder = tmp_path_factory.mktemp("eval_runs")
    config = small_evaluate(eval_world, small_spec, str(folder / "models"), str(folder / "report"))
    return config, run_ablations(config)


def ab_config(root: str, ablation_config: EvaluateConfig, out: str, **changes) -> ABTestConfig:
    base = dict(
        data_root=root,
        models=ablation_config.models,
        out=out,
        days=(AB_DAY,),
        model_seeds=SEEDS,
        bootstrap=200,
        pipeline_args=("--runner=FnApiRunner",),
    )
    return ABTestConfig(**{**base, **changes})


@pytest.fixture(scope="session")
def abtest(eval_world, ablations, tmp_path_factory) -> tuple[ABTestConfig, dict]:
    config = ab_config(eval_world, ablations[0], ablations[0].out)
    return config, run_abtest(config)

"""The cold-start sweep on the evaluation tests' small world: every setup x history x seed trained once (cached),
its Ads AP the runs' own, the baseline shared by every history, paired intervals, the world guard, the report."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from podtarget.common.cli import UsageError
from podtarget.evaluation.coldstart import (
    ALL,
    ColdstartConfig,
    ad_test_rows,
    ensure_world,
    parse_args,
    run_coldstart,
    world_correlation,
)
from podtarget.model.artifacts import load_model
from tests.evaluation.conftest import TEST


@pytest.fixture(scope="module")
def sweep(eval_world, small_spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("coldstart")
    config = ColdstartConfig(
        worlds=((0.0, eval_world),),
        models=str(folder / "models"),
        out=str(folder / "report"),
        seeds=(1, 2, 3),
        history=(1, ALL),
        setups=("baseline", "ads_stream_only", "joint", "joint_promo_head"),
        spec=small_spec,
        epochs=1,
        batch_size=256,
        max_batches_per_epoch=2,
        valid_count=0,
        test_count=1,
        threads=1,
        bootstrap=200,
    )
    return config, run_coldstart(config)


def test_every_setup_history_and_seed_is_measured_on_the_test_days_ad_rows(sweep, eval_world):
    config, result = sweep
    world = result["worlds"]["0"]
    assert world["split"]["test"] == [TEST.isoformat()] and result["history"] == ["1", "all"]
    rows = ad_test_rows(f"{eval_world}/examples", world["split"]["test"])
    y = rows.column("label_stream").to_numpy().astype(float)
    assert world["test_rows"] == len(y) and world["test_streams"] == int(y.sum())
    runs = {(r["setup"], r["seed"]): r for r in world["runs"]}
    assert len(runs) == 3 + 2 * 2 * 3  # the baseline once per seed; the others per history and seed
    for setup, head, run in (("joint", "AdStream", "joint-h1"), ("joint_promo_head", "PromotionStream", "joint-h1")):
        for i, seed in enumerate(config.seeds):
            p = load_model(f"{config.models}/rho0/{run}-s{seed}").score(rows, [head])[head]
            assert world["points"][setup]["1"]["per_seed"][i] == pytest.approx(average_precision_score(y, p))
    assert world["points"]["baseline"]["1"] == world["points"]["baseline"]["all"]
    for by in world["points"].values():
        for point in by.values():
            assert point["ci"][0] <= point["mean"] <= point["ci"][1]
    change = world["changes"]["joint|baseline"]["1"]
    means = {s: np.mean(world["points"][s]["1"]["per_seed"]) for s in ("joint", "baseline")}
    assert change["point"] == pytest.approx(100 * (means["joint"] / means["baseline"] - 1))
    assert world["references"]["constant"] == pytest.approx(y.mean())
    # The history the runs trained on: one day of ad rows at 1, every training day at all.
    assert world["ad_rows_by_history"]["1"]["ad_days"] == world["split"]["train"][-1:]


def test_a_rerun_trains_nothing_and_the_report_shows_the_curve(sweep):
    config, result = sweep
    again = run_coldstart(config)
    assert again["worlds"]["0"]["timing"]["runs_trained"] == 0
    assert again["worlds"]["0"]["points"] == result["worlds"]["0"]["points"]
    from podtarget.evaluation.report import write_report

    text = pathlib.Path(write_report(config.out)).read_text()
    assert "## 3. Cold start: Ads AP against ad history" in text and "](coldstart.png)" in text
    assert "### Correlation 0 (the evaluated world)" in text and str(config.worlds[0][1]) not in text  # no machine path
    assert (pathlib.Path(config.out) / "coldstart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = (pathlib.Path(config.out) / "coldstart.json").read_text()
    assert json.loads(written)["history"] == ["1", "all"]
    assert str(config.worlds[0][1]) not in written and '"$DATA_ROOT"' in written  # no machine path


def test_a_root_holding_a_world_of_another_correlation_is_refused(eval_world):
    assert world_correlation(eval_world) == 0.0
    config = ColdstartConfig(worlds=((0.8, eval_world),))
    with pytest.raises(ValueError, match="holds a world with ad_promo_responsiveness_correlation=0.0, not 0.8"):
        ensure_world(config, 0.8, eval_world)


def test_the_command_line():
    config, _ = parse_args(["--worlds=0:/a,0.8:/b", "--history=1,3,all", "--no_repeat_cap", "--runner=X"])
    assert config.worlds == ((0.0, "/a"), (0.8, "/b")) and config.history == (1, 3, ALL)
    assert config.max_source_repeats is None and config.pipeline_args == ("--runner=X",)
    with pytest.raises(UsageError, match="--worlds '/a': expected CORRELATION:DATA_ROOT"):
        parse_args(["--worlds=/a"])
    with pytest.raises(ValueError, match="at least 3 distinct seeds"):
        ColdstartConfig(worlds=((0.0, "/a"),), seeds=(1, 2))

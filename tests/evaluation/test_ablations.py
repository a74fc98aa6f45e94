"""The ablation driver: every configuration with every seed, figures relative to the same seed's baseline, the
cache (a rerun trains nothing; a changed setting retrains), and its validated configuration."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest

from evaluation.ablations import EvaluateConfig, all_setups, run_ablations, spread
from tests.evaluation.conftest import SEEDS, small_evaluate


def test_every_configuration_runs_with_every_seed(ablations):
    config, result = ablations
    expected = {"baseline", "promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint", "no_mask"}
    expected |= {"no_balance", "mmoe"} | {f"no_{g}" for g in ("user", "content", "context", "campaign", "ad")}
    assert expected <= set(result["setups"]) == set(all_setups())
    for name, setup in result["setups"].items():
        assert sorted(setup["seeds"]) == list(SEEDS), name
        for channel in ("promotions", "ads"):
            assert setup[channel]["ap"]["n"] == len(SEEDS), (name, channel)
            assert setup[channel]["ap"]["mean"] is not None
            assert setup[channel]["ap_by_tier"], (name, channel)
    assert len(result["runs"]) == len(all_setups()) * len(SEEDS)
    paper = {n: s["paper"] for n, s in result["setups"].items() if s["paper"]}
    assert paper["joint"] == {"promotions": 4.5, "ads": 50.2}
    assert set(paper) == {"promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint"}


def test_each_setup_trains_what_it_says(ablations):
    config, result = ablations
    runs = {(r["setup"], r["seed"]): r for r in result["runs"]}
    trained = json.loads(pathlib.Path(f"{config.models}/ads_stream_only-s1/metrics.json").read_text())
    assert trained["trainable_heads"] == ["AdStream"]
    anc = json.loads(pathlib.Path(f"{config.models}/ads_stream_anc-s1/metrics.json").read_text())
    assert anc["trainable_heads"] == ["AdStream", "Click", "Like", "Follow"]
    assert anc["sampling"]["sources"] == ["ad"]
    # Heads without a counterpart are applied to the other channel, never trained on it.
    assert runs[("baseline", 1)]["applied_run"] == "baseline-s1-applied"
    assert runs[("ads_stream_anc", 2)]["applied_run"] == "ads_stream_anc-s2-applied"
    assert "applied_run" not in runs[("joint", 2)]
    applied = json.loads(pathlib.Path(f"{config.models}/baseline-s1-applied/metrics.json").read_text())
    assert applied["trainable_heads"] == [] and applied["applied_heads"] == {"AdStream": "PromotionStream"}
    assert applied["history"] == []


def test_figures_are_relative_to_the_same_seeds_baseline(ablations):
    _, result = ablations
    runs = {(r["setup"], r["seed"]): r for r in result["runs"]}
    for channel in ("promotions", "ads"):
        base = result["setups"]["baseline"][channel]["relative_pct"]
        assert base["mean"] == 0.0 and base["std"] == 0.0
        relative = [100 * (runs[("joint", s)][channel]["ap"] / runs[("baseline", s)][channel]["ap"] - 1) for s in SEEDS]
        assert result["setups"]["joint"][channel]["relative_pct"] == pytest.approx(spread(relative))


def test_a_rerun_reuses_every_run_and_a_changed_setting_retrains(ablations, tmp_path):
    config, result = ablations
    again = run_ablations(dataclasses.replace(config, setups=("baseline", "joint"), out=str(tmp_path / "a")))
    assert again["timing"]["runs_trained"] == 0 and again["timing"]["runs_reused"] == 2 * len(SEEDS)
    assert again["setups"]["joint"]["ads"] == result["setups"]["joint"]["ads"]
    changed = run_ablations(dataclasses.replace(config, setups=("baseline",), seeds=(1,), lr=0.01, out=str(tmp_path)))
    assert changed["timing"]["runs_trained"] == 1


def test_the_report_json_and_calibration_curves(ablations):
    config, result = ablations
    written = json.loads(pathlib.Path(f"{config.out}/ablations.json").read_text())
    assert written["setups"].keys() == result["setups"].keys()
    curves = result["calibration"]["curves"]
    assert set(curves) == {"baseline", "joint"}
    assert curves["baseline"]["ads"]["head"] == "PromotionStream" and curves["joint"]["ads"]["head"] == "AdStream"
    for by_channel in curves.values():
        for c in by_channel.values():
            assert len(c["mean_prediction"]) == len(c["observed_rate"]) == config.calibration_bins
            assert sum(c["rows"]) == c["overall"]["rows"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": ()}, "seeds must be distinct"),
        ({"seeds": (1, 1)}, "seeds must be distinct"),
        ({"setups": ("joint",)}, "must include 'baseline'"),
        ({"setups": ("baseline", "nope")}, "unknown \\['nope'\\]"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be a positive number"),
    ],
)
def test_bad_settings_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        EvaluateConfig(**{"examples": "x", **changes})


def test_small_evaluate_is_the_configuration_under_test(eval_world, small_spec, tmp_path):
    config = small_evaluate(eval_world, small_spec, str(tmp_path / "m"), str(tmp_path / "o"))
    assert config.seeds == SEEDS and config.setups is None

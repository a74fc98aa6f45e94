"""The ablation driver: every configuration with every seed, figures relative to the same seed's baseline with
paired bootstrap intervals, Table 1's directions, like and follow measured, and the cache (a rerun trains nothing;
a changed setting retrains). The mature split and the cache keys are checked in test_runs.py, the validated
configuration in test_ablations_config.py."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from podtarget.evaluation import intervals
from podtarget.evaluation.ablations import run_ablations
from podtarget.evaluation.scored_rows import FIGURES, read_days
from podtarget.evaluation.setups import all_setups
from podtarget.evaluation.table1 import table1_directions
from podtarget.model.artifacts import load_model
from tests.evaluation.conftest import SEEDS, TEST, small_evaluate


def test_every_configuration_runs_with_every_seed(ablations):
    config, result = ablations
    expected = {"baseline", "promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint", "no_mask"}
    expected |= {"no_balance", "no_repeat_cap", "mmoe"} | {
        f"no_{g}" for g in ("user", "content", "context", "campaign", "ad")
    }
    assert expected <= set(result["setups"]) == set(all_setups())
    assert len(result["runs"]) == len(all_setups()) * len(SEEDS)
    written = (pathlib.Path(config.out) / "ablations.json").read_text()
    assert config.examples not in written and '"$DATA_ROOT/examples"' in written  # a report names no machine path
    for channel in ("promotions", "ads"):
        seg = result["figures"][channel]["segments"]["all"]
        assert set(seg["ap"]) == set(all_setups()), channel
        for name, ap in seg["ap"].items():
            assert ap["n"] == len(SEEDS) and len(ap["per_seed"]) == len(SEEDS), (channel, name)
        assert any(n.startswith("tier_") for n in result["figures"][channel]["segments"]), channel
    paper = {n: s["paper"] for n, s in result["setups"].items() if s["paper"]}
    assert paper["joint"] == {"promotions": 4.5, "ads": 50.2}
    assert set(paper) == {"promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint"}


def test_each_setup_trains_what_it_says_and_serves_the_other_channel_with_its_other_head(ablations):
    config, result = ablations
    trained = json.loads(pathlib.Path(f"{config.models}/ads_stream_only-s1/metrics.json").read_text())
    assert trained["trainable_heads"] == ["AdStream"]
    anc = json.loads(pathlib.Path(f"{config.models}/ads_stream_anc-s1/metrics.json").read_text())
    assert anc["trainable_heads"] == ["AdStream", "Click", "Like", "Follow"]
    assert anc["sampling"]["sources"] == ["ad"]
    heads = {f: result["figures"][f]["heads"] for f in FIGURES}
    assert heads["ads"]["baseline"] == "PromotionStream" and heads["ads"]["joint"] == "AdStream"
    assert heads["promotions"]["ads_stream_only"] == "AdStream"
    # Like and Follow are measured for the setups that have those heads, and only those.
    assert {"baseline", "joint", "ads_stream_anc"} <= set(heads["like"]) and "ads_stream_only" not in heads["like"]


def test_ap_and_changes_are_the_scores_own(ablations):
    """The figures recomputed from the runs' own scores: AP per seed as scikit-learn computes it, and the change as
    the relative difference of the seed-mean APs, inside its interval."""
    from sklearn.metrics import average_precision_score

    config, result = ablations
    table = read_days(config.examples, result["split"]["test"])
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    y = table.column("label_stream").to_numpy(zero_copy_only=False).astype(float)
    rows = (source == "ad") & ~np.isnan(y)
    seg = result["figures"]["ads"]["segments"]["all"]
    for setup, head in (("joint", "AdStream"), ("baseline", "PromotionStream")):
        for i, seed in enumerate(SEEDS):
            p = load_model(f"{config.models}/{setup}-s{seed}").score(table, [head])[head]
            assert seg["ap"][setup]["per_seed"][i] == pytest.approx(average_precision_score(y[rows], p[rows]))
    change = seg["change_pct"]["joint|baseline"]
    mean = {s: np.mean(seg["ap"][s]["per_seed"]) for s in ("joint", "baseline")}
    assert change["point"] == pytest.approx(100 * (mean["joint"] / mean["baseline"] - 1))
    lo, hi = change["ci"]
    assert lo <= change["point"] <= hi


def test_the_ground_truth_and_a_constant_bound_every_setup_and_give_its_share_of_the_gain(ablations, eval_world):
    """The references are the world's own probabilities of the test rows (issue: ceiling in every report), and the
    share of the achievable gain is (AP - constant's) / (truth's - constant's) of the seed-mean AP."""
    from sklearn.metrics import average_precision_score

    from podtarget.evaluation.truth import reference_scores
    from podtarget.simulator.world import World

    config, result = ablations
    table = read_days(config.examples, result["split"]["test"])
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    y = table.column("label_stream").to_numpy(zero_copy_only=False).astype(float)
    truth = reference_scores(World.load(f"{eval_world}/world"), table)
    for figure, src in (("ads", "ad"), ("promotions", "promo")):
        seg = result["figures"][figure]["segments"]["all"]
        rows = (source == src) & ~np.isnan(y)
        refs = seg["references"]
        assert refs["constant"] == pytest.approx(y[rows].mean())
        for name in ("truth", "truth_shared"):
            assert refs[name] == pytest.approx(average_precision_score(y[rows], truth[name][rows]))
        for setup in ("baseline", "joint"):
            mean = np.mean(seg["ap"][setup]["per_seed"])
            share = seg["gain_share"][setup]["truth"]
            assert share["point"] == pytest.approx((mean - refs["constant"]) / (refs["truth"] - refs["constant"]))
            assert share["ci"][0] <= share["point"] <= share["ci"][1]
    # Like and follow: the stream probabilities do not rank them; only the constant is a reference.
    assert set(result["figures"]["like"]["segments"]["all"]["references"]) == {"constant"}


def test_the_offline_metrics_matched_to_the_auction_are_reported_for_every_setup(ablations):
    config, result = ablations
    for figure in ("ads", "promotions"):
        auc = result["ranking"][figure]["within_user_auc"]
        ap = result["ranking"][figure]["within_campaign_ap"]
        assert auc["pairs"] > 0 and ap["campaigns"] > 0
        assert set(auc["setups"]) == set(result["setups"])
        assert auc["references"]["constant"] == 0.5  # every pair tied
        for value in auc["setups"].values():
            assert 0 <= value["mean"] <= 1 and len(value["per_seed"]) == len(SEEDS)
            assert value["ci"][0] <= value["mean"] <= value["ci"][1]
        change = auc["change_vs_baseline"]["joint"]
        base = auc["setups"]["baseline"]["mean"]
        assert change["point"] == pytest.approx(auc["setups"]["joint"]["mean"] - base)
        assert ap["change_vs_baseline"]["joint"]["point"] == pytest.approx(
            100 * (ap["setups"]["joint"]["mean"] / ap["setups"]["baseline"]["mean"] - 1)
        )


def test_every_table1_direction_gets_a_verdict(ablations):
    _, result = ablations
    names = [d["name"] for d in result["directions"]]
    assert names == [d.name for d in table1_directions()] and len(names) == 11
    for d in result["directions"]:
        assert d["verdict"] == intervals.verdict(d["ci"], d["paper"])
        change = result["figures"][d["channel"]]["segments"]["all"]["change_pct"][f"{d['setup']}|{d['versus']}"]
        assert d["ours"] == change["point"] and d["ci"] == change["ci"]


def test_like_and_follow_are_measured_on_mature_labels(ablations):
    _, result = ablations
    for figure in ("like", "follow"):
        seg = result["figures"][figure]["segments"]["all"]
        assert seg["rows"] > 0 and result["figures"][figure]["immature_days"] == [], figure
        if "ap" in seg:  # defined where the tiny test day holds both classes
            assert seg["ap"]["joint"]["n"] == len(SEEDS)


def test_a_rerun_reuses_every_run_and_a_changed_setting_retrains(ablations, tmp_path):
    config, result = ablations
    again = run_ablations(dataclasses.replace(config, setups=("baseline", "joint"), out=str(tmp_path / "a")))
    assert again["timing"]["runs_trained"] == 0 and again["timing"]["runs_reused"] == 2 * len(SEEDS)
    ads = result["figures"]["ads"]["segments"]["all"]
    assert again["figures"]["ads"]["segments"]["all"]["ap"]["joint"] == ads["ap"]["joint"]
    changed = run_ablations(dataclasses.replace(config, setups=("baseline",), seeds=(1,), lr=0.01, out=str(tmp_path)))
    assert changed["timing"]["runs_trained"] == 1


def test_the_report_json_and_calibration_curves(ablations):
    config, result = ablations
    written = json.loads(pathlib.Path(f"{config.out}/ablations.json").read_text())
    assert written["setups"].keys() == result["setups"].keys()
    assert written["directions"] == json.loads(json.dumps(result["directions"]))
    curves = result["calibration"]["curves"]
    assert set(curves) == {"baseline", "joint"}
    assert curves["baseline"]["ads"]["head"] == "PromotionStream" and curves["joint"]["ads"]["head"] == "AdStream"
    for by_channel in curves.values():
        for c in by_channel.values():
            assert len(c["mean_prediction"]) == len(c["observed_rate"]) == config.calibration_bins
            assert sum(c["rows"]) == c["overall"]["rows"]


def test_small_evaluate_is_the_configuration_under_test(eval_world, small_spec, tmp_path):
    config = small_evaluate(eval_world, small_spec, str(tmp_path / "m"), str(tmp_path / "o"))
    assert config.seeds == SEEDS and config.setups is None and config.test_days == TEST.isoformat()

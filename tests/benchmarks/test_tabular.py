"""benchmarks/tabular.py without training: the trainer configurations it compares, and its verdict."""

import pytest

from benchmarks.tabular import LGBM_LEAVES, SPEC, ceiling_auc, lightgbm_auc, split_days, summary, variant
from podtarget.model.spec import load_spec
from podtarget.simulator.tabular import TabularConfig, write_tabular


def test_the_configurations_are_the_documented_spec_and_what_it_adds():
    spec = load_spec(SPEC)
    assert variant(spec, "documented") == spec and spec.training and spec.source_column is None
    defaults = variant(spec, "defaults")
    assert defaults.training == {} and defaults.features == spec.features
    plain = variant(spec, "no_buckets")
    assert plain.training == spec.training
    assert not any(f.buckets or f.clip for f in plain.features_of("numeric"))
    region = {f.name: f for f in plain.features}["region"]
    assert (region.kind, region.missing) == ("numeric", True)
    with pytest.raises(ValueError, match="unknown configuration 'best'"):
        variant(spec, "best")


def test_the_verdict_is_the_documented_configurations_gap_on_every_task():
    runs = {
        "lightgbm": [{"Click": {"auc": 0.800}, "Purchase": {"auc": 0.900}}] * 2,
        "documented": [
            {"Click": {"auc": 0.799}, "Purchase": {"auc": 0.897}},
            {"Click": {"auc": 0.801}, "Purchase": {"auc": 0.899}},
        ],
        "defaults": [{"Click": {"auc": 0.75}, "Purchase": {"auc": 0.85}}] * 2,
    }
    out = summary(runs)
    assert out["gap_to_lightgbm"] == {
        "documented": {"Click": 0.0, "Purchase": 0.002},
        "defaults": {"Click": 0.05, "Purchase": 0.05},
    }
    assert out["targets_met"]
    runs["documented"][0]["Purchase"]["auc"] = 0.890
    assert not summary(runs)["targets_met"]


def test_the_table_must_be_three_days(tmp_path):
    (tmp_path / "dt=2026-01-01").mkdir()
    with pytest.raises(ValueError, match="expected the three days of the tabular table, found"):
        split_days(tmp_path)
    for day in ("2026-01-02", "2026-01-03"):
        (tmp_path / f"dt={day}").mkdir()
    assert split_days(tmp_path) == {"train": "2026-01-01", "valid": "2026-01-02", "test": "2026-01-03"}


def test_lightgbm_is_tuned_on_the_validation_day(tmp_path):
    pytest.importorskip("lightgbm")
    write_tabular(TabularConfig(train_rows=2000, valid_rows=1000, test_rows=1000), tmp_path)
    out = lightgbm_auc(tmp_path, split_days(tmp_path), seed=1, threads=1)
    assert set(out) == {"Click", "Purchase"}
    for task in out.values():
        assert task["leaves"] in LGBM_LEAVES and 0.5 < task["auc"] <= 1 and 0.5 < task["valid_auc"] <= 1


def test_the_ceiling_is_the_true_probabilities_auc_of_the_default_table_only(tmp_path):
    small = tmp_path / "small"
    write_tabular(TabularConfig(train_rows=2000, valid_rows=1000, test_rows=1000), small)
    assert ceiling_auc(small, split_days(small)) is None  # another table: no truth to score it with
    default = tmp_path / "default"
    write_tabular(TabularConfig(), default)
    ceiling = ceiling_auc(default, split_days(default))
    assert ceiling is not None and set(ceiling) == {"Click", "Purchase"}
    assert all(0.8 < auc < 0.95 for auc in ceiling.values())

"""The A/B test's configuration: a bad setting says what was expected; days are dates."""

from __future__ import annotations

import datetime

import pytest

from podtarget.evaluation.abtest_config import ABTestConfig
from tests.evaluation.conftest import AB_DAY


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"bootstrap": 10},
            r"^The 'bootstrap' parameter of ABTestConfig must be an int in the range \[100, inf\)\. Got 10 ",
        ),
        (
            {"confidence": 1.0},
            r"'confidence' parameter of ABTestConfig must be a float in the range \[0.5, 1\)\. Got 1.0",
        ),
        ({"data_root": "gs://b/x"}, r"'data_root' parameter of ABTestConfig must be a local folder .* Got 'gs://b/x' "),
        ({"data_root": ""}, r"'data_root' parameter of ABTestConfig must be a local folder .*, e.g. ./data\. Got '' "),
        ({"days": (AB_DAY, AB_DAY)}, r"'days' parameter of ABTestConfig must be distinct days\. Got \['20"),
        ({"hour": 24}, r"'hour' parameter of ABTestConfig must be an int in the range \[0, 23\]\. Got 24 instead"),
        (
            {"model_seeds": ()},
            r"'model_seeds' parameter of ABTestConfig must be distinct ints, at least one\. Got \(\)",
        ),
        (
            {"model_seeds": (1, 2), "control": "models/x"},
            r"'model_seeds' parameter of ABTestConfig must be a single seed when control or treatment is given",
        ),
        (
            {"reserve_cpm_micros": -1},
            r"'reserve_cpm_micros' parameter of ABTestConfig must be an int in the range \[0, inf\)",
        ),
        ({"draw_seed": -1}, r"'draw_seed' parameter of ABTestConfig must be an int in the range \[0, inf\)\. Got -1"),
        ({"arms": ("treatment", "control")}, r"'arms' parameter of ABTestConfig must be 'control', 'treatment', then"),
        ({"arms": ("control", "treatment", "psychic")}, r"'arms' parameter .* any of \['random', 'truth_shared'"),
        ({"designs": ("lottery",)}, r"'designs' parameter of ABTestConfig must be some of \['auction', 'audience'\]"),
        ({"audience_shares": (0.1, 0.05)}, r"'audience_shares' .* two or more increasing shares in \(0, 1\]"),
        ({"audience_shares": (0.1,), "matched_share": 0.1}, r"'audience_shares' .* two or more increasing shares"),
        ({"matched_share": 0.07}, r"'matched_share' parameter of ABTestConfig must be one of \[0.01, 0.02, 0.05"),
    ],
)
def test_bad_settings_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        ABTestConfig(**{"data_root": "./data", **changes})


def test_days_are_dates():
    assert ABTestConfig(data_root="x", days=[datetime.date(2026, 3, 4)]).days == (datetime.date(2026, 3, 4),)

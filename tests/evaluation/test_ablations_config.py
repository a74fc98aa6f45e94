"""The ablations' configuration: a bad setting says what was expected."""

from __future__ import annotations

import pytest

from podtarget.evaluation.ablations_config import EvaluateConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": ()}, r"^The 'seeds' parameter of EvaluateConfig must be distinct ints .* Got \(\) instead\.$"),
        ({"seeds": (1, 1)}, r"'seeds' parameter of EvaluateConfig must be distinct ints .* Got \(1, 1\) instead"),
        ({"seeds": (-1,)}, r"'seeds' parameter of EvaluateConfig must be distinct ints in the range \[0, inf\)"),
        ({"setups": ("joint",)}, r"'setups' parameter of EvaluateConfig must be setups including 'baseline'"),
        (
            {"setups": ("baseline", "nope")},
            r"'setups' parameter .* must be some of \['baseline', .* Got \('baseline', 'nope'\)",
        ),
        (
            {"epochs": 0},
            r"^The 'epochs' parameter of EvaluateConfig must be an int in the range \[1, inf\)\. Got 0 instead\.$",
        ),
        ({"lr": -1.0}, r"'lr' parameter of EvaluateConfig must be a float in the range \(0, inf\)\. Got -1.0 instead"),
        (
            {"split": "random"},
            r"'split' parameter of EvaluateConfig must be a str among \['trainer', 'mature'\]\. Got 'random'",
        ),
        (
            {"split": "mature", "test_days": "2026-03-04"},
            r"'split' parameter of EvaluateConfig must be 'trainer' when test_days are set \('mature' chooses the days "
            r"itself: leave test_days unset\)\. Got 'mature' instead",
        ),
        ({"test_count": 0}, r"'test_count' parameter of EvaluateConfig must be an int in the range \[1, inf\)"),
        ({"bootstrap": 50}, r"'bootstrap' parameter of EvaluateConfig must be an int in the range \[100, inf\)"),
        ({"confidence": 1.5}, r"'confidence' parameter of EvaluateConfig must be a float in the range \[0.5, 1\)"),
        ({"threads": 0}, r"'threads' parameter of EvaluateConfig must be an int in the range \[1, inf\) or None"),
    ],
)
def test_bad_settings_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        EvaluateConfig(**{"examples": "x", **changes})

"""The bootstrap behind every interval of the evaluation: weighted AP is scikit-learn's AP of the repeated rows,
resamples are paired, intervals cover a known truth about as often as they claim, and verdicts read intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from podtarget.evaluation import intervals


def _data(rng: np.random.Generator, n: int, rate: float, signal: float, ties: bool = True):
    y = (rng.random(n) < rate).astype(float)
    p = rng.random(n) + signal * y
    return y, (np.round(p, 2) if ties else p)


def test_weighted_ap_is_sklearns_ap_of_the_repeated_rows():
    rng = np.random.default_rng(1)
    y, p = _data(rng, 3000, 0.05, 0.3)  # rounded scores: many ties
    assert intervals.average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    weights = rng.poisson(1.0, size=(3000, 5)).astype(np.float32)
    got = intervals.WeightedAP(y, p)(weights)
    for b in range(5):
        repeated = np.repeat(np.arange(3000), weights[:, b].astype(int))
        assert got[b] == pytest.approx(average_precision_score(y[repeated], p[repeated]), abs=1e-12)


def test_weighted_ap_without_positives_is_nan_and_bad_shapes_are_refused():
    assert np.isnan(intervals.WeightedAP(np.zeros(4), np.arange(4.0))(np.ones((4, 2), np.float32))).all()
    rows = np.ones((4, 1), np.float32)
    rows[1] = 0  # the only positive drawn zero times
    assert np.isnan(intervals.WeightedAP(np.array([0, 1.0, 0, 0]), np.arange(4.0))(rows))[0]
    with pytest.raises(ValueError, match="one length"):
        intervals.WeightedAP(np.zeros(3), np.zeros(4))


def test_resamples_are_paired_across_models_and_segments():
    """The same model twice gets identical resampled APs: one weight per row, shared by every model; a segment's
    rows take their weights from the table's rows."""
    rng = np.random.default_rng(2)
    y, p = _data(rng, 2000, 0.1, 0.5, ties=False)
    half = np.arange(1000, 2000)
    boot = intervals.paired_ap_bootstrap(
        2000,
        {"all": (np.arange(2000), y, {"a": p, "b": p.copy()}), "half": (half, y[half], {"a": p[half]})},
        resamples=150,
        rng=np.random.default_rng(3),
        block=40,
    )
    assert np.array_equal(boot["all"]["a"], boot["all"]["b"])
    assert boot["all"]["a"].shape == (150,) and np.isfinite(boot["half"]["a"]).all()
    assert not np.array_equal(boot["all"]["a"], boot["half"]["a"])


def test_the_paired_interval_covers_a_known_difference():
    """Two models whose true AP ratio is known from a huge sample: the 90% interval over a small test set covers
    it in most of 30 independent test sets (and is narrow enough to exclude zero when the gap is large)."""
    rng = np.random.default_rng(4)

    def sample(n):
        y = (rng.random(n) < 0.05).astype(float)
        strong = rng.normal(size=n) + 1.2 * y
        weak = rng.normal(size=n) + 0.5 * y
        return y, strong, weak

    y, strong, weak = sample(400_000)
    truth = 100 * (intervals.average_precision(y, strong) / intervals.average_precision(y, weak) - 1)
    covered, excluded_zero = 0, 0
    for _ in range(30):
        y, strong, weak = sample(6000)
        boot = intervals.paired_ap_bootstrap(
            6000, {"s": (np.arange(6000), y, {"strong": strong, "weak": weak})}, 300, rng
        )["s"]
        change = intervals.relative_change(boot["strong"][:, None], boot["weak"][:, None])
        lo, hi = intervals.percentile_interval(change, 0.90)
        covered += lo <= truth <= hi
        excluded_zero += lo > 0
    assert covered >= 22, covered  # 90% nominal: 27 expected; the percentile bootstrap runs a little narrow
    assert excluded_zero == 30


def test_relative_change_averages_over_the_drawn_seeds():
    setup, base = np.array([0.2, 0.4]), np.array([0.1, 0.4])
    assert intervals.relative_change(setup, base) == pytest.approx(100 * (0.6 / 0.5 - 1))
    drawn = np.array([[2.0, 0.0], [0.0, 2.0]])  # resample 1 drew seed 0 twice, resample 2 seed 1 twice
    assert intervals.relative_change(np.tile(setup, (2, 1)), np.tile(base, (2, 1)), drawn) == pytest.approx([100, 0])
    draws = intervals.seed_draws(np.random.default_rng(0), 500, 5)
    assert draws.shape == (500, 5) and (draws.sum(axis=1) == 5).all() and draws.max() > 1


def test_verdicts_read_the_interval_against_the_papers_sign():
    assert intervals.verdict([1.0, 5.0], +50.2) == "reproduced"
    assert intervals.verdict([-5.0, -1.0], -65.2) == "reproduced"
    assert intervals.verdict([-5.0, -1.0], +46.5) == "reversed"
    assert intervals.verdict([-1.0, 5.0], +4.5) == "inconclusive"
    assert intervals.verdict(None, +4.5) == "inconclusive"
    with pytest.raises(ValueError, match="needs a sign"):
        intervals.verdict([1.0, 2.0], 0.0)


def test_percentile_interval_needs_enough_finite_values():
    assert intervals.percentile_interval(np.r_[np.arange(100.0), np.nan], 0.9) == pytest.approx([4.95, 94.05])
    assert intervals.percentile_interval(np.r_[np.arange(10.0), [np.nan] * 90], 0.9) is None


def test_lift_bootstrap_resamples_seeds_and_units_together():
    """counts[seed, unit, arm, counter]: a lift that is the same in every unit and seed has a degenerate interval;
    one that differs between seeds spreads over them."""
    counts = np.ones((3, 40, 2, 1))
    counts[:, :, 1, 0] = 1.2
    lift = intervals.bootstrap_lifts(
        counts, lambda s: 100 * (s[..., 1, 0] / s[..., 0, 0] - 1), 300, np.random.default_rng(0)
    )
    assert lift == pytest.approx(np.full(300, 20.0))
    counts[1, :, 1, 0] = 2.0  # seed 1's treatment doubles
    lift = intervals.bootstrap_lifts(
        counts, lambda s: 100 * (s[..., 1, 0] / s[..., 0, 0] - 1), 300, np.random.default_rng(0)
    )
    assert lift.min() == pytest.approx(20.0) and lift.max() == pytest.approx(100.0)

"""The A/B figures' arithmetic on handmade counters: lifts against control, positions between random and oracle,
and the audience design's arms read at the control's delivery."""

from __future__ import annotations

import numpy as np
import pytest

from podtarget.evaluation.abtest_figures import (
    COUNTERS,
    at_delivery,
    auction_segment,
    audience_segment,
    lift_arrays,
    positions,
)

ARMS = ("control", "treatment", "random", "truth_shared", "oracle")


def counters(impressions, expected_streams, spend=None, streams=None):
    c = dict.fromkeys(COUNTERS, 0.0)
    c.update(impressions=impressions, expected_streams=expected_streams, reach=impressions)
    c.update(spend_micros=impressions * 10e3 if spend is None else spend, clicks=0.0)
    c["streams"] = expected_streams if streams is None else streams
    return [c[k] for k in COUNTERS]


def test_lifts_and_positions_between_random_and_oracle():
    # Expected i2s: control 2%, treatment 3%, random 1%, truth_shared 4%, oracle 6%.
    summed = np.array([counters(1000, e) for e in (20, 30, 10, 40, 60)], float)
    lifts = lift_arrays(summed)
    assert lifts["expected_i2s"].tolist() == pytest.approx([0, 50, -50, 100, 200])
    assert positions(summed, ARMS).tolist() == pytest.approx([0.2, 0.4, 0, 0.6, 1])


def test_arms_are_read_at_the_controls_delivery_by_interpolation():
    shares = (0.02, 0.05, 0.2)
    # [arm, share, counter]: control sells 100 / 200 / 400 impressions; treatment 50 / 150 / 300; the others
    # sell too few to reach 200 at their largest share (oracle) or too many at their smallest (random).
    table = {
        "control": [(100, 4), (200, 6), (400, 9)],
        "treatment": [(50, 3), (150, 6), (300, 9)],
        "random": [(250, 2), (500, 4), (900, 8)],
        "truth_shared": [(100, 5), (200, 8), (400, 12)],
        "oracle": [(20, 3), (60, 6), (150, 12)],
    }
    summed = np.array([[counters(i, e) for i, e in table[a]] for a in ARMS], float)
    matched, target = at_delivery(summed, shares, 0.05, "impressions")
    assert target == 200
    i = COUNTERS.index("expected_streams")
    assert matched[0, i] == 6 and matched[1, i] == pytest.approx(6 + (9 - 6) * (200 - 150) / (300 - 150))
    assert matched[3, i] == 8
    assert np.isnan(matched[2]).all() and np.isnan(matched[4]).all()  # the control's delivery is out of their reach


def test_the_audience_segment_compares_arms_at_matched_impressions_and_spend():
    shares = (0.02, 0.05, 0.2)
    rng = np.random.default_rng(0)
    per_unit = np.zeros((2, 30, len(ARMS), len(shares), len(COUNTERS)))
    for a, (rate, volume) in enumerate([(0.02, 1.0), (0.03, 0.7), (0.01, 1.0), (0.04, 0.9), (0.06, 0.8)]):
        for j, q in enumerate(shares):
            imps = rng.poisson(100 * volume * (1 + 10 * q), size=(2, 30)).astype(float)
            exp = imps * rate * (1 - q)  # i2s falls as audiences grow
            for s in range(2):
                for u in range(30):
                    per_unit[s, u, a, j] = counters(imps[s, u], exp[s, u])
    out = audience_segment(per_unit, ARMS, shares, 0.05, 200, 0.95, np.random.default_rng(1))
    totals = per_unit.sum(axis=(0, 1))
    matched, target = at_delivery(totals[None], shares, 0.05, "impressions")
    block = out["matched"]["impressions"]
    assert block["control_at"] == target[0] == totals[0, 1, 0]
    e = COUNTERS.index("expected_streams")
    rates = {arm: matched[0, a, e] / target[0] for a, arm in enumerate(ARMS)}
    assert block["arms"]["treatment"]["rates"]["expected_i2s"] == pytest.approx(rates["treatment"])
    assert block["arms"]["treatment"]["lift_pct"]["expected_i2s"] == pytest.approx(
        100 * (rates["treatment"] / rates["control"] - 1)
    )
    lo, hi = block["arms"]["treatment"]["ci_pct"]["expected_i2s"]
    assert lo <= block["arms"]["treatment"]["lift_pct"]["expected_i2s"] <= hi
    assert block["arms"]["oracle"]["position"]["point"] in (None, pytest.approx(1.0))
    assert out["by_share"]["0.05"]["control"]["impressions"] == totals[0, 1, 0]
    assert out["matched"]["spend_micros"]["control_at"] == totals[0, 1, COUNTERS.index("spend_micros")]


def test_the_auction_segment_reports_every_arm_against_control():
    counts = np.zeros((2, 20, len(ARMS), len(COUNTERS)))
    for a, e in enumerate((20, 30, 10, 40, 60)):
        counts[:, :, a] = counters(50.0, e / 20)
    out = auction_segment(counts, ARMS, 200, 0.95, np.random.default_rng(0))
    assert out["lift_pct"]["treatment"]["expected_i2s"] == pytest.approx(50)
    assert out["ci_pct"]["treatment"]["expected_i2s"] == pytest.approx([50, 50])  # identical units: no spread
    assert out["position"]["treatment"]["point"] == pytest.approx(0.4)
    assert out["arms"]["oracle"]["expected_i2s"] == pytest.approx(0.06)

"""Calibration per head and source: the Platt fit itself, and what a trained run records and applies."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from podtarget.model import calibration
from podtarget.model.artifacts import load_model


def test_platt_fit_recovers_a_known_distortion():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.001, 0.3, 400_000)
    truth = calibration.sigmoid(0.6 * calibration.logit(p) - 0.8)  # over-spread and over-predicting scores
    y = rng.random(len(p)) < truth
    a, b = calibration.fit_platt(p, y)
    assert a == pytest.approx(0.6, abs=0.03) and b == pytest.approx(-0.8, abs=0.1)
    before, after = calibration.summary(p, y), calibration.summary(calibration.apply(p, a, b), y)
    assert before["calibration"] > 1.1 and after["calibration"] == pytest.approx(1.0, abs=1e-6)
    assert after["log_loss"] < before["log_loss"]


def test_a_reversed_score_keeps_its_ranking_only_the_level_moves():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.01, 0.5, 50_000)
    y = rng.random(len(p)) < (0.5 - p)  # higher score, fewer positives: a slope fit would flip the ranks
    a, b = calibration.fit_platt(p, y)
    assert a == 1.0
    assert calibration.apply(p, a, b).mean() == pytest.approx(y.mean(), rel=1e-6)
    order = np.argsort(p)
    assert (np.diff(calibration.apply(p, a, b)[order]) >= 0).all()


def test_too_few_positives_leave_the_head_as_it_is():
    p, y = np.full(1000, 0.1), np.zeros(1000)
    y[:5] = 1
    fit = calibration.fit_all({("Follow", "promo"): (p, y)}, {})
    assert fit["Follow/promo"]["fitted"] is False and "5 validation positives" in fit["Follow/promo"]["reason"]


def test_a_trained_run_is_calibrated_per_head_and_source_it_serves(trained_toy):
    run = pathlib.Path(trained_toy.run_dir)
    fit = json.loads((run / "calibration.json").read_text())
    model = load_model(str(run))
    served = {f"{head}/{s}" for head, (_, sources) in model.trained_for().items() for s in sources}
    assert set(fit) == served  # e.g. AdStream/ad and AdStream/promo, but no Follow/ad: ad rows never train it
    assert "Follow/ad" not in fit and "AdStream/ad" in fit
    fitted = [k for k, v in fit.items() if v["fitted"]]
    assert fitted, fit
    for key in fitted:
        # The intercept's likelihood equation makes the mean calibrated prediction the positive rate, exactly.
        assert fit[key]["valid_after"]["calibration"] == pytest.approx(1.0, abs=1e-4)
        assert fit[key]["valid_after"]["log_loss"] <= fit[key]["valid_before"]["log_loss"] + 1e-9
        head, source = key.split("/")
        p = np.array([0.01, 0.05, 0.2], np.float32)
        entry = fit[key]
        assert model.calibrate(head, source, p) == pytest.approx(calibration.apply(p, entry["a"], entry["b"]))

"""Calibration of each head's probabilities per source (Platt scaling), so that scores are comparable across heads.

Scoring ranks a user's campaigns of different objectives and channels together (``user_rankings``), so a score of
one head must mean what the same score of another means: the probability of the outcome. Heads trained with
source-balanced batches, masked losses and early stopping on AP are not calibrated by construction (Click
over-predicted by 25% on the demo). After training, each (head, source) pair a head serves gets
``p' = sigmoid(a * logit(p) + b)`` fitted by maximum likelihood on the validation split's observed rows of that
source (never on the test split). ``a`` is kept positive, so the ranking within one head and source is unchanged;
with too few positives to fit, the pair stays as it is and says so.

The fit and its figures (calibration ratio and log loss before and after, on the validation rows and on the test
rows) go to ``calibration.json`` in the run folder; ``TrainedModel.calibrate`` applies it.
"""

from __future__ import annotations

import numpy as np

MIN_POSITIVES = 20  # below this many validation positives a fit is noise: the head is left as it is
EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, np.float64)))  # no overflow for large |z|


def fit_platt(p: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``y`` under ``sigmoid(a * logit(p) + b)`` (Newton's method); if the
    best slope is not positive, the slope stays 1 and only the intercept is fitted (ranks never flip)."""
    x, y = logit(p), np.asarray(y, np.float64)
    a, b = _newton(x, y, fit_slope=True, iterations=iterations)
    if not a > 0:
        a, b = _newton(x, y, fit_slope=False, iterations=iterations)
    return float(a), float(b)


def _newton(x: np.ndarray, y: np.ndarray, fit_slope: bool, iterations: int) -> tuple[float, float]:
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        q = sigmoid(w[0] * x + w[1])
        r, h = q - y, np.maximum(q * (1 - q), 1e-12)
        if fit_slope:
            grad = np.array([r @ x, r.sum()])
            hess = np.array([[h @ (x * x), h @ x], [h @ x, h.sum()]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, grad)
        else:
            step = np.array([0.0, r.sum() / h.sum()])
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def apply(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated probabilities (the dtype of ``p``)."""
    return sigmoid(a * logit(p) + b).astype(np.asarray(p).dtype)


def summary(p: np.ndarray, y: np.ndarray) -> dict:
    """Rows, positives, mean prediction over positive rate (1 = calibrated) and log loss."""
    p, y = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS), np.asarray(y, np.float64)
    rate = y.mean() if len(y) else 0.0
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "calibration": float(p.mean() / rate) if rate > 0 else None,
        "log_loss": float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean()) if len(y) else None,
    }


def fit_all(
    pairs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    test: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
) -> dict:
    """Per ``"head/source"``: the fitted ``a``, ``b`` (or ``fitted: False`` and why) with the figures before and
    after on the validation rows it was fitted on and on the test rows. ``pairs`` and ``test`` map (head, source)
    to (probabilities, labels) of observed rows."""
    out = {}
    for (head, source), (p, y) in sorted(pairs.items()):
        entry: dict = {"valid_before": summary(p, y)}
        tp, ty = test.get((head, source), (np.empty(0), np.empty(0)))
        if len(tp):
            entry["test_before"] = summary(tp, ty)
        if int(np.sum(y)) < MIN_POSITIVES or int(np.sum(y)) == len(y):
            entry.update(fitted=False, reason=f"{int(np.sum(y))} validation positives of {len(y)} rows")
        else:
            a, b = fit_platt(p, y)
            entry.update(fitted=True, a=a, b=b, valid_after=summary(apply(p, a, b), y))
            if len(tp):
                entry["test_after"] = summary(apply(tp, a, b), ty)
        out[f"{head}/{source}"] = entry
    return out

"""Per-task evaluation: average precision (primary), ROC-AUC, log loss and calibration, overall and by slice.

Each task is evaluated on the rows whose label is observed and whose source is one of the task's
``eval_sources`` (AdStream on ad rows, PromotionStream on promotion rows). Scores come from scikit-learn::

    >>> report = task_report(y_true, y_prob, slices)     # {"overall": {...}, "by_slice": {"0": {...}, ...}}
    >>> print(format_table({"test": {"AdStream": report}}))

A slice with a single class reports ``average_precision``/``roc_auc`` as null with the reason, never a crash.
``baseline_log_loss`` is the log loss of the best constant predictor (the slice's own positive rate), and the
constant predictor's average precision is the positive rate, so ``ap_lift`` = AP / positive rate says how far the
model is above a constant.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

EPS = 1e-7


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Metrics of one task on one slice; ``y`` in {0, 1}, ``p`` probabilities."""
    n = int(y.size)
    out: dict = {"rows": n, "positives": int(y.sum()) if n else 0}
    if n == 0:
        return {**out, "note": "no rows with an observed label"}
    rate = float(y.mean())
    mean_p = float(p.mean())
    clipped = np.clip(p, EPS, 1 - EPS)
    out.update(
        positive_rate=rate,
        mean_prediction=mean_p,
        calibration=mean_p / rate if rate > 0 else None,
        log_loss=float(log_loss(y, clipped, labels=[0, 1])),
        baseline_log_loss=float(log_loss(y, np.full(n, min(max(rate, EPS), 1 - EPS)), labels=[0, 1])),
    )
    if 0 < out["positives"] < n:
        ap = float(average_precision_score(y, p))
        out.update(average_precision=ap, ap_lift=ap / rate, roc_auc=float(roc_auc_score(y, p)))
    else:
        only = "positive" if out["positives"] else "negative"
        out.update(average_precision=None, roc_auc=None, ap_lift=None, note=f"only {only} labels: AP/AUC undefined")
    return out


def task_report(y: np.ndarray, p: np.ndarray, slices: np.ndarray | None = None) -> dict:
    """Overall metrics plus one entry per slice value (rows with slice -1 count only overall)."""
    report = {"overall": binary_metrics(y, p)}
    if slices is not None:
        by = {}
        for value in np.unique(slices[slices >= 0]):
            rows = slices == value
            by[str(int(value))] = binary_metrics(y[rows], p[rows])
        report["by_slice"] = by
    return report


def evaluate_arrays(
    tasks: list[str], probs: np.ndarray, y: np.ndarray, mask: np.ndarray, slices: np.ndarray | None
) -> dict:
    """Reports of every task from stacked arrays ``[rows, tasks]``; ``mask`` selects each task's eval rows."""
    out = {}
    for i, task in enumerate(tasks):
        rows = mask[:, i] > 0
        out[task] = task_report(y[rows, i], probs[rows, i], None if slices is None else slices[rows])
    return out


def _fmt(value, kind: str = "f") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{value:,}"
    return f"{value:.4f}"


def format_table(splits: Mapping[str, Mapping[str, dict]], slice_name: str = "slice") -> str:
    """A readable table per split: one line per task overall, then per slice value."""
    header = (
        f"{'task':<16} {'slice':>9} {'rows':>9} {'pos':>7} {'rate':>7} {'AP':>7} {'lift':>6} {'AUC':>7} "
        f"{'logloss':>8} {'const':>8} {'calib':>6}"
    )
    lines = []
    short = slice_name.rsplit("_", 1)[-1][:5]  # podcast_popularity_tier -> tier
    for split, tasks in splits.items():
        lines += [f"[{split}]", header, "-" * len(header)]
        for task, report in tasks.items():
            rows = [("all", report["overall"])] + [(f"{short}={k}", v) for k, v in report.get("by_slice", {}).items()]
            for label, m in rows:
                lines.append(
                    f"{task:<16} {label:>9} {_fmt(m['rows'], 'int'):>9} {_fmt(m['positives'], 'int'):>7} "
                    f"{_fmt(m.get('positive_rate'), 'pct'):>7} {_fmt(m.get('average_precision')):>7} "
                    f"{_fmt(m.get('ap_lift')):>6} {_fmt(m.get('roc_auc')):>7} {_fmt(m.get('log_loss')):>8} "
                    f"{_fmt(m.get('baseline_log_loss')):>8} {_fmt(m.get('calibration')):>6}"
                )
        lines.append("")
    lines.append("AP = average precision (a constant predictor scores the positive rate; lift = AP / rate);")
    lines.append("const = log loss of the constant positive rate; calib = mean prediction / observed rate.")
    return "\n".join(lines) + "\n"

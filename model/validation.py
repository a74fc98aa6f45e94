"""The held-out days of a run: every head's predictions and metrics on them, the score that chooses the best epoch,
and the calibration fitted on the validation rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import calibration
from .artifacts import trained_for
from .data.encoding import Encoder
from .data.sampling import scan
from .data.tables import ExampleTable
from .losses import row_mask
from .metrics import evaluate_arrays
from .network import MultiTaskNetwork
from .spec import Spec
from .spec_types import SELECTION_METRICS


def predict_days(network: MultiTaskNetwork, encoder: Encoder, table: ExampleTable, days, immature) -> dict | None:
    """Every head's probabilities on ``days`` with the labels, the eval mask (observed rows of each task's eval
    sources), the observed mask, the source index and the slice of every row (arrays ``[rows, tasks]`` or
    ``[rows]``); None without days."""
    if not days:
        return None
    probs, ys, masks, observed, sources, slices = [], [], [], [], [], []
    matrix = encoder.eval_mask_matrix()
    for batch in scan(table, table.units(days), encoder, immature):
        p = network.predict(batch)
        probs.append(torch.stack([p[t] for t in network.tasks], dim=1).numpy())
        ys.append(batch.y.numpy())
        masks.append(row_mask(batch.obs, batch.source, matrix).numpy())
        observed.append(batch.obs.numpy())
        sources.append(batch.source.numpy())
        slices.append(batch.slice.numpy())
    cat = np.concatenate
    return {
        "p": cat(probs),
        "y": cat(ys),
        "mask": cat(masks),
        "obs": cat(observed),
        "source": cat(sources),
        "slice": cat(slices),
    }


def evaluate(
    network: MultiTaskNetwork,
    encoder: Encoder,
    table: ExampleTable,
    days,
    immature,
    predicted: dict | None = None,
    by_slice: bool = True,
) -> dict:
    """Metrics of every head on ``days`` (each task on its observed rows of its eval sources); per slice value too
    unless ``by_slice`` is False (early stopping reads the overall figures only)."""
    a = predicted if predicted is not None else predict_days(network, encoder, table, days, immature)
    if a is None:
        return {}
    has_slice = encoder.spec.slice_column is not None and by_slice
    return evaluate_arrays(list(network.tasks), a["p"], a["y"], a["mask"], a["slice"] if has_slice else None)


def fit_calibration(spec: Spec, tasks: Sequence[str], applied, valid: dict | None, test: dict | None) -> dict:
    """Platt scaling per (head, source it serves), fitted on the validation rows (``model/calibration.py``)."""
    served = trained_for(spec, applied)

    def rows(a: dict | None) -> dict:
        out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if a is None:
            return out
        for i, task in enumerate(tasks):
            for source in served[task][1]:
                keep = (a["obs"][:, i] > 0) & (a["source"] == spec.sources.index(source))
                out[(task, source)] = (a["p"][keep, i], a["y"][keep, i])
        return out

    fitted = rows(valid)
    if not fitted:
        return {}
    return calibration.fit_all(fitted, rows(test))


def stopping_score(spec: Spec, metrics: dict) -> float | None:
    """The mean validation ``spec.selection_metric`` (AP by default) of the selection tasks that have one (of all
    tasks if none do); None if it is defined for no task. Higher is better except for log loss: see
    :func:`better_score`."""
    key = SELECTION_METRICS[spec.selection_metric]
    for names in (spec.selection_tasks, spec.task_names):
        values = [metrics[t]["overall"].get(key) for t in names if t in metrics]
        values = [v for v in values if v is not None]
        if values:
            return float(np.mean(values))
    return None


def better_score(spec: Spec, score: float, best: float | None) -> bool:
    """Whether an epoch's stopping score beats the best so far (lower log loss, higher AP or AUC)."""
    if best is None:
        return True
    return score < best if spec.selection_metric == "log_loss" else score > best


def selection(spec: Spec) -> dict:
    """What chooses the best epoch, as metrics.json records it: the metric and the tasks whose mean it takes."""
    return {"metric": spec.selection_metric, "tasks": list(spec.selection_tasks)}

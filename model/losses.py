"""Masked multi-task binary cross-entropy and task weighting.

Each (row, task) pair gives loss only where its mask is 1: the label is observed *and* the directional mask lets
the row's source train the task (ad rows never train promotion towers). Each task's loss is the mean over its own
valid rows, so a rare task is not drowned by the batch size, and a task without valid rows contributes exactly 0::

    >>> losses, counts = masked_bce(logits, batch.y, mask)      # [tasks], [tasks]
    >>> total = LossWeighting(["AdStream", "Click"], "fixed")(losses, counts)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTINGS = ("fixed", "uncertainty")


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task mean binary cross-entropy over the rows where ``mask`` is 1; ``(losses [T], valid rows [T])``."""
    valid = mask > 0
    # where(), not a product, on the logits themselves: a masked-out logit that is inf or NaN must leak into
    # neither the sum nor the gradient.
    logits = torch.where(valid, logits, torch.zeros_like(logits))
    per_row = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    per_row = torch.where(valid, per_row, torch.zeros_like(per_row))
    counts = valid.sum(dim=0)
    return per_row.sum(dim=0) / counts.clamp(min=1), counts


def row_mask(batch_obs: torch.Tensor, source: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """mask[row, task] = observed[row, task] * matrix[source(row), task]; rows of an unknown source get 0."""
    known = source >= 0
    per_source = matrix.index_select(0, source.clamp(min=0)) * known.unsqueeze(1)
    return batch_obs * per_source


class LossWeighting(nn.Module):
    """Combine per-task losses. ``fixed``: sum of ``weights`` (default 1 each, as the paper deploys).
    ``uncertainty`` (Kendall et al., 2018): learn s_t = log sigma_t^2 and minimise exp(-s_t) L_t + s_t / 2,
    over the tasks that have valid rows in the batch."""

    def __init__(self, tasks: Sequence[str], method: str = "fixed", weights: Mapping[str, float] | None = None):
        super().__init__()
        if method not in WEIGHTINGS:
            raise ValueError(f"loss weighting: expected one of {', '.join(WEIGHTINGS)}, found {method!r}")
        weights = dict(weights or {})
        unknown = [t for t in weights if t not in tasks]
        if unknown:
            raise ValueError(f"task weights for unknown task(s) {unknown}; expected some of {', '.join(tasks)}")
        bad = {t: w for t, w in weights.items() if not w >= 0}
        if bad:
            raise ValueError(f"task weights must be non-negative numbers, found {bad}")
        self.tasks, self.method = list(tasks), method
        self.register_buffer("weights", torch.tensor([float(weights.get(t, 1.0)) for t in tasks]))
        if method == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, losses: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        if self.method == "fixed":
            return (self.weights * losses).sum()
        present = (counts > 0).to(losses.dtype)
        return (present * self.weights * (torch.exp(-self.log_vars) * losses + 0.5 * self.log_vars)).sum()

    def current(self) -> dict[str, float]:
        """The effective weight of each task now (for logs and metrics)."""
        if self.method == "fixed":
            return dict(zip(self.tasks, self.weights.tolist(), strict=True))
        eff = self.weights * torch.exp(-self.log_vars.detach())
        return dict(zip(self.tasks, eff.tolist(), strict=True))

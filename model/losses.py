"""Masked multi-task binary cross-entropy and task weighting.

Each (row, task) pair gives loss only where its mask is 1: the label is observed *and* the directional mask lets
the row's source train the task (ad rows never train promotion towers). Each task's loss is the mean over its own
valid rows, so a rare task is not drowned by the batch size, and a task without valid rows contributes exactly 0::

    >>> losses, counts = masked_bce(logits, batch.y, mask)      # [tasks], [tasks]
    >>> total = LossWeighting(["AdStream", "Click"], "fixed")(losses, counts)

``"pcgrad"`` weights like ``"fixed"`` and changes how the gradient of the shared parameters is formed (Yu et al.,
"Gradient Surgery for Multi-Task Learning", NeurIPS 2020): each task's gradient loses its component along any other
task's gradient it conflicts with (negative dot product), then they are summed. :func:`pcgrad_backward` does it::

    >>> total = pcgrad_backward(weighting.weighted(losses, counts), shared=list(net.encoder_parameters()), rng=g)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTINGS = ("fixed", "uncertainty", "pcgrad")


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
    over the tasks that have valid rows in the batch. ``pcgrad``: the fixed weights; the trainer then projects the
    shared parameters' per-task gradients (:func:`pcgrad_backward`)."""

    weights: torch.Tensor  # a registered buffer: saved with the state, moved with the module

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

    def weighted(self, losses: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Each task's term of the objective, ``[tasks]``; their sum is :meth:`forward`."""
        if self.method != "uncertainty":
            return self.weights * losses
        present = (counts > 0).to(losses.dtype)
        return present * self.weights * (torch.exp(-self.log_vars) * losses + 0.5 * self.log_vars)

    def forward(self, losses: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.weighted(losses, counts).sum()

    def current(self) -> dict[str, float]:
        """The effective weight of each task now (for logs and metrics)."""
        if self.method != "uncertainty":
            return dict(zip(self.tasks, self.weights.tolist(), strict=True))
        eff = self.weights * torch.exp(-self.log_vars.detach())
        return dict(zip(self.tasks, eff.tolist(), strict=True))


def project_conflicting(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """PCGrad's projection of per-task gradients ``[tasks, params]`` (flattened), returned in the same shape.

    For each task i, in turn over the other tasks j in a random order: if g_i . g_j < 0, remove from g_i its
    component along the *original* g_j. With two tasks, the projected g_i is then orthogonal to g_j; in general no
    task's projected gradient points against another's original one by more than the projections of the others
    leave. Rows of zeros (tasks absent from a batch) are left alone and never projected onto.

        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> project_conflicting(g)       # g0 . g1 = -1 < 0: each loses its component along the other
        tensor([[0.5000, 0.5000],
                [0.0000, 1.0000]])
    """
    if grads.dim() != 2:
        raise ValueError(f"grads: expected a [tasks, params] matrix, found shape {tuple(grads.shape)}")
    out = grads.clone()
    norms2 = (grads * grads).sum(dim=1)
    n = grads.shape[0]
    for i in range(n):
        for j in torch.randperm(n, generator=generator).tolist():
            if j == i or norms2[j] == 0:
                continue
            dot = out[i] @ grads[j]
            if dot < 0:
                out[i] -= (dot / norms2[j]) * grads[j]
    return out


def pcgrad_backward(
    task_terms: torch.Tensor,
    shared: Sequence[torch.Tensor],
    others: Sequence[torch.Tensor] = (),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Backward pass with PCGrad on the ``shared`` parameters; ``others`` (the towers, each serving one task, and
    any weighting parameters) get the plain gradient of the sum. ``task_terms`` are the tasks' (weighted) losses
    ``[tasks]``; returns their sum (detached).

    Dense gradients are flattened as they are; a sparse gradient (the fused embedding's) is projected on its values:
    every task's gradient of one batch has the same sorted row indices (the rows the batch touches), so the values
    line up coordinate by coordinate. Costs one extra backward pass through the shared layers per task.
    """
    shared = [p for p in shared if p.requires_grad]
    others = [p for p in others if p.requires_grad]
    total = task_terms.sum()
    if not total.requires_grad:
        return total.detach()
    if not shared:
        total.backward(inputs=others)
        return total.detach()
    tasks = [t for t in range(task_terms.shape[0]) if task_terms[t].requires_grad]
    per_task = [torch.autograd.grad(task_terms[t], shared, retain_graph=True, allow_unused=True) for t in tasks]
    templates = [next((g[k] for g in per_task if g[k] is not None), None) for k in range(len(shared))]

    def flat(grads) -> torch.Tensor:
        parts = []
        for g, template in zip(grads, templates, strict=True):
            if template is None:
                continue
            if g is None:
                g = torch.zeros_like(template._values() if template.is_sparse else template)
            parts.append((g.coalesce()._values() if g.is_sparse else g).reshape(-1))
        return torch.cat(parts)

    projected = project_conflicting(torch.stack([flat(g) for g in per_task]), generator).sum(dim=0)
    if others:
        total.backward(inputs=others)
    offset = 0
    for p, template in zip(shared, templates, strict=True):
        if template is None:
            continue
        if template.is_sparse:
            template = template.coalesce()
            size = template._values().numel()
            values = projected[offset : offset + size].view_as(template._values())
            grad = torch.sparse_coo_tensor(
                template._indices(), values, template.shape, is_coalesced=True, check_invariants=False
            )
        else:
            size = template.numel()
            grad = projected[offset : offset + size].view_as(template)
        offset += size
        p.grad = grad if p.grad is None else p.grad + grad
    return total.detach()

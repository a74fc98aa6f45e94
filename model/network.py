"""The joint multi-task network: a shared encoder over every feature group, then one tower per task.

``architecture = "shared_bottom"`` is the paper's production model: an MLP encoder with batch norm after it feeds
every tower. ``"mmoe"`` (Multi-gate Mixture-of-Experts) gives each task its own softmax gate over shared experts,
and ``"ple"`` (Progressive Layered Extraction, one CGC layer) adds experts of each task's own, for comparison::

    >>> net = MultiTaskNetwork(spec.model, layout, ["PromotionStream", "AdStream"])
    >>> logits = net(batch)                           # [rows, tasks]
    >>> probs = net.predict(batch, tasks=["AdStream"])  # {"AdStream": tensor([...])}

Embeddings live in one fused table whose gradient is a coalesced sparse tensor touching only the rows a batch uses,
so ``torch.optim.SparseAdam`` updates a few thousand rows per step instead of the whole table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import torch
from torch import nn

from .data.encoding import Batch
from .spec_types import ModelSpec


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """What the encoder produces per row: ``table_rows`` fused embedding rows, ``single`` single-valued and
    ``bags`` multi-valued categorical features, and ``numeric`` normalized numeric columns. ``dims``: each field's
    embedding width (single-valued features, then bags) where the spec gives some features their own; empty when
    every field has the model's ``embedding_dim``."""

    table_rows: int
    single: int
    bags: int
    numeric: int
    dims: tuple[int, ...] = ()

    def width(self, embedding_dim: int) -> int:
        """The width of the embedding table: the model's, or the widest field's where that is wider."""
        return max(embedding_dim, *self.dims) if self.dims else embedding_dim

    def saved(self) -> dict:
        """The layout as manifest.json keeps it (``dims`` only when set, so earlier manifests read the same)."""
        return {k: list(v) if k == "dims" else v for k, v in vars(self).items() if k != "dims" or v}


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` whose gradient is a sparse tensor with exactly ``rows`` (sorted, unique) as indices."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        sparse = torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.shape, is_coalesced=True, check_invariants=False)
        return sparse, None


class _GatherPositions(torch.autograd.Function):
    """``used[positions]`` whose backward is one sparse-matrix product with ``Batch.gather`` (the transpose of the
    gather, built by the reader thread) instead of ``index_add_``: the same sums in the same order."""

    @staticmethod
    def forward(ctx, used: torch.Tensor, positions: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
        ctx.gather = gather
        return used.index_select(0, positions)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return torch.sparse.mm(ctx.gather, grad.contiguous()), None, None


class FusedEmbedding(nn.Module):
    """One table for every categorical feature; single values are looked up, bags averaged. ``field_dims`` (single
    fields, then bags): a field narrower than the table uses the first columns of its rows, the others read as
    zeros (so the layers above get no signal, and the rows no gradient, from them)."""

    def __init__(self, rows: int, dim: int, field_dims: Sequence[int] = ()):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.randn(rows, dim) * 0.05)
        self._rows: torch.Tensor | None = None
        mask = None
        if field_dims and min(field_dims) < dim:
            mask = (torch.arange(dim).unsqueeze(0) < torch.tensor(list(field_dims)).unsqueeze(1)).float()
        self.mask: torch.Tensor | None
        self.register_buffer("mask", mask, persistent=False)  # derived from the spec: not in weights.pt

    def coalesced_grad(self) -> torch.Tensor | None:
        """The weight's sparse gradient, flagged as coalesced again. Autograd's gradient accumulation makes a
        shallow copy that drops the flag, and SparseAdam would then sort the indices of every step for nothing:
        they are the sorted unique rows of the one batch this gradient comes from (checked by count)."""
        grad = self.weight.grad
        if grad is None or not grad.is_sparse or grad.is_coalesced():
            return grad
        if self._rows is not None and grad._nnz() == self._rows.numel():
            grad = torch.sparse_coo_tensor(
                grad._indices(), grad._values(), grad.shape, is_coalesced=True, check_invariants=False
            )
        else:  # accumulated over several forward passes: really coalesce
            grad = grad.coalesce()
        self.weight.grad = grad
        return grad

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        """The embeddings of a batch as ``[single [n, F1 * dim], bags [n, F2 * dim]]`` (bags only if any)."""
        if self.weight.requires_grad and torch.is_grad_enabled():
            self._rows = batch.rows
            used = _GatherRows.apply(self.weight, batch.rows)
        else:
            used = self.weight.index_select(0, batch.rows)
        n = batch.size
        n_single = batch.cat.numel()
        # One gather for single values and bag values alike.
        if batch.gather is not None and used.requires_grad:
            values = _GatherPositions.apply(used, batch.positions, batch.gather)
        else:
            values = used.index_select(0, batch.positions)
        # split(), not slicing: its backward concatenates the two gradients instead of zero-filling two copies.
        single, bag_values = values.split([n_single, values.shape[0] - n_single])
        n_single_fields = batch.cat.shape[1]
        if self.mask is not None:
            single = (single.view(n, n_single_fields, self.dim) * self.mask[:n_single_fields]).view(-1, self.dim)
        parts = [single.reshape(n, -1)]
        n_bags = batch.bag_scale.shape[0] // max(n, 1)
        if n_bags:
            bags = torch.zeros(n * n_bags, self.dim, dtype=used.dtype).index_add_(0, batch.bag_seg, bag_values)
            bags = bags * batch.bag_scale
            if self.mask is not None:
                bags = (bags.view(n, n_bags, self.dim) * self.mask[n_single_fields:]).view(-1, self.dim)
            parts.append(bags.reshape(n, -1))
        return parts


class RowSparseAdam(torch.optim.SparseAdam):
    """``torch.optim.SparseAdam`` with the same arithmetic, state and checkpoints, about 3x faster on CPU for a
    table's row-sparse gradient: the moments and the weights are read and updated with ``index_select`` and
    ``index_add_`` on the gradient's (unique) rows, where SparseAdam builds three sparse tensors and pays for
    ``sparse_mask`` and sparse-dense additions of the whole table. Every element gets exactly the operations
    SparseAdam gives it (``old + update``, once per row), so both give bitwise the same weights (tested).

    ``weight_decay`` > 0 adds AdamW's decoupled decay on the rows a step touches (``row -= lr * decay * row``
    before the update): an id's embedding shrinks towards zero each time it is used unless its gradient keeps it,
    so rare ids do not end up where a handful of noisy updates left them. Rows a step does not touch keep their
    value, as Adam's moments do (the "lazy" form every sparse optimizer uses).

        >>> opt = RowSparseAdam([net.embedding.weight], lr=2e-3, weight_decay=0.01)
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps)
        for group in self.param_groups:
            group["weight_decay"] = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, maximize = group["lr"], group["eps"], group.get("maximize", False)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                grad = (-p.grad if maximize else p.grad).coalesce()
                rows, values = grad._indices()[0], grad._values()
                if values.numel() == 0:
                    continue
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                old_exp_avg = exp_avg.index_select(0, rows)
                exp_avg_update = values.sub(old_exp_avg).mul_(1 - beta1)
                exp_avg.index_add_(0, rows, exp_avg_update)
                old_exp_avg_sq = exp_avg_sq.index_select(0, rows)
                exp_avg_sq_update = values.pow(2).sub_(old_exp_avg_sq).mul_(1 - beta2)
                exp_avg_sq.index_add_(0, rows, exp_avg_sq_update)
                numer = exp_avg_update.add_(old_exp_avg)
                denom = exp_avg_sq_update.add_(old_exp_avg_sq).sqrt_().add_(eps)
                step = state["step"]
                step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                decay = group.get("weight_decay", 0.0)
                if decay:
                    p.index_add_(0, rows, p.index_select(0, rows).mul_(-lr * decay))
                p.index_add_(0, rows, -step_size * numer.div_(denom))
        return loss


def mlp(width_in: int, widths: Sequence[int], dropout: float = 0.0) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Linear(width_in, w), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width_in = w
    return nn.Sequential(*layers), width_in


def linear_of_blocks(layer: nn.Linear, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """``layer(torch.cat(blocks, dim=1))`` without the concatenation: one ``addmm`` per block of columns, each with
    its slice of the weight. The same sums in another order (equal within float rounding); the backward pass then
    computes no input gradient for blocks that need none (the numeric columns), and copies no concatenated input."""
    out: torch.Tensor | None = layer.bias
    start = 0
    for block in blocks:
        width = block.shape[1]
        if width:
            weight = layer.weight[:, start : start + width]
            out = torch.addmm(out, block, weight.t()) if out is not None else block @ weight.t()
        start += width
    if start != layer.in_features:
        raise ValueError(f"blocks of {start} columns in all for a layer of {layer.in_features} inputs")
    if out is None:
        raise ValueError("no blocks of columns and no bias: the layer has nothing to compute")
    return out


class DotInteraction(nn.Module):
    """The dot product of every pair of ``fields`` embeddings of width ``dim`` (DLRM's feature interaction): the
    embedding blocks ``[n, fields * dim]`` in, ``[n, fields * (fields - 1) / 2]`` out. A pair of features whose
    embeddings share rows (a user's recent shows and the impression's show) meets here as a similarity the MLP
    above cannot form from the concatenation alone::

        >>> DotInteraction(fields=3, dim=8)([torch.randn(5, 16), torch.randn(5, 8)]).shape
        torch.Size([5, 3])
    """

    def __init__(self, fields: int, dim: int):
        super().__init__()
        self.fields, self.dim = fields, dim
        rows, cols = torch.triu_indices(fields, fields, offset=1)
        self.register_buffer("pairs", rows * fields + cols, persistent=False)
        self.width = int(rows.numel())

    def forward(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        z = torch.cat(list(parts), dim=1) if len(parts) > 1 else parts[0]
        z = z.view(z.shape[0], self.fields, self.dim)
        gram = torch.bmm(z, z.transpose(1, 2)).view(z.shape[0], -1)
        return gram.index_select(1, cast(torch.Tensor, self.pairs))


class CrossNetwork(nn.Module):
    """DCN-v2's cross layers (Wang et al., 2021): ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``, each layer one more
    degree of explicit feature crossing at the input's width; ``rank`` > 0 factors each ``W_l`` as ``U_l V_l``
    (the paper's low-rank form) to bound the cost::

        >>> CrossNetwork(width=40, layers=2, rank=8)(torch.randn(5, 40)).shape
        torch.Size([5, 40])
    """

    def __init__(self, width: int, layers: int, rank: int = 0):
        super().__init__()
        self.width = width

        def layer() -> nn.Module:
            if rank:
                return nn.Sequential(nn.Linear(width, rank, bias=False), nn.Linear(rank, width))
            return nn.Linear(width, width)

        self.layers = nn.ModuleList([layer() for _ in range(layers)])
        for module in self.modules():  # start near the identity: x_{l+1} = x_l + small crosses
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class SharedBottom(nn.Module):
    """MLP encoder with batch norm after it (the paper's "post-batch norm"); every task reads the same z."""

    def __init__(self, width_in: int, config: ModelSpec):
        super().__init__()
        self.body, self.width = mlp(width_in, config.bottom, config.dropout)
        self.norm = nn.BatchNorm1d(self.width)

    def _first_linear(self) -> nn.Linear:
        first = self.body[0]
        assert isinstance(first, nn.Linear)  # forward() concatenates the blocks when the body does not start with one
        return first

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], n_tasks: int) -> list[torch.Tensor]:
        """``x``: the input, or its blocks of columns in order (see :func:`linear_of_blocks`)."""
        if not isinstance(x, torch.Tensor) and not (self.body and isinstance(self.body[0], nn.Linear)):
            x = torch.cat(list(x), dim=1)
        h = self.body(x) if isinstance(x, torch.Tensor) else self.body[1:](linear_of_blocks(self._first_linear(), x))
        z = self.norm(h)
        return [z] * n_tasks


class MMoE(nn.Module):
    """Shared experts (MLP + batch norm each) mixed per task by a softmax gate on the input."""

    def __init__(self, width_in: int, config: ModelSpec, n_tasks: int):
        super().__init__()
        experts = []
        for _ in range(config.experts):
            expert, width = _expert(width_in, config)
            experts.append(expert)
        self.experts = nn.ModuleList(experts)
        self.width = width
        self.gates = nn.ModuleList([nn.Linear(width_in, config.experts) for _ in range(n_tasks)])
        self.width_in = width_in
        self.n_experts = config.experts

    def add_gate(self, copy_from: int | None = None) -> None:
        gate = nn.Linear(self.width_in, self.n_experts)
        if copy_from is not None:
            gate.load_state_dict(self.gates[copy_from].state_dict())
        self.gates.append(gate)

    def forward(self, x: torch.Tensor, n_tasks: int) -> list[torch.Tensor]:
        outs = torch.stack([e(x) for e in self.experts], dim=1)  # [n, experts, width]
        return [(torch.softmax(g(x), dim=1).unsqueeze(2) * outs).sum(1) for g in self.gates[:n_tasks]]


def _expert(width_in: int, config: ModelSpec) -> tuple[nn.Sequential, int]:
    body, width = mlp(width_in, config.expert, config.dropout)
    return nn.Sequential(body, nn.BatchNorm1d(width)), width


class PLE(nn.Module):
    """Progressive Layered Extraction (Tang et al., RecSys 2020), one extraction layer (CGC): ``experts`` shared
    experts plus ``task_experts`` experts of each task's own; each task's softmax gate mixes its own experts and the
    shared ones. A task's own experts get gradient only from that task, which is what separates PLE from MMoE (where
    every expert serves every task). The experts are built like MMoE's (MLP + batch norm)."""

    def __init__(self, width_in: int, config: ModelSpec, n_tasks: int):
        super().__init__()
        self.width_in, self.config = width_in, config
        shared = [_expert(width_in, config) for _ in range(config.experts)]
        self.width = shared[0][1]
        self.shared = nn.ModuleList([e for e, _ in shared])
        self.own = nn.ModuleList()
        self.gates = nn.ModuleList()
        for _ in range(n_tasks):
            self.add_task()

    def add_task(self, copy_from: int | None = None) -> None:
        """Experts and a gate for one more task: fresh, or copies of task ``copy_from``'s."""
        own = nn.ModuleList([_expert(self.width_in, self.config)[0] for _ in range(self.config.task_experts)])
        gate = nn.Linear(self.width_in, self.config.experts + self.config.task_experts)
        if copy_from is not None:
            own.load_state_dict(self.own[copy_from].state_dict())
            gate.load_state_dict(self.gates[copy_from].state_dict())
        self.own.append(own)
        self.gates.append(gate)

    def forward(self, x: torch.Tensor, n_tasks: int) -> list[torch.Tensor]:
        shared = [e(x) for e in self.shared]  # computed once, used by every task
        out = []
        for own, gate in zip(self.own[:n_tasks], self.gates[:n_tasks], strict=True):
            own_outputs = [e(x) for e in cast(nn.ModuleList, own)]
            experts = torch.stack([*own_outputs, *shared], dim=1)  # [n, own + shared, width]
            out.append((torch.softmax(gate(x), dim=1).unsqueeze(2) * experts).sum(1))
        return out


class MultiTaskNetwork(nn.Module):
    """Embeddings + numeric inputs -> shared encoder -> one tower (stacked MLP, one logit) per task.

    ``forward`` returns logits ``[rows, tasks]`` in ``self.tasks`` order; ``predict`` returns probabilities.
    """

    def __init__(self, config: ModelSpec, layout: InputLayout, tasks: Sequence[str]):
        super().__init__()
        self.config, self.layout = config, layout
        self.tasks: list[str] = list(tasks)
        dim = layout.width(config.embedding_dim)
        self.embedding = FusedEmbedding(layout.table_rows, dim, layout.dims)
        fields = layout.single + layout.bags
        width_in = fields * dim + layout.numeric
        self.interaction = DotInteraction(fields, dim) if config.interaction == "dot" else None
        if self.interaction is not None:
            width_in += self.interaction.width
        self.cross = CrossNetwork(width_in, config.cross_layers, config.cross_rank) if config.cross_layers else None
        if config.architecture == "mmoe":
            self.encoder: MMoE | PLE | SharedBottom = MMoE(width_in, config, len(self.tasks))
        elif config.architecture == "ple":
            self.encoder = PLE(width_in, config, len(self.tasks))
        else:
            self.encoder = SharedBottom(width_in, config)
        self.towers = nn.ModuleDict({t: self._tower() for t in self.tasks})

    def _tower(self) -> nn.Sequential:
        body, width = mlp(self.encoder.width, self.config.tower, self.config.dropout)
        return nn.Sequential(body, nn.Linear(width, 1))

    def add_task(self, name: str, copy_from: str | None = None) -> None:
        """A new head (transfer to a new objective): fresh, or a copy of an existing head to apply it as is."""
        if name in self.towers:
            raise ValueError(f"task {name!r} already has a head; heads: {', '.join(self.tasks)}")
        tower = self._tower()
        if copy_from is not None:
            tower.load_state_dict(self.towers[copy_from].state_dict())
        self.towers[name] = tower
        source = self.tasks.index(copy_from) if copy_from is not None else None
        if isinstance(self.encoder, MMoE):
            self.encoder.add_gate(source)
        elif isinstance(self.encoder, PLE):
            self.encoder.add_task(source)
        self.tasks.append(name)

    @torch.no_grad()
    def set_priors(self, priors: Mapping[str, float | None]) -> None:
        """Start each named head at its task's positive rate: the bias of its output layer becomes logit(rate),
        so a fresh model predicts the base rate instead of 0.5. Why: an epoch is a few dozen to a few hundred
        steps, and Adam moves a bias by about the learning rate per step, so a rare task's head (clicks at 1.4%,
        logit -4.3) otherwise spends its first epochs learning its base rate through the weights it needs for its
        signal, and over-predicts (Lin et al., 2017, "prior probability" initialisation). Tasks without a rate
        (None) keep the default initialisation.

            >>> net.set_priors({"Click": 0.014})    # towers["Click"] now outputs about logit(0.014) = -4.25
        """
        unknown = [t for t in priors if t not in self.towers]
        if unknown:
            raise ValueError(f"priors for unknown task(s) {unknown}; this model has heads {', '.join(self.tasks)}")
        for task, rate in priors.items():
            if rate is None:
                continue
            if not 0 <= rate <= 1:
                raise ValueError(f"prior of task {task!r}: expected a rate in [0, 1], found {rate}")
            p = min(max(rate, 1e-6), 1 - 1e-6)
            output = cast(nn.Sequential, self.towers[task])[-1]
            cast(nn.Linear, output).bias.fill_(math.log(p / (1 - p)))

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Everything shared: the embedding table, the interactions and the encoder (not the towers)."""
        yield self.embedding.weight
        if self.cross is not None:
            yield from self.cross.parameters()
        yield from self.encoder.parameters()

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embedding(batch)
        blocks = [*embedded, batch.num]
        if self.interaction is not None:
            blocks.append(self.interaction(embedded))
        if self.cross is not None:
            blocks = [self.cross(torch.cat(blocks, dim=1))]
        if isinstance(self.encoder, SharedBottom):
            zs = self.encoder(blocks, len(self.tasks))
        else:
            zs = self.encoder(torch.cat(blocks, dim=1), len(self.tasks))
        return torch.cat([self.towers[t](z) for t, z in zip(self.tasks, zs, strict=True)], dim=1)

    @torch.no_grad()
    def predict(self, batch: Batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Probabilities per task (all heads by default), in eval mode (batch norm uses its running statistics)."""
        unknown = [t for t in tasks or () if t not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; this model has heads {', '.join(self.tasks)}")
        was_training = self.training
        self.eval()
        try:
            probs = torch.sigmoid(self(batch))
        finally:
            self.train(was_training)
        return {t: probs[:, i] for i, t in enumerate(self.tasks) if tasks is None or t in tasks}

"""The network and what updates it: the training objective of a batch (masked per task, weighted), the optimizers
(dense Adam or AdamW, row-sparse Adam for the embedding rows), PCGrad, and the learning-rate schedule.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .artifacts import ArtifactError
from .data.encoding import Batch, Encoder
from .data.statistics import fit_statistics
from .losses import LossWeighting, masked_bce, pcgrad_backward, row_mask
from .network import InputLayout, MultiTaskNetwork, RowSparseAdam
from .run_setup import TrainingRun
from .train_config import TrainConfig


def batch_terms(
    network: MultiTaskNetwork, batch, train_matrix: torch.Tensor, weighting: LossWeighting
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's term of the training objective of one batch: per (row, task) mask = label observed x
    m[source, task], per-task mean BCE over valid rows, weighted by the task weighting. Returns (terms, losses)."""
    mask = row_mask(batch.obs, batch.source, train_matrix)
    losses, counts = masked_bce(network(batch), batch.y, mask)
    return weighting.weighted(losses, counts), losses


def batch_loss(
    network: MultiTaskNetwork, batch, train_matrix: torch.Tensor, weighting: LossWeighting
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training objective of one batch (the sum of :func:`batch_terms`). Returns (total, per-task losses)."""
    terms, losses = batch_terms(network, batch, train_matrix, weighting)
    return terms.sum(), losses


@dataclasses.dataclass(frozen=True)
class LrSchedule:
    """The learning rate's factor at each optimisation step: rising linearly from 0 over ``warmup_steps``, then
    ``"constant"``, or decayed to 0 at ``total_steps`` (the run's last step if it runs every epoch) along a half
    cosine or a line. Early stopping may end a run before the end of its decay.

        >>> s = LrSchedule("cosine", warmup_steps=10, total_steps=110)
        >>> [round(s.factor(k), 3) for k in (0, 9, 10, 60, 109)]
        [0.1, 1.0, 1.0, 0.5, 0.0]
    """

    kind: str
    warmup_steps: int
    total_steps: int

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        span = max(self.total_steps - self.warmup_steps - 1, 1)
        done = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * done)) if self.kind == "cosine" else 1.0 - done


@dataclasses.dataclass
class Learner:
    """The network and what updates it: the encoder, the task weighting, the (source x task) training mask, the
    dense and row-sparse optimizers, and PCGrad's parameter groups and generator. ``fresh_heads``: the heads not
    loaded or copied from a trained run (the ones ``--prior_init`` starts at their task's positive rate)."""

    encoder: Encoder
    network: MultiTaskNetwork
    weighting: LossWeighting
    train_matrix: torch.Tensor
    dense_opt: torch.optim.Optimizer | None
    sparse_opt: RowSparseAdam | None
    shared_params: list[torch.nn.Parameter]
    own_params: list[torch.nn.Parameter]
    pcgrad_rng: torch.Generator
    frozen_encoder: bool
    fresh_heads: list[str]
    schedule: LrSchedule | None = None
    steps: int = 0  # optimisation steps so far, over the run (checkpointed: the schedule resumes where it was)

    def train_mode(self) -> None:
        self.network.train()
        if self.frozen_encoder:
            self.network.encoder.eval()  # frozen batch-norm statistics too

    def step(self, batch: Batch) -> float:
        """One optimisation step on ``batch``; returns its training loss."""
        if self.schedule is not None:
            factor = self.schedule.factor(self.steps)
            for opt in (self.dense_opt, self.sparse_opt):
                for group in opt.param_groups if opt is not None else ():
                    group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
        self.steps += 1
        terms, _ = batch_terms(self.network, batch, self.train_matrix, self.weighting)
        total = terms.sum()
        if self.dense_opt is not None:
            self.dense_opt.zero_grad(set_to_none=True)
        if self.sparse_opt is not None:
            self.sparse_opt.zero_grad(set_to_none=True)
        if total.requires_grad:
            if self.weighting.method == "pcgrad":
                pcgrad_backward(terms, self.shared_params, self.own_params, self.pcgrad_rng)
            else:
                total.backward()
            if self.dense_opt is not None:
                self.dense_opt.step()
            if self.sparse_opt is not None and self.network.embedding.coalesced_grad() is not None:
                self.sparse_opt.step()
        return float(total.detach())


def build_learner(config: TrainConfig, run: TrainingRun) -> Learner:
    """Statistics (or the base model's), the encoder, the network (new, or the base with its new heads) with the
    parameters that train, and the optimizers."""
    base, spec, trainable, applied = run.base, run.spec, run.trainable, run.applied
    stats = (
        base.encoder.stats
        if base is not None
        else fit_statistics(spec, run.table, run.split.train, source_days=run.source_days)
    )
    encoder = Encoder(spec, stats)
    layout = InputLayout(
        encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width, encoder.field_dims()
    )
    base_heads = list(base.network.tasks) if base is not None else []
    if base is not None:
        network = base.network
        for task in spec.task_names:
            if task not in network.tasks:
                network.add_task(task, copy_from=applied.get(task))
    else:
        network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    if list(network.tasks) != list(spec.task_names):
        raise ArtifactError(f"heads {network.tasks} do not match the spec's tasks {spec.task_names}")

    frozen_encoder = config.freeze_encoder
    for p in network.encoder_parameters():
        p.requires_grad_(not frozen_encoder)
    for task, tower in network.towers.items():
        for p in tower.parameters():
            p.requires_grad_(task in trainable)
    weighting = LossWeighting(spec.task_names, config.loss_weighting, config.task_weights)
    train_matrix = encoder.train_mask_matrix() * torch.tensor([float(t in trainable) for t in spec.task_names])
    dense = [p for n, p in network.named_parameters() if p.requires_grad and n != "embedding.weight"]
    dense += list(weighting.parameters())
    dense_opt = _dense_optimizer(dense, config) if dense else None
    sparse_opt = (
        RowSparseAdam(
            [network.embedding.weight],
            lr=config.embedding_lr or config.lr,
            weight_decay=config.embedding_weight_decay,
        )
        if network.embedding.weight.requires_grad
        else None
    )
    # PCGrad projects the per-task gradients of what the tasks share; each tower and the weighting's own
    # parameters get their plain gradient. Its random task order has its own generator, checkpointed for --resume.
    shared_params = list(network.encoder_parameters())
    own_params = [p for t in network.towers.values() for p in t.parameters()] + list(weighting.parameters())
    pcgrad_rng = torch.Generator().manual_seed(config.seed)
    fresh = [t for t in spec.task_names if base is None or (t not in base_heads and t not in applied)]
    return Learner(
        encoder,
        network,
        weighting,
        train_matrix,
        dense_opt,
        sparse_opt,
        shared_params,
        own_params,
        pcgrad_rng,
        frozen_encoder,
        fresh,
    )


def _dense_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW with ``weight_decay`` (decoupled: biases, batch norm and gates decay too, like the weights,
    which keeps the rule one line; at the small rates that help here the difference is negligible)."""
    # foreach: one multi-tensor update of every dense parameter instead of a loop of small ones; bitwise the same.
    if config.weight_decay:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=config.lr, foreach=True)

"""Where training stands and how it continues: the state saved in ``checkpoints/last.pt`` after every epoch, and
``--resume``, which restores it only for a checkpoint written by the same configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging

import torch

from . import artifacts
from .artifacts import ArtifactError
from .learner import Learner
from .run_setup import TrainingRun
from .train_config import TrainConfig

log = logging.getLogger("podtarget.model.train")


@dataclasses.dataclass
class TrainState:
    """Where training stands (saved in every checkpoint as ``state``, a dict of the fields after ``best_weights``)
    and the best epoch's weights so far."""

    best_weights: dict
    epoch: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)

    def saved(self) -> dict:
        return {k: getattr(self, k) for k in ("epoch", "best_score", "best_epoch", "bad_epochs", "history")}

    def going(self, epochs: int, patience: int) -> bool:
        """Whether another epoch runs: epochs are left and early stopping has not ended the run."""
        return self.epoch < epochs and self.bad_epochs <= patience


def resume_state(config: TrainConfig, run: TrainingRun, learner: Learner, fingerprint: dict) -> TrainState:
    """A fresh state, or with ``--resume`` the checkpoint's: weights, optimizers, weighting, random generators and
    history, when it was written by the same configuration (``fingerprint``)."""
    state = TrainState(best_weights=copy.deepcopy(learner.network.state_dict()))
    if not config.resume:
        return state
    if not artifacts.exists(run.checkpoint_path):
        raise ArtifactError(f"--resume: no checkpoint at {run.checkpoint_path!r}")
    ckpt = artifacts.torch_load(run.checkpoint_path, "checkpoint")
    if ckpt.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        raise ArtifactError(
            f"--resume: {run.checkpoint_path!r} was written by a different configuration; "
            f"checkpoint {ckpt.get('fingerprint')}, now {fingerprint}"
        )
    learner.network.load_state_dict(ckpt["network"])
    learner.weighting.load_state_dict(ckpt["weighting"])
    if learner.dense_opt is not None:
        learner.dense_opt.load_state_dict(ckpt["dense_opt"])
    if learner.sparse_opt is not None:
        learner.sparse_opt.load_state_dict(ckpt["sparse_opt"])
    torch.set_rng_state(ckpt["torch_rng"])
    if "pcgrad_rng" in ckpt:
        learner.pcgrad_rng.set_state(ckpt["pcgrad_rng"])
    state = TrainState(best_weights=ckpt["best_weights"], **ckpt["state"])
    learner.steps = int(ckpt.get("steps", 0))
    log.info("resumed %s after epoch %d", run.run_dir, state.epoch)
    return state


def write_checkpoint(run: TrainingRun, learner: Learner, state: TrainState, fingerprint: dict) -> None:
    """Everything ``--resume`` needs to continue exactly where this epoch ended (``checkpoints/last.pt``)."""
    checkpoint = {
        "fingerprint": fingerprint,
        "network": learner.network.state_dict(),
        "weighting": learner.weighting.state_dict(),
        "dense_opt": learner.dense_opt.state_dict() if learner.dense_opt is not None else {},
        "sparse_opt": learner.sparse_opt.state_dict() if learner.sparse_opt is not None else {},
        "best_weights": state.best_weights,
        "torch_rng": torch.get_rng_state(),
        "pcgrad_rng": learner.pcgrad_rng.get_state(),
        "state": state.saved(),
        "steps": learner.steps,
    }
    artifacts.write_bytes(run.checkpoint_path, artifacts.torch_bytes(checkpoint))

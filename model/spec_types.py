"""The parts of a model spec (``model/spec.py``): a feature, a task, the network's shape, and the values the format
allows. No parsing here: the file format and :class:`~podtarget.model.spec.Spec` build on these.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Literal

FeatureKind = Literal["categorical", "multi_categorical", "numeric"]
KINDS: tuple[str, ...] = ("categorical", "multi_categorical", "numeric")


ARCHITECTURES: tuple[str, ...] = ("shared_bottom", "mmoe", "ple")


INTERACTIONS: tuple[str, ...] = ("none", "dot")


# Validation metrics that can choose the best epoch, each with its key in a task's metrics; log loss is the one
# where lower is better.
SELECTION_METRICS: dict[str, str] = {"ap": "average_precision", "auc": "roc_auc", "log_loss": "log_loss"}


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear")


# [training]: the trainer's settings a spec may carry (model/train.py's TrainConfig fields of the same names), so a
# table's spec holds everything its best run needs. A flag given on the command line wins over them.
TRAINING_KEYS: tuple[str, ...] = (
    "epochs",
    "batch_size",
    "lr",
    "embedding_lr",
    "lr_schedule",
    "warmup_steps",
    "patience",
    "weight_decay",
    "embedding_weight_decay",
)


DEFAULT_SPEC = pathlib.Path(__file__).with_name("specs") / "podtarget.toml"


# The one source of a spec without a [source] table: every row belongs to it, whatever the table's columns.
IMPLICIT_SOURCE = "all"


class SpecError(ValueError):
    """A spec that cannot be parsed, is inconsistent, or does not fit the table's schema."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One input column. ``buckets`` (categorical kinds): hashed embedding rows, row 0 being null / unseen in
    training; ``min_count``: buckets seen fewer times than this on the training split also map to row 0, so rare
    and new ids share one learned cold-start row. ``share`` (categorical kinds): the name of another categorical
    feature whose embedding rows this one looks its values up in (its buckets and min_count apply), so that, e.g.,
    the shows of a user's history and the show of the impression are points of one space. ``floats``
    (categorical): the column may be floating-point (ids stored as floats, NaN for null); integral values hash as
    the integers they hold. ``log1p`` / ``missing`` (numeric): see the module docstring. ``clip`` (numeric):
    ``(low, high)``, values are clipped to it before anything else. ``buckets`` (numeric): besides its normalized
    value, the feature gets an embedding of its quantile bucket, of ``buckets`` buckets whose edges are quantiles
    of the training split (saved with the model, so scoring buckets exactly as training did); 0: none.
    ``embedding_dim`` (every feature with embedding rows): the width of its embedding, at most the table's (the
    largest of these and ``[model] embedding_dim``; 0: the model's), e.g. wider for an id of thousands of values
    than for a flag of three. A feature that shares rows has the owner's."""

    name: str
    group: str
    kind: FeatureKind
    buckets: int = 0
    min_count: int = 1
    log1p: bool = False
    missing: bool = False
    share: str | None = None
    clip: tuple[float, float] | None = None
    floats: bool = False
    embedding_dim: int = 0

    @property
    def embedded(self) -> bool:
        """Whether the feature looks up embedding rows: every categorical one, and numeric ones with buckets."""
        return self.kind != "numeric" or self.buckets > 0

    @property
    def rows(self) -> int:
        """Embedding rows of the feature's block: its hash buckets, or a numeric's buckets plus the null row."""
        return self.buckets + 1 if self.kind == "numeric" else self.buckets

    @property
    def table(self) -> str:
        """The name of the embedding rows this feature reads: its own, or those of the feature it shares."""
        return self.share or self.name


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A binary task: its label column, the source it belongs to, and the sources whose rows evaluate it."""

    name: str
    label: str
    source: str
    eval_sources: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Network sizes. ``bottom``: shared encoder widths (batch norm after the last); ``tower``: hidden widths of
    each task tower; ``experts``/``expert``: shared expert count and widths (architecture = "mmoe" or "ple");
    ``task_experts``: experts of each task's own (PLE only: each task's gate mixes its own and the shared ones).
    ``interaction``: explicit feature interactions added to the encoder's input, for every architecture:
    ``"none"``, or ``"dot"``, the dot product of every pair of categorical features' embeddings (DLRM's
    interaction; with shared rows, the user's history against the impression's show is one of them).
    ``cross_layers``: DCN-v2 cross layers over the encoder's input (0: none), of rank ``cross_rank`` (0: full)."""

    embedding_dim: int = 8
    bottom: tuple[int, ...] = (128, 64)
    tower: tuple[int, ...] = (32,)
    architecture: str = "shared_bottom"
    experts: int = 4
    expert: tuple[int, ...] = (64,)
    task_experts: int = 1
    dropout: float = 0.0
    interaction: str = "none"
    cross_layers: int = 0
    cross_rank: int = 0

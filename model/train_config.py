"""What a training run depends on, declared once: :class:`TrainConfig`'s fields are the trainer's Python settings,
its command-line flags (``python -m podtarget.model.train --help``) and the keys of a spec's ``[training]`` table,
each with its help, default and bounds in one place (``common/options.py``).

    >>> config = parse_args(["--examples=./data/examples", "--epochs=8", "--no_source_balance"])
    >>> (config.epochs, config.source_ratio)
    (8, None)
    >>> TrainConfig(examples="x", lr=0)     # ValueError: The 'lr' parameter of TrainConfig must be a float in ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from ..common.checks import check_int, check_number, invalid
from ..common.cli import CommandParser
from ..common.days import parse_days
from ..common.options import add_options, assignments, check_options, comma_floats, comma_list, from_options, option
from .losses import WEIGHTINGS
from .spec import Spec
from .spec_types import ARCHITECTURES, DEFAULT_SPEC, LR_SCHEDULES, TRAINING_KEYS

log = logging.getLogger("podtarget.model.train")

DAYS_HELP = "Days as YYYY-MM-DD, a..b ranges or a comma list, e.g. 2026-03-02..2026-03-07"


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on. Defaults are the production setting of the paper on our table."""

    examples: str = option(help="Example table root (local or gs://).")
    out: str = option("models", "Folder of model runs.")
    run: str = option("", "Run name (default: run-<UTC time>).")
    spec: str = option(str(DEFAULT_SPEC), "Spec file (.toml or .json).")
    train_days: str | None = option(None, DAYS_HELP + " (with --valid_days, --test_days; default: --split).")
    valid_days: str | None = option(None, "Validation days, as --train_days.")
    test_days: str | None = option(None, "Test days, as --train_days.")
    split: tuple[float, float, float] = option(
        (0.7, 0.15, 0.15), "Fractions of the labelled days (train,valid,test).", parse=comma_floats
    )
    epochs: int = option(5, "Most epochs (the defaults suit millions of rows: see above).", low=1)
    batch_size: int = option(8192, "Rows per step (aim at 100+ steps an epoch).", low=1)
    lr: float = option(2e-3, "Adam's learning rate of the dense weights.", above=0)
    embedding_lr: float | None = option(None, "SparseAdam rate of the embedding rows (default: --lr).", above=0)
    # AdamW's decoupled weight decay: of the dense parameters (weight_decay), and of the embedding rows a step
    # touches (embedding_weight_decay; see RowSparseAdam). 0 = plain Adam, as before.
    weight_decay: float = option(0.0, "AdamW's decoupled decay of the dense weights.", low=0)
    embedding_weight_decay: float = option(0.0, "Decoupled decay of the embedding rows each step touches.", low=0)
    # The learning rate over the run: "constant", or decayed to zero by the last epoch along a half cosine or a
    # line, after warmup_steps steps rising linearly from zero. Constant by default: the podcast runs were measured
    # with it.
    lr_schedule: str = option(
        "constant", "constant, or decayed to 0 by the last epoch (cosine, linear).", choices=LR_SCHEDULES
    )
    warmup_steps: int = option(0, "Steps of a linear rise of the rate.", low=0)
    seed: int = option(7, "Seed of the initialisation and of the order of the rows.", low=0)
    patience: int = option(
        2, "Epochs without a better validation score ([evaluation] selection_metric of the spec, AP by default).", low=0
    )
    resume: bool = option(False, "Continue from <out>/<run>/checkpoints/last.pt.")
    overwrite: bool = option(False, "Replace an existing run.")
    tasks: list[str] | None = option(None, "Comma list of tasks to train (default: all in the spec).", parse=comma_list)
    sources: list[str] | None = option(None, "Comma list of sources whose rows train (default: all).", parse=comma_list)
    disable_groups: list[str] | None = option(None, "Comma list of feature groups to switch off.", parse=comma_list)
    directional_mask: bool = option(
        True, "The directional loss mask (--no_directional_mask: every source trains every task)."
    )
    # A share of each batch: 0 or 1 would leave one source no rows at all.
    source_ratio: float | None = option(
        0.5,
        "Share of the spec's second source per batch.",
        above=0,
        below=1,
        none_flag="--no_source_balance",
        none_help="Natural mix instead of balanced batches.",
    )
    # At most this many draws per epoch, on average, of a row of the source that balancing up-samples (the scarcer
    # one): past it, that source's batch share shrinks towards the natural mix (model/data/sampling.py). None: no
    # cap (every batch keeps source_ratio, however often the scarce rows repeat). 2, chosen on validation days of
    # the eval world with one day of ad history, where half-ad batches drew each ad row 31 times an epoch and the
    # joint model's AdStream head fell below the promotions-only baseline's (docs/results.md); with every day of
    # ad history the balanced batches draw each ad row about twice, so the cap leaves them as they were.
    max_source_repeats: float | None = option(
        2.0,
        "Most draws per epoch of a row of the up-sampled source, on average (>= 1; 1 = the natural mix).",
        low=1,
        none_flag="--no_repeat_cap",
        none_help="Balanced batches however often rows repeat.",
    )
    # Sources trained only on their last N training days (e.g. {"ad": 1}: one day of ad history, every day of
    # promotions): the cold start of a channel, measured by `make coldstart`. Validation and test days are whole.
    source_history_days: dict[str, int] = option(
        default_factory=dict,
        help="SOURCE=N,...: train those sources on their last N training days only (e.g. ad=1: ad cold start).",
        parse=assignments(int, "SOURCE=DAYS, e.g. ad=3"),
    )
    architecture: str | None = option(None, "The spec's [model] architecture instead.", choices=ARCHITECTURES)
    loss_weighting: str = option("fixed", "How the tasks' losses are weighted.", choices=WEIGHTINGS)
    task_weights: dict[str, float] = option(
        default_factory=dict,
        help="Fixed weights, e.g. Click=0.5,Like=2 (default 1).",
        parse=assignments(float, "TASK=NUMBER"),
    )
    # Start fresh heads at their task's training positive rate (MultiTaskNetwork.set_priors). Off by default:
    # on the demo world it helps Click and does not hurt the stream tasks, but on the tiny world's fixed-epoch
    # recipe it lowers the stream tasks (measured; see docs/results.md, Training).
    prior_init: bool = option(False, "Start fresh heads at their task's training positive rate.")
    init_from: str | None = option(None, "Start from a trained run (transfer).")
    add_task: list[str] = option(default_factory=list, help="NAME:label_column:source, a new head.", repeat=True)
    freeze_encoder: bool = option(False, "Train only the heads (new heads, if any).")
    apply_head: list[str] = option(
        default_factory=list, help="NEW=EXISTING: serve NEW with a copied head.", repeat=True
    )
    threads: int | None = option(
        None, "torch threads (default: every core; the reader thread mostly waits on I/O and numpy).", low=1
    )
    max_batches_per_epoch: int | None = option(None, "Stop an epoch after this many batches.", low=1)
    chunk_rows: int = option(16384, "Rows decoded per read of the example table.", low=1, cli=False)
    pool_rows: int = option(32768, "Rows of the shuffle buffer.", low=1, cli=False)
    progress: bool | None = option(
        None, "A progress bar per epoch on stderr (default: only when stderr is a terminal)."
    )
    # The settings of the spec's [training] table that were given explicitly (command-line flags): they win over the
    # spec's. A setting given in Python wins where it differs from the default (see with_spec_training).
    given: tuple[str, ...] = option((), "Settings given on the command line.", cli=False)

    def __post_init__(self) -> None:
        """Refuse a bad setting now, with the uniform message, rather than minutes into a run. ``examples`` is not
        checked: it is a path, read when the run opens."""
        owner = "TrainConfig"
        check_options(self)
        for name in ("train_days", "valid_days", "test_days"):
            self._check_days(name)
        if (self.valid_days or self.test_days) and not self.train_days:
            raise invalid(owner, "train_days", "days when valid_days or test_days are given", self.train_days)
        split_ok = (
            isinstance(self.split, tuple | list)
            and len(self.split) == 3
            and all(isinstance(f, int | float) and not isinstance(f, bool) and f >= 0 for f in self.split)
            and abs(sum(self.split) - 1.0) <= 1e-6
        )
        if not split_ok:
            raise invalid(owner, "split", "three fractions >= 0 summing to 1 (train, valid, test)", self.split)
        for source, days in self.source_history_days.items():
            check_int(owner, f'source_history_days["{source}"]', days, low=1)
        for task, weight in self.task_weights.items():
            check_number(owner, f'task_weights["{task}"]', weight, low=0)

    def _check_days(self, name: str) -> None:
        text = getattr(self, name)
        if text is None:
            return
        expected = "days as YYYY-MM-DD, a..b ranges or a comma list (e.g. 2026-03-02..2026-03-07) or None"
        if not isinstance(text, str):
            raise invalid("TrainConfig", name, expected, text)
        try:
            parse_days(text)
        except ValueError:
            raise invalid("TrainConfig", name, expected, text) from None


def with_spec_training(config: TrainConfig, spec: Spec) -> TrainConfig:
    """``config`` with the spec's ``[training]`` settings where the caller left them: a setting named in
    ``config.given`` (a flag on the command line) or set to other than TrainConfig's default keeps its value.

        >>> with_spec_training(TrainConfig(examples="x"), spec).epochs      # spec: [training] epochs = 25
        25
    """
    defaults = TrainConfig(examples="")
    changes = {
        k: v for k, v in spec.training.items() if k not in config.given and getattr(config, k) == getattr(defaults, k)
    }
    if changes:
        log.info("from the spec's [training]: %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
    return dataclasses.replace(config, **changes) if changes else config


def parse_args(argv: Sequence[str], description: str | None = None) -> TrainConfig:
    """The configuration of ``python -m podtarget.model.train`` ``argv``; ``description``: its ``--help`` text."""
    parser = CommandParser("podtarget.model.train", description)  # whole flag names only; a bad one is one line
    add_options(parser, TrainConfig, defaults={"examples": "./data/examples"})
    parsed = parser.parse_args(argv)
    # Flags given on the command line win over the spec's [training] (whole names only, so a prefix cannot match).
    given = tuple(k for k in TRAINING_KEYS if any(x == f"--{k}" or x.startswith(f"--{k}=") for x in argv))
    return from_options(TrainConfig, parsed, given=given)

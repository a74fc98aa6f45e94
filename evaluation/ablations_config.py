"""What ``make evaluate`` (``python -m podtarget.evaluation.ablations``) runs: :class:`EvaluateConfig`, validated."""

from __future__ import annotations

import dataclasses

from ..common.checks import invalid
from ..common.options import check_options, comma_ints, comma_list, option
from ..model.spec import DEFAULT_SPEC
from .outputs import DEFAULT_OUT
from .setups import Setup, all_setups

SPLITS = ("trainer", "mature")


def setup_names(text: str) -> tuple[str, ...] | None:
    """``--setups``: a comma list of configurations; empty for every one."""
    return tuple(comma_list(text)) or None


@dataclasses.dataclass
class EvaluateConfig:
    """What ``make evaluate`` runs. Defaults are the full evaluation on the demo world."""

    examples: str = option(help="Example table root.")
    models: str = option("models/eval-demo", "Folder of the evaluation's model runs (cached).")
    # The committed record, reports/eval, only when asked for by name.
    out: str = option(DEFAULT_OUT, "Report folder: ablations.json, report.md, plots.")
    seeds: tuple[int, ...] = option((1, 2, 3), "Comma list of training seeds.", parse=comma_ints)
    setups: tuple[str, ...] | None = option(
        None, f"Comma list (default: all): {', '.join(all_setups())}.", parse=setup_names
    )
    spec: str = option(str(DEFAULT_SPEC), "Spec file of every configuration.")
    epochs: int = option(10, "Most epochs of each run.", low=1)
    patience: int = option(1, "Epochs without a better validation score before a run stops.", low=0)
    batch_size: int = option(8192, "Rows per training step.", low=1)
    lr: float = option(2e-3, "Learning rate.", above=0)
    split: str = option(
        "trainer", "trainer (the trainer's default or the days below) or mature (runs.mature_split).", choices=SPLITS
    )
    valid_count: int = option(2, "--split=mature: validation days.", low=0)
    test_count: int = option(3, "--split=mature: test days.", low=1)
    # The simulated world whose ground truth scores the test rows as yardsticks (evaluation/truth.py); None or a
    # folder without a world (logs of your own): a constant is the only reference.
    world: str | None = option(
        None,
        "World folder: its ground truth scores the test rows as references, and the report records its "
        "configuration (default: beside the examples).",
    )
    train_days: str | None = option(None, "Training days (with --valid_days, --test_days; as the trainer takes them).")
    valid_days: str | None = option(None, "Validation days.")
    test_days: str | None = option(None, "Test days.")
    max_batches_per_epoch: int | None = option(None, "Stop each epoch after this many batches.", low=1)
    threads: int | None = option(None, "torch threads (default: every core).", low=1)
    reuse: bool = option(True, "Reuse cached runs.")
    calibration_bins: int = option(10, "Bins of the calibration curves.", low=1, cli=False)
    # Fewer resamples make the percentile ends noise.
    bootstrap: int = option(1000, "Bootstrap resamples of the test impressions and seeds.", low=100)
    confidence: float = option(0.95, "Level of the intervals.", low=0.5, below=1)
    bootstrap_seed: int = option(17, "Seed of the bootstrap.", low=0)

    def __post_init__(self) -> None:
        owner = "EvaluateConfig"
        self.seeds = tuple(self.seeds)
        ints = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds)
        if not self.seeds or not ints or len(set(self.seeds)) != len(self.seeds):
            raise invalid(owner, "seeds", "distinct ints in the range [0, inf), at least one", self.seeds)
        if not self.examples:
            raise invalid(owner, "examples", "the example table's root, e.g. ./data/examples", self.examples)
        known = all_setups(self.spec)
        if self.setups is not None:
            self.setups = tuple(self.setups)
            if not self.setups or any(s not in known for s in self.setups):
                raise invalid(owner, "setups", f"some of {list(known)}", self.setups)
            if "baseline" not in self.setups:
                raise invalid(
                    owner, "setups", "setups including 'baseline' (every figure is relative to it)", self.setups
                )
        check_options(self)
        explicit = [n for n in ("train_days", "valid_days", "test_days") if getattr(self, n)]
        if self.split == "mature" and explicit:
            given = " and ".join(explicit)
            expected = f"'trainer' when {given} are set ('mature' chooses the days itself: leave {given} unset)"
            raise invalid(owner, "split", expected, self.split)

    @property
    def chosen(self) -> list[Setup]:
        known = all_setups(self.spec)
        return [known[n] for n in (self.setups or known)]

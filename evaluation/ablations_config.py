"""What ``make evaluate`` (``python -m podtarget.evaluation.ablations``) runs: :class:`EvaluateConfig`, validated."""

from __future__ import annotations

import dataclasses

from podtarget.common.checks import check_choice, check_int, check_number, invalid, optional
from podtarget.evaluation.outputs import DEFAULT_OUT
from podtarget.evaluation.setups import Setup, all_setups
from podtarget.model.spec import DEFAULT_SPEC

SPLITS = ("trainer", "mature")


@dataclasses.dataclass
class EvaluateConfig:
    """What ``make evaluate`` runs. Defaults are the full evaluation on the demo world."""

    examples: str
    models: str = "models/eval-demo"
    out: str = DEFAULT_OUT  # the committed record, reports/eval, only when asked for by name
    seeds: tuple[int, ...] = (1, 2, 3)
    setups: tuple[str, ...] | None = None  # None: every configuration
    spec: str = str(DEFAULT_SPEC)
    epochs: int = 10
    patience: int = 1
    batch_size: int = 8192
    lr: float = 2e-3
    split: str = "trainer"  # trainer: the trainer's default or the explicit days below; mature: runs.mature_split
    valid_count: int = 2  # --split=mature: validation days
    test_count: int = 3  # --split=mature: test days
    # The simulated world whose ground truth scores the test rows as yardsticks (evaluation/truth.py); None or a
    # folder without a world (logs of your own): a constant is the only reference.
    world: str | None = None
    train_days: str | None = None
    valid_days: str | None = None
    test_days: str | None = None
    max_batches_per_epoch: int | None = None
    threads: int | None = None
    reuse: bool = True
    calibration_bins: int = 10
    bootstrap: int = 1000  # resamples of the test impressions and seeds
    confidence: float = 0.95
    bootstrap_seed: int = 17

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
        for name in ("epochs", "batch_size", "calibration_bins", "test_count"):
            check_int(owner, name, getattr(self, name), low=1)
        for name in ("patience", "valid_count", "bootstrap_seed"):
            check_int(owner, name, getattr(self, name), low=0)
        for name in ("max_batches_per_epoch", "threads"):
            optional(check_int, owner, name, getattr(self, name), low=1)
        check_int(owner, "bootstrap", self.bootstrap, low=100)  # fewer resamples make percentile ends noise
        check_number(owner, "confidence", self.confidence, low=0.5, below=1)
        check_number(owner, "lr", self.lr, above=0)
        check_choice(owner, "split", self.split, SPLITS)
        explicit = [n for n in ("train_days", "valid_days", "test_days") if getattr(self, n)]
        if self.split == "mature" and explicit:
            given = " and ".join(explicit)
            expected = f"'trainer' when {given} are set ('mature' chooses the days itself: leave {given} unset)"
            raise invalid(owner, "split", expected, self.split)

    @property
    def chosen(self) -> list[Setup]:
        known = all_setups(self.spec)
        return [known[n] for n in (self.setups or known)]

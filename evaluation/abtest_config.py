"""What ``make abtest`` (``python -m podtarget.evaluation.abtest``) runs: the arms, the market designs and
:class:`ABTestConfig`, validated."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from podtarget.common.checks import check_choice, check_int, check_number, invalid
from podtarget.evaluation.outputs import DEFAULT_OUT
from podtarget.model import artifacts

MODEL_ARMS = ("control", "treatment")
HEADS = {"control": "PromotionStream", "treatment": "AdStream"}
REFERENCE_ARMS = {
    "random": "a uniform random score per (user, campaign) pair",
    "truth_shared": "the ground truth without its ad-only terms: user x show affinity, language match, show appeal",
    "oracle": "the world's true stream probability in the serving context",
}
ARMS = (*MODEL_ARMS, *REFERENCE_ARMS)
DESIGNS = ("auction", "audience")


def _seeds(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in value)


@dataclasses.dataclass
class ABTestConfig:
    """What ``make abtest`` runs."""

    data_root: str
    models: str = "models/eval-demo"  # the ablations' runs: baseline-s<seed> and joint-s<seed>
    out: str = DEFAULT_OUT  # the committed record, reports/eval, only when asked for by name
    days: tuple[datetime.date, ...] = ()  # empty: every day after the models' test days with user features
    model_seeds: tuple[int, ...] = (1,)
    control: str | None = None  # a model folder instead of <models>/baseline-s<seed> (one seed only)
    treatment: str | None = None  # a model folder instead of <models>/joint-s<seed> (one seed only)
    arms: tuple[str, ...] = ARMS  # control and treatment, and any of the reference arms
    designs: tuple[str, ...] = DESIGNS
    # The audience design's shares of each campaign's eligible users bought; arms are read at the control's
    # delivery at matched_share (one of them).
    audience_shares: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
    matched_share: float = 0.1
    draw_seed: int = 29
    inventory_seed: int = 37
    reserve_cpm_micros: int = 5_000_000  # below every CPM the simulator books (6-24 currency units)
    bootstrap: int = 2000
    confidence: float = 0.95
    hour: int = 19
    work_dir: str | None = None  # scratch data root for the audiences (default: a temporary folder, removed)
    pipeline_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = "ABTestConfig"
        self.days = tuple(self.days)
        self.model_seeds = _seeds(self.model_seeds)
        self.arms, self.designs = tuple(self.arms), tuple(self.designs)
        self.audience_shares = tuple(float(q) for q in self.audience_shares)
        if not self.data_root or "://" in self.data_root:
            raise invalid(owner, "data_root", "a local folder (the scratch root links it), e.g. ./data", self.data_root)
        check_int(owner, "bootstrap", self.bootstrap, low=100)  # fewer resamples make percentile ends noise
        check_number(owner, "confidence", self.confidence, low=0.5, below=1)
        check_int(owner, "hour", self.hour, low=0, high=23)
        if len(set(self.days)) != len(self.days):
            raise invalid(owner, "days", "distinct days", [d.isoformat() for d in self.days])
        if not self.model_seeds or len(set(self.model_seeds)) != len(self.model_seeds):
            raise invalid(owner, "model_seeds", "distinct ints, at least one", self.model_seeds)
        if (self.control or self.treatment) and len(self.model_seeds) > 1:
            expected = "a single seed when control or treatment is given (each names one model)"
            raise invalid(owner, "model_seeds", expected, self.model_seeds)
        known = [a for a in ARMS if a in self.arms]
        if self.arms[:2] != MODEL_ARMS or len(set(self.arms)) != len(self.arms) or len(known) != len(self.arms):
            expected = f"'control', 'treatment', then any of {list(REFERENCE_ARMS)} (lifts are against control)"
            raise invalid(owner, "arms", expected, self.arms)
        if (
            not self.designs
            or any(d not in DESIGNS for d in self.designs)
            or len(set(self.designs)) < len(self.designs)
        ):
            raise invalid(owner, "designs", f"some of {list(DESIGNS)}, at least one", self.designs)
        shares_ok = all(0 < q <= 1 for q in self.audience_shares) and len(set(self.audience_shares)) > 1
        if not shares_ok or list(self.audience_shares) != sorted(self.audience_shares):
            raise invalid(owner, "audience_shares", "two or more increasing shares in (0, 1]", self.audience_shares)
        check_choice(owner, "matched_share", self.matched_share, self.audience_shares)
        check_int(owner, "reserve_cpm_micros", self.reserve_cpm_micros, low=0)
        for name in ("draw_seed", "inventory_seed"):
            check_int(owner, name, getattr(self, name), low=0)

    def model_path(self, arm: str, seed: int) -> str:
        given = self.control if arm == "control" else self.treatment
        setup = "baseline" if arm == "control" else "joint"
        return given or artifacts.join(self.models, f"{setup}-s{seed}")

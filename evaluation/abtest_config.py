"""What ``make abtest`` (``python -m podtarget.evaluation.abtest``) runs: the arms, the market designs and
:class:`ABTestConfig`, validated."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from ..common.checks import check_choice, invalid
from ..common.days import parse_days
from ..common.options import check_options, comma_floats, comma_ints, comma_names, option
from ..model import artifacts
from .outputs import DEFAULT_OUT

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


def day_tuple(text: str) -> tuple[datetime.date, ...]:
    """``--days``: days as YYYY-MM-DD, a..b ranges or a comma list."""
    return tuple(parse_days(text))


@dataclasses.dataclass
class ABTestConfig:
    """What ``make abtest`` runs."""

    data_root: str = option(help="Data root of the held-out days (a local folder: the arms' scratch root links it).")
    # The ablations' runs: baseline-s<seed> and joint-s<seed>.
    models: str = option("models/eval-demo", "Folder of the ablation runs the model arms use.")
    # The committed record, reports/eval, only when asked for by name.
    out: str = option(DEFAULT_OUT, "Report folder: abtest.json, abtest_units.json.gz, report.md.")
    days: tuple[datetime.date, ...] = option(
        (), "Held-out days (default: every day after the models' test days with user features).", parse=day_tuple
    )
    model_seeds: tuple[int, ...] = option((1,), "Seeds of the ablation runs used.", parse=comma_ints)
    control: str | None = option(None, "A model folder instead of <models>/baseline-s<seed> (one seed only).")
    treatment: str | None = option(None, "A model folder instead of <models>/joint-s<seed> (one seed only).")
    arms: tuple[str, ...] = option(ARMS, f"control,treatment and any of {','.join(REFERENCE_ARMS)}.", parse=comma_names)
    designs: tuple[str, ...] = option(DESIGNS, f"Some of {','.join(DESIGNS)}.", parse=comma_names)
    # The audience design's shares of each campaign's eligible users bought; arms are read at the control's
    # delivery at matched_share (one of them).
    audience_shares: tuple[float, ...] = option(
        (0.01, 0.02, 0.05, 0.1, 0.25, 0.5), "Audience design's shares.", parse=comma_floats
    )
    matched_share: float = option(0.1, "Control's share arms are matched at (one of --audience_shares).")
    draw_seed: int = option(29, "Seed of the outcome draws.", low=0)
    inventory_seed: int = option(37, "Seed of the day's ad slots.", low=0)
    # Below every CPM the simulator books (6-24 currency units).
    reserve_cpm_micros: int = option(5_000_000, "Reserve price of the auction, CPM in micros.", low=0)
    # Fewer resamples make the percentile ends noise.
    bootstrap: int = option(2000, "Bootstrap resamples.", low=100)
    confidence: float = option(0.95, "Level of the intervals.", low=0.5, below=1)
    hour: int = option(19, "Serving hour (UTC) the arms score for.", low=0, high=23)
    work_dir: str | None = option(None, "Keep the arms' audiences here (default: a temporary folder, removed).")
    pipeline_args: tuple[str, ...] = option((), "Flags passed to the scoring pipeline.", cli=False)

    def __post_init__(self) -> None:
        owner = "ABTestConfig"
        self.days = tuple(self.days)
        self.model_seeds = _seeds(self.model_seeds)
        self.arms, self.designs = tuple(self.arms), tuple(self.designs)
        self.audience_shares = tuple(float(q) for q in self.audience_shares)
        if not self.data_root or "://" in self.data_root:
            raise invalid(owner, "data_root", "a local folder (the scratch root links it), e.g. ./data", self.data_root)
        check_options(self)
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

    def model_path(self, arm: str, seed: int) -> str:
        given = self.control if arm == "control" else self.treatment
        setup = "baseline" if arm == "control" else "joint"
        return given or artifacts.join(self.models, f"{setup}-s{seed}")

"""The paper's Table 1 as directions our figures are checked against, and each direction's verdict
(*reproduced*, *reversed* or *inconclusive*) from our figure's bootstrap interval."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from . import intervals
from .setups import PAPER_SETUPS, all_setups


# The directions of Table 1 a figure is checked against: a cell of the table (a setup against the baseline), or one
# of the comparisons the paper's text draws between two setups. ``paper`` is the % change the paper's figures imply.
@dataclasses.dataclass(frozen=True)
class Direction:
    name: str
    channel: str  # promotions | ads
    setup: str
    versus: str  # the setup it is compared with (baseline for the table's cells)
    paper: float
    claim: str


def table1_directions() -> list[Direction]:
    """The eight cells of Table 1 and the three comparisons its text draws between setups (section 4.3: ancillary
    heads help the ads-only model; "ads-only configurations, even with ancillary heads, ... still fall short of the
    joint model on ads": the joint model beats both ads-only models on ads). A comparison's ``paper`` is the ratio
    of the two setups' Table 1 figures."""
    known = all_setups()
    cells = []
    for name in PAPER_SETUPS[1:]:
        promotions, ads = known[name].paper_figures
        for channel, value in (("promotions", promotions), ("ads", ads)):
            cells.append(Direction(f"{name}/{channel}", channel, name, "baseline", value, f"{known[name].label}"))

    def ratio(setup: str, versus: str) -> float:
        return 100.0 * ((1 + known[setup].paper_figures[1] / 100) / (1 + known[versus].paper_figures[1] / 100) - 1)

    comparisons = (
        ("anc_over_ads_only", "ads_stream_anc", "ads_stream_only", "ancillary heads raise the ads-only model's Ads AP"),
        ("joint_over_ads_only", "joint", "ads_stream_only", "the joint model beats the ads-only model on Ads AP"),
        (
            "joint_over_ads_anc",
            "joint",
            "ads_stream_anc",
            "the joint model beats the ads-only model with ancillary heads on Ads AP",
        ),
    )
    return cells + [
        Direction(
            f"{name}/ads",
            "ads",
            setup,
            versus,
            ratio(setup, versus),
            f"{claim} ({known[versus].paper_figures[1]:+.1f}% -> "
            f"{known[setup].paper_figures[1]:+.1f}% of the baseline's)",
        )
        for name, setup, versus, claim in comparisons
    ]


def directions(result_figures: dict, setups: Sequence[str], confidence: float) -> list[dict]:
    """Each direction of Table 1 with our figure, its interval and its verdict at ``confidence``."""
    out = []
    for d in table1_directions():
        if d.setup not in setups or d.versus not in setups:
            continue
        change = result_figures[d.channel]["segments"]["all"].get("change_pct", {}).get(f"{d.setup}|{d.versus}", {})
        out.append(
            {
                **dataclasses.asdict(d),
                "ours": change.get("point"),
                "ci": change.get("ci"),
                "confidence": confidence,
                "verdict": intervals.verdict(change.get("ci"), d.paper),
            }
        )
    return out

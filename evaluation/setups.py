"""The configurations ``make evaluate`` compares, in report order: Table 1's rows (the promotions-only ``baseline``
and the setups the paper reports against it) and our own ablations of the joint model (one thing changed each).
Each says which :class:`~podtarget.model.train_config.TrainConfig` fields it changes, which head serves the channel
it has no head for, and the paper's figures where the paper has its row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..model.spec import DEFAULT_SPEC, load_spec

PROMO_TASK, AD_TASK = "PromotionStream", "AdStream"
ANCILLARY = ("Click", "Like", "Follow")


@dataclasses.dataclass(frozen=True)
class Setup:
    """One configuration: the :class:`TrainConfig` fields it changes, and which head serves the missing channel."""

    name: str
    label: str
    changes: dict[str, Any]
    # NEW=EXISTING, applied to the trained run to measure the channel it has no head for (None: it has both).
    apply_head: str | None = None
    # Table 1's figures (Promotions AP, Ads AP, % relative to the baseline), where the paper has the row.
    paper: tuple[float, float] | None = None

    @property
    def paper_figures(self) -> tuple[float, float]:
        """Table 1's (promotions, ads) % for a setup the paper reports (every name in ``PAPER_SETUPS``)."""
        if self.paper is None:
            raise ValueError(f"setup {self.name!r} has no row in the paper's Table 1")
        return self.paper


PAPER_SETUPS = ("baseline", "promo_stream_only", "ads_stream_only", "ads_stream_anc", "joint")


def all_setups(spec_path: str = str(DEFAULT_SPEC)) -> dict[str, Setup]:
    """Every configuration, in report order; one ``no_<group>`` per feature group of the spec."""
    setups = [
        Setup(
            "baseline",
            "Promotions-only baseline (multi-head)",
            {"sources": ["promo"], "tasks": [PROMO_TASK, *ANCILLARY]},
            f"{AD_TASK}={PROMO_TASK}",
        ),
        Setup(
            "promo_stream_only",
            "Promo stream head only",
            {"sources": ["promo"], "tasks": [PROMO_TASK]},
            f"{AD_TASK}={PROMO_TASK}",
            (-7.9, -8.8),
        ),
        Setup(
            "ads_stream_only",
            "Ads stream head only",
            {"sources": ["ad"], "tasks": [AD_TASK]},
            f"{PROMO_TASK}={AD_TASK}",
            (-65.2, 27.0),
        ),
        # Like and Follow are promotion tasks in the spec, which the directional mask keeps away from ad rows; on
        # ad rows alone they would get no loss at all. Without promotion rows the mask has nothing to protect, so
        # it is off here: the ancillary heads learn from the ad impressions' own clicks, likes and follows.
        Setup(
            "ads_stream_anc",
            "Ads stream + ancillary heads (click, like, follow)",
            {"sources": ["ad"], "tasks": [AD_TASK, *ANCILLARY], "directional_mask": False},
            f"{PROMO_TASK}={AD_TASK}",
            (-64.8, 46.5),
        ),
        Setup("joint", "Promo + Ads 5-task joint model", {}, None, (4.5, 50.2)),
        Setup("no_mask", "Joint, directional masking off", {"directional_mask": False}),
        Setup("no_balance", "Joint, source-balanced sampling off", {"source_ratio": None}),
        Setup("no_repeat_cap", "Joint, balanced batches without the cap on repeats", {"max_source_repeats": None}),
    ]
    for group in load_spec(spec_path).groups:
        setups.append(Setup(f"no_{group}", f"Joint, without the {group} features", {"disable_groups": [group]}))
    setups.append(Setup("mmoe", "Joint, MMoE instead of shared bottom", {"architecture": "mmoe"}))
    return {s.name: s for s in setups}

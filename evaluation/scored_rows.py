"""The test days' impressions scored by every run of the evaluation, once, with every head a figure needs, and by
the world's references (:mod:`podtarget.evaluation.truth`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..model import artifacts
from ..model.artifacts import load_model
from ..schemas import layout
from ..simulator.world import World
from ..transforms.runtime.storage import list_files, read_parquet_files
from .ablations_config import EvaluateConfig
from .outputs import world_beside
from .setups import AD_TASK, PROMO_TASK
from .truth import reference_scores

# What is measured on the test rows: (label column, source of the rows, heads that can serve it, best first).
FIGURES = {
    "promotions": ("label_stream", "promo", (PROMO_TASK, AD_TASK)),
    "ads": ("label_stream", "ad", (AD_TASK, PROMO_TASK)),
    "like": ("label_like", "promo", ("Like",)),
    "follow": ("label_follow", "promo", ("Follow",)),
}
TIER_COLUMN = "podcast_popularity_tier"


@dataclasses.dataclass
class TestRows:
    """The test days' impressions as the figures need them: per figure, its rows' labels and tiers, and each run's
    scores of them (``scores[figure][(setup, seed)]``) with the head that produced them."""

    n_rows: int  # rows of the test days (both channels)
    index: dict[str, np.ndarray]  # per figure, its rows' positions among them
    labels: dict[str, np.ndarray]
    tiers: dict[str, np.ndarray]
    scores: dict[str, dict[tuple[str, int], np.ndarray]]
    heads: dict[str, dict[str, str]]  # figure -> setup -> head
    immature: dict[str, list[str]]  # figure -> test days left out (labels mostly unobserved)
    # figure -> reference name (evaluation/truth.py: constant, truth_shared, truth) -> its scores of the rows
    references: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    campaign: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # figure -> the rows' campaigns
    user: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # figure -> the rows' users


def read_days(examples: str, days: Sequence[str]) -> pa.Table:
    """The example rows of ``days`` as one Arrow table."""
    files = [f for day in days for f in list_files(layout.join(examples, f"dt={day}", "part-*.parquet"))]
    return read_parquet_files(files, what=f"under {examples} for days {', '.join(days)}")


def immature_days(observed: np.ndarray, mine: np.ndarray, day_of_row: np.ndarray, days: Sequence[str]) -> list[str]:
    """The days whose label is unobserved on more than half of the rows ``mine`` (``day_of_row`` indexes ``days``)."""
    out = []
    for i, day in enumerate(days):
        rows = mine & (day_of_row == i)
        if rows.any() and observed[rows].mean() < 0.5:
            out.append(day)
    return out


def score_test_rows(config: EvaluateConfig, records: list[dict], test_days: list[str]) -> TestRows:
    """Score the test days' impressions with every run, once, with every head a figure needs. A figure leaves out
    a test day whose label is unobserved on more than half of the figure's rows: as in training
    (``model/data/labels.py``), the few observed labels of an immature day are early-credited positives, not a
    sample."""
    per_day = [read_days(config.examples, [day]) for day in test_days]
    table = pa.concat_tables(per_day, promote_options="default")
    day_of_row = np.repeat(np.arange(len(per_day)), [t.num_rows for t in per_day])
    source = np.asarray(table.column("source").to_numpy(zero_copy_only=False))
    tier_column = table.column(TIER_COLUMN).to_numpy(zero_copy_only=False)
    tier_all = np.where(np.isnan(tier_column.astype(float)), -1, tier_column.astype(float)).astype(int)
    rows, labels, tiers, immature = {}, {}, {}, {}
    for figure, (label, src, _) in FIGURES.items():
        y = table.column(label).to_numpy(zero_copy_only=False).astype(float)
        observed, mine = ~np.isnan(y), source == src
        immature[figure] = immature_days(observed, mine, day_of_row, test_days)
        mature = ~np.isin(day_of_row, [test_days.index(d) for d in immature[figure]])
        rows[figure] = mine & observed & mature
        labels[figure], tiers[figure] = y[rows[figure]], tier_all[rows[figure]]
    scores: dict[str, dict[tuple[str, int], np.ndarray]] = {f: {} for f in FIGURES}
    heads: dict[str, dict[str, str]] = {f: {} for f in FIGURES}
    for record in records:
        model = load_model(record["path"])
        chosen = {f: next((h for h in hs if h in model.tasks), None) for f, (_, _, hs) in FIGURES.items()}
        wanted = sorted({h for h in chosen.values() if h})
        parts: dict[str, list[np.ndarray]] = {h: [] for h in wanted}
        for start in range(0, table.num_rows, 65536):
            chunk = model.score(table.slice(start, 65536), wanted)
            for h in wanted:
                parts[h].append(chunk[h])
        joined = {h: np.concatenate(v) for h, v in parts.items()}
        for figure, head in chosen.items():
            if head is not None:
                scores[figure][(record["setup"], record["seed"])] = joined[head][rows[figure]].astype(np.float64)
                heads[figure][record["setup"]] = head
    index = {f: np.flatnonzero(r) for f, r in rows.items()}
    out = TestRows(table.num_rows, index, labels, tiers, scores, heads, immature)
    world = load_world(config.world or world_beside(config.examples))
    reference = reference_scores(world, table)
    ids = {c: table.column(c).to_numpy(zero_copy_only=False) for c in ("campaign_id", "user_id")}
    for figure, (label, _, _) in FIGURES.items():
        # The world's yardsticks are stream probabilities: they rank stream labels, not likes or follows.
        names = reference if label == "label_stream" else {"constant": reference["constant"]}
        out.references[figure] = {k: v[rows[figure]] for k, v in names.items()}
        out.campaign[figure], out.user[figure] = ids["campaign_id"][rows[figure]], ids["user_id"][rows[figure]]
    return out


def load_world(folder: str | None) -> World | None:
    """The simulated world saved in ``folder``, or None where there is none (a data root of your own logs)."""
    if not folder or not artifacts.exists(artifacts.join(folder, "config.json")):
        return None
    return World.load(folder)

"""Offline ablations (``make evaluate``): the paper's Table 1 and our own ablations, over several seeds, with
paired bootstrap intervals.

Every configuration is trained with the project's own training API (:func:`podtarget.model.train.train`) on the same
example table and the same temporal split, once per seed. Each trained run then scores the test days' impressions, and
every figure is computed from those scores (:mod:`podtarget.evaluation.intervals`): AP of PromotionStream on promotion
impressions, of AdStream on ad impressions, of Like and Follow on promotion impressions, overall and by podcast
popularity tier. A configuration without one of the two stream heads serves that channel with its other stream head, as
is, the way the paper measures its promotions-only baseline on ads (what ``--apply_head`` would copy).

Each figure is the % change of the seed-mean AP of a configuration against the promotions-only baseline's, with a
percentile interval from a bootstrap that resamples the test impressions (paired: every model on the same rows)
and the seeds (paired: a setup and the baseline of one seed together). Each direction of the paper's Table 1 is
then *reproduced*, *reversed* or *inconclusive* at the chosen confidence.

Configurations (``SETUPS``; each figure is relative to ``baseline`` trained with the same seed):

- ``baseline``: the promotions-only multi-head model (promotion rows; PromotionStream, Click, Like, Follow).
- ``promo_stream_only``, ``ads_stream_only``, ``ads_stream_anc``, ``joint``: the other rows of Table 1.
- ``no_mask``, ``no_balance``, ``no_repeat_cap``, ``no_<group>`` (one per feature group of the spec), ``mmoe``: the
  joint model with one thing changed.

Splits: the trainer's default (``--split=trainer``: days with immature stream labels left out, which leaves like
and follow without mature test labels on a short world), explicit ``--train_days/--valid_days/--test_days``, or
``--split=mature``: the last ``--test_count`` days whose labels are all mature (``labels_mature`` in the day's
``_SUCCESS.json``: every window, like and follow included, covered by the logs) for testing, the
``--valid_count`` days before them for validation, every earlier day for training.

Runs are cached: each run folder is keyed by its training configuration and a fingerprint of the example table,
so a rerun (``--reuse``, the default) only trains what changed, and ``make report`` never retrains::

    python -m podtarget.evaluation.ablations --examples=./data/examples --models=models/eval-demo --out=reports/eval \\
        --seeds=1,2,3 [--setups=baseline,joint] [--epochs=4] [--split=mature] [--no-reuse]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from podtarget.common.checks import check_choice, check_int, check_number, invalid, optional
from podtarget.common.cli import CommandParser, configure_logging, parse_ints, warn_if_threads_spin
from podtarget.evaluation import intervals, ranking
from podtarget.evaluation.outputs import DEFAULT_OUT, check_same_run, report_identity, world_beside
from podtarget.evaluation.truth import REFERENCES, reference_scores
from podtarget.model import artifacts
from podtarget.model.artifacts import load_model
from podtarget.model.metrics import binary_metrics
from podtarget.model.spec import DEFAULT_SPEC, load_spec
from podtarget.model.train import TrainConfig, train
from podtarget.schemas import layout
from podtarget.simulator.world import World
from podtarget.transforms.runtime.storage import list_files, read_bytes, read_parquet_files

log = logging.getLogger(__name__)

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


# What is measured on the test rows: (label column, source of the rows, heads that can serve it, best first).
FIGURES = {
    "promotions": ("label_stream", "promo", (PROMO_TASK, AD_TASK)),
    "ads": ("label_stream", "ad", (AD_TASK, PROMO_TASK)),
    "like": ("label_like", "promo", ("Like",)),
    "follow": ("label_follow", "promo", ("Follow",)),
}
TIER_COLUMN = "podcast_popularity_tier"
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
    split: str = "trainer"  # trainer: the trainer's default or the explicit days below; mature: see the module doc
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


# ------------------------------------------------------------------------------------------ split


def _span(days: Sequence[datetime.date]) -> str:
    """Days as the trainer reads them: ``first..last`` when consecutive, else a comma list ("" for none)."""
    if not days:
        return ""
    consecutive = all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))
    if consecutive and len(days) > 1:
        return f"{days[0].isoformat()}..{days[-1].isoformat()}"
    return ",".join(d.isoformat() for d in days)


def mature_split(examples: str, valid_count: int, test_count: int) -> dict[str, str | None]:
    """Train/valid/test days (as trainer arguments) where every label of the test and validation days is mature:
    the last ``test_count`` days of the table whose ``_SUCCESS.json`` says ``labels_mature``, the
    ``valid_count`` mature days before them, and every earlier mature day for training."""
    mature: list[datetime.date] = []
    immature: list[datetime.date] = []
    for path in sorted(list_files(layout.join(examples, "dt=*", layout.SUCCESS_MARKER))):
        day = datetime.date.fromisoformat(path.rsplit("/", 2)[-2].removeprefix("dt="))
        (mature if json.loads(read_bytes(path)).get("labels_mature") else immature).append(day)
    need = test_count + valid_count + 1
    if len(mature) < need:
        raise ValueError(
            f"split 'mature' needs {need} days with mature labels under {examples} ({test_count} test, "
            f"{valid_count} validation, at least one for training); found {len(mature)}"
            + (f" (immature: {', '.join(d.isoformat() for d in immature)})" if immature else "")
            + ". Simulate more days past the test days, or lower test_count/valid_count"
        )
    test, valid = mature[-test_count:], mature[len(mature) - test_count - valid_count : len(mature) - test_count]
    train = mature[: len(mature) - test_count - valid_count]
    return {"train_days": _span(train), "valid_days": _span(valid), "test_days": _span(test)}


def resolve_days(config: EvaluateConfig) -> dict[str, str | None]:
    """The trainer's day arguments for every run of this evaluation."""
    if config.split == "mature":
        return mature_split(config.examples, config.valid_count, config.test_count)
    return {"train_days": config.train_days, "valid_days": config.valid_days, "test_days": config.test_days}


# ------------------------------------------------------------------------------------------ cached runs


LATER_SETTINGS = {"lr_schedule": "constant", "warmup_steps": 0, "given": ()}


def _key(train_config: TrainConfig, table: str) -> str:
    fields = dataclasses.asdict(train_config)
    for volatile in ("out", "run", "overwrite", "resume", "progress", "threads"):
        fields.pop(volatile)
    # Settings added to TrainConfig after runs were cached join the key only when set, so those runs stay cached.
    for later, default in LATER_SETTINGS.items():
        if fields.get(later) == default:
            fields.pop(later)
    # The same table under another spelling of its path (./data/examples, data/examples) is the same table: its
    # content is in ``table``.
    fields.pop("examples")
    return hashlib.sha256(json.dumps({"config": fields, "table": table}, sort_keys=True).encode()).hexdigest()[:16]


def train_cached(train_config: TrainConfig, table: str, reuse: bool) -> tuple[dict, float, bool]:
    """Train (or reuse) one run; returns (its metrics.json, seconds it took when trained, reused?)."""
    run_dir = artifacts.join(train_config.out, train_config.run)
    marker = artifacts.join(train_config.out, "_evaluation", f"{train_config.run}.json")
    key = _key(train_config, table)
    if reuse and artifacts.exists(marker) and artifacts.exists(artifacts.join(run_dir, "manifest.json")):
        cached = json.loads(artifacts.read_bytes(marker))
        if cached.get("key") == key:
            metrics = json.loads(artifacts.read_bytes(artifacts.join(run_dir, "metrics.json")))
            return metrics, float(cached["seconds"]), True
    started = time.perf_counter()
    result = train(dataclasses.replace(train_config, overwrite=True))
    seconds = round(time.perf_counter() - started, 2)
    artifacts.write_bytes(marker, artifacts.dumps({"key": key, "seconds": seconds, "run_dir": result.run_dir}))
    return result.metrics, seconds, False


def run_name(setup: str, seed: int) -> str:
    return f"{setup}-s{seed}"


def train_config(config: EvaluateConfig, setup: Setup, seed: int, days: Mapping[str, str | None]) -> TrainConfig:
    """The training run of one configuration and seed (its cache key is this, plus the table's fingerprint)."""
    base = TrainConfig(
        examples=config.examples,
        out=config.models,
        run=run_name(setup.name, seed),
        spec=config.spec,
        epochs=config.epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        max_batches_per_epoch=config.max_batches_per_epoch,
        threads=config.threads,
        progress=False,
        train_days=days.get("train_days"),
        valid_days=days.get("valid_days"),
        test_days=days.get("test_days"),
    )
    return dataclasses.replace(base, **setup.changes)


def run_setup(config: EvaluateConfig, setup: Setup, seed: int, table: str, days: Mapping[str, str | None]) -> dict:
    """Train (or reuse) one configuration with one seed; what the report needs of the run besides its scores."""
    trained = train_config(config, setup, seed, days)
    metrics, seconds, reused = train_cached(trained, table, config.reuse)
    return {
        "setup": setup.name,
        "seed": seed,
        "run": trained.run,
        "path": artifacts.join(config.models, trained.run),
        "seconds": seconds,
        "reused": reused,
        "best_epoch": metrics.get("best_epoch"),
        "split": metrics["split"],
    }


# ------------------------------------------------------------------------------------------ test scores


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
    (``model/data.py``), the few observed labels of an immature day are early-credited positives, not a sample."""
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


# ------------------------------------------------------------------------------------------ figures


def spread(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation, min and max of the defined values (n says how many there were)."""
    xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if xs.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(xs.mean()),
        "std": float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
        "min": float(xs.min()),
        "max": float(xs.max()),
        "n": int(xs.size),
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def segment_figures(
    y: np.ndarray,
    keys: Mapping[str, np.ndarray],
    boot: Mapping[str, np.ndarray] | None,
    seed_weights: np.ndarray,
    setups: Sequence[str],
    seeds: Sequence[int],
    comparisons: Sequence[tuple[str, str]],
    confidence: float,
) -> dict:
    """AP per setup and seed on one segment of test rows (``keys``: ``"<setup>/<seed>"`` -> scores), and the
    paired-bootstrap % change of each ``(setup, versus)`` pair in ``comparisons`` (``boot``: the same keys ->
    resampled APs; None where AP is undefined)."""
    present = [s for s in setups if all(f"{s}/{seed}" in keys for seed in seeds)]
    out: dict[str, Any] = {"rows": int(y.size), "positives": int(y.sum())}
    out["positive_rate"] = float(y.mean()) if y.size else None
    if boot is None:
        out["note"] = "AP undefined: no rows, or only one class"
        return out
    point = {k: intervals.average_precision(y, v) for k, v in keys.items()}
    out["ap"] = {
        s: {"per_seed": [point[f"{s}/{seed}"] for seed in seeds], **spread([point[f"{s}/{seed}"] for seed in seeds])}
        for s in present
    }
    out["change_pct"] = {}
    for setup, versus in comparisons:
        if setup not in present or versus not in present:
            continue
        a = np.array([point[f"{setup}/{seed}"] for seed in seeds])
        b = np.array([point[f"{versus}/{seed}"] for seed in seeds])
        ba = np.stack([boot[f"{setup}/{seed}"] for seed in seeds], axis=1)
        bb = np.stack([boot[f"{versus}/{seed}"] for seed in seeds], axis=1)
        resampled = intervals.relative_change(ba, bb, seed_weights)
        finite = resampled[np.isfinite(resampled)]
        out["change_pct"][f"{setup}|{versus}"] = {
            "point": _finite(float(intervals.relative_change(a, b))),
            "ci": intervals.percentile_interval(resampled, confidence),
            "share_above_zero": float((finite > 0).mean()) if finite.size else None,
        }
    out.update(gain_shares(point, boot, seed_weights, present, seeds, confidence))
    return out


def gain_shares(
    point: Mapping[str, float],
    boot: Mapping[str, np.ndarray],
    seed_weights: np.ndarray,
    setups: Sequence[str],
    seeds: Sequence[int],
    confidence: float,
) -> dict:
    """The references' AP (keys ``@<name>``: a constant, the ground truth) and each setup's share of the achievable
    gain, ``(AP - constant's) / (ground truth's - constant's)``, against each ground truth, with its interval
    from the same resamples (seed-mean AP of the setup; the references are the same for every seed)."""
    refs = {name: point[f"@{name}"] for name, _ in REFERENCES if f"@{name}" in point}
    out: dict[str, Any] = {"references": refs, "gain_share": {}}
    if "constant" not in refs:
        return out
    base, base_boot = refs["constant"], boot["@constant"]
    for truth in (n for n in refs if n != "constant"):
        top, top_boot = refs[truth], boot[f"@{truth}"]
        for setup in setups:
            a = np.mean([point[f"{setup}/{seed}"] for seed in seeds])
            ba = np.stack([boot[f"{setup}/{seed}"] for seed in seeds], axis=1)
            mean = (ba * seed_weights).sum(axis=1) / seed_weights.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                resampled = (mean - base_boot) / (top_boot - base_boot)
            share = (a - base) / (top - base) if top != base else float("nan")
            out["gain_share"].setdefault(setup, {})[truth] = {
                "point": _finite(float(share)),
                "ci": intervals.percentile_interval(resampled, confidence),
            }
    return out


# Figures measured by tier as well as overall; like and follow are measured overall only.
BY_TIER = ("promotions", "ads")


def figures(config: EvaluateConfig, rows: TestRows, setups: Sequence[str]) -> dict:
    """Per figure (promotions, ads, like, follow) and segment (all rows; each popularity tier for the stream
    figures): AP per setup and seed, and the bootstrap % change of every setup against the baseline and of
    Table 1's comparisons. One set of resamples (row weights and seed draws) serves every figure."""
    comparisons = [(s, "baseline") for s in setups if s != "baseline"]
    comparisons += [(d.setup, d.versus) for d in table1_directions() if d.versus != "baseline"]
    segments = {}
    for figure in FIGURES:
        y, tiers = rows.labels[figure], rows.tiers[figure]
        masks = {"all": np.ones(y.size, bool)}
        if figure in BY_TIER:
            masks.update({f"tier_{t}": tiers == t for t in sorted(set(tiers.tolist())) if t >= 0})
        for name, mask in masks.items():
            keys = {f"{s}/{seed}": v[mask] for (s, seed), v in rows.scores[figure].items()}
            keys |= {f"@{r}": v[mask] for r, v in rows.references.get(figure, {}).items()}
            segments[(figure, name)] = (rows.index[figure][mask], y[mask], keys)
    defined = {k: v for k, v in segments.items() if 0 < v[1].sum() < v[1].size}
    rng = np.random.default_rng(config.bootstrap_seed)
    boot = intervals.paired_ap_bootstrap(rows.n_rows, defined, config.bootstrap, rng)
    seed_weights = intervals.seed_draws(rng, config.bootstrap, len(config.seeds))
    out: dict[str, Any] = {
        f: {"heads": rows.heads[f], "immature_days": rows.immature[f], "segments": {}} for f in FIGURES
    }
    for (figure, name), (_, y, keys) in segments.items():
        out[figure]["segments"][name] = segment_figures(
            y, keys, boot.get((figure, name)), seed_weights, setups, config.seeds, comparisons, config.confidence
        )
    return out


# The offline metrics that match the A/B designs (evaluation/ranking.py): name -> (how changes are expressed).
RANKING_METRICS = {"within_user_auc": "points", "within_campaign_ap": "pct"}


def ranking_figures(config: EvaluateConfig, rows: TestRows, setups: Sequence[str]) -> dict:
    """Per stream figure (ads, promotions): the within-user AUC of campaign-normalised scores (what the auction
    design rewards) and the within-campaign AP (what the audience design rewards), per setup and seed and for the
    references, with cluster-bootstrap intervals (users or campaigns, and seeds) of each setup's value and of its
    change against the baseline (AUC in points, AP in %)."""
    rng = np.random.default_rng([config.bootstrap_seed, 0xA0C])
    out: dict[str, Any] = {}
    for figure in BY_TIER:
        y, campaign, user = rows.labels[figure], rows.campaign.get(figure), rows.user.get(figure)
        if campaign is None or user is None or not 0 < y.sum() < y.size:
            continue
        models = {f"{s}/{seed}": v for (s, seed), v in rows.scores[figure].items()}
        models |= {f"@{r}": v for r, v in rows.references.get(figure, {}).items()}
        pairs = ranking.user_pairs(y, campaign, user)
        groups = ranking.campaign_groups(y, campaign)
        parts = {
            "within_user_auc": {k: ranking.within_user_pairs(y, v, campaign, user, pairs) for k, v in models.items()},
            "within_campaign_ap": {},
        }
        for k, v in models.items():
            ap, positives = ranking.within_campaign_ap(y, v, campaign, groups)
            parts["within_campaign_ap"][k] = (ap * positives, positives)
        sizes = {"within_user_auc": {"pairs": int(pairs[0].size), "users": int(np.unique(pairs[2]).size)}}
        sizes["within_campaign_ap"] = {"campaigns": len(groups), "positives": int(sum(y[g].sum() for g in groups))}
        out[figure] = {
            metric: {**sizes[metric], **ranking_metric(parts[metric], setups, config, rng, RANKING_METRICS[metric])}
            for metric in RANKING_METRICS
        }
    return out


def ranking_metric(
    parts: Mapping[str, tuple[np.ndarray, np.ndarray]],
    setups: Sequence[str],
    config: EvaluateConfig,
    rng: np.random.Generator,
    change: str,
) -> dict:
    """One ranking metric from per-cluster (numerator, denominator) of every model key: values per setup and
    seed, the references', and bootstrap intervals of each setup's seed mean and its change against the
    baseline."""
    seeds = config.seeds
    present = [s for s in setups if all(f"{s}/{seed}" in parts for seed in seeds)]
    if not present or not next(iter(parts.values()))[1].size:
        return {"note": "undefined: no cluster with both outcomes"}
    value = {k: float(num.sum() / den.sum()) if den.sum() else float("nan") for k, (num, den) in parts.items()}
    numerators = {s: np.stack([parts[f"{s}/{seed}"][0] for seed in seeds], axis=1) for s in present}
    denominators = {s: np.stack([parts[f"{s}/{seed}"][1] for seed in seeds], axis=1) for s in present}
    draws, seed_w = ranking.cluster_bootstrap(numerators, denominators, config.bootstrap, rng)
    means = {s: (draws[s] * seed_w).sum(axis=1) / seed_w.sum(axis=1) for s in present}
    out: dict[str, Any] = {"setups": {}, "references": {}, "change_vs_baseline": {}, "change_unit": change}
    for s in present:
        per_seed = [value[f"{s}/{seed}"] for seed in seeds]
        ci = intervals.percentile_interval(means[s], config.confidence)
        out["setups"][s] = {"per_seed": per_seed, **spread(per_seed), "ci": ci}
        if s != "baseline" and "baseline" in present:
            with np.errstate(invalid="ignore", divide="ignore"):
                diff = means[s] - means["baseline"] if change == "points" else 100 * (means[s] / means["baseline"] - 1)
            point = float(np.mean(per_seed))
            base = float(np.mean([value[f"baseline/{seed}"] for seed in seeds]))
            out["change_vs_baseline"][s] = {
                "point": _finite(point - base if change == "points" else 100 * (point / base - 1)),
                "ci": intervals.percentile_interval(diff, config.confidence),
            }
    out["references"] = {k[1:]: _finite(v) for k, v in value.items() if k.startswith("@")}
    return out


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


def calibration_curves(config: EvaluateConfig, rows: TestRows, test_days: Sequence[str]) -> dict:
    """Reliability curves on the test days (equal-count bins of the prediction) of the baseline and the joint
    model of the first seed, for ads (the head that serves ad campaigns) and promotions."""
    seed = config.seeds[0]
    curves: dict[str, Any] = {}
    for setup in ("baseline", "joint"):
        if (setup, seed) not in rows.scores["ads"]:
            continue
        curves[setup] = {
            channel: {
                "head": rows.heads[channel][setup],
                **reliability(rows.labels[channel], rows.scores[channel][(setup, seed)], config.calibration_bins),
            }
            for channel in ("ads", "promotions")
        }
    return {"seed": seed, "test_days": list(test_days), "curves": curves}


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> dict:
    """Equal-count bins of ``p``: mean prediction, observed rate and rows per bin, plus the overall metrics."""
    # Not sklearn.calibration.calibration_curve(strategy="quantile"): on the same data (165,289 float32 predictions
    # at a 2% rate, 10 bins; and 50,535 at 5%) its curve matched this one to 6e-6 (2e-4 on the smaller set) and
    # took 10 ms against 17 ms, but it returns no rows per bin, which ablations.json records (and its test checks
    # add up to the rows); they would take a copy of its binning (percentile edges, searchsorted) beside it.
    order = np.argsort(p, kind="stable")
    parts = [part for part in np.array_split(order, bins) if part.size]
    return {
        "mean_prediction": [float(p[i].mean()) for i in parts],
        "observed_rate": [float(y[i].mean()) for i in parts],
        "rows": [int(i.size) for i in parts],
        "overall": binary_metrics(y, p),
    }


# ------------------------------------------------------------------------------------------ driver


def run_ablations(config: EvaluateConfig) -> dict:
    """Train every configuration x seed (reusing cached runs), score the test days, bootstrap; write
    ``<out>/ablations.json`` and return it."""
    started = time.perf_counter()
    identity = report_identity(config.examples, world_beside(config.examples))
    check_same_run(config.out, "ablations.json", identity)
    table = identity["examples_fingerprint"]
    days = resolve_days(config)
    records = []
    for setup in config.chosen:
        for seed in config.seeds:
            record = run_setup(config, setup, seed, table, days)
            log.info("%s seed %d: %s s%s", setup.name, seed, record["seconds"], ", reused" if record["reused"] else "")
            records.append(record)
    split = records[0]["split"]
    t0 = time.perf_counter()
    rows = score_test_rows(config, records, split["test"])
    scoring_seconds = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    names = [s.name for s in config.chosen]
    result_figures = figures(config, rows, names)
    ranking_result = ranking_figures(config, rows, names)
    bootstrap_seconds = round(time.perf_counter() - t0, 2)
    known = {s.name: s for s in config.chosen}
    result = {
        "config": {k: v for k, v in dataclasses.asdict(config).items()},
        "table_fingerprint": table,
        "report_identity": identity,
        "split": split,
        "setups": {
            name: {
                "label": known[name].label,
                "changes": known[name].changes,
                "paper": dict(zip(("promotions", "ads"), known[name].paper_figures, strict=True))
                if known[name].paper
                else None,
                "seconds": round(sum(r["seconds"] for r in records if r["setup"] == name), 2),
                "best_epochs": [r["best_epoch"] for r in records if r["setup"] == name],
            }
            for name in names
        },
        "figures": result_figures,
        "ranking": ranking_result,
        "references": {name: label for name, label in REFERENCES},
        "directions": directions(result_figures, names, config.confidence),
        "runs": [{k: v for k, v in r.items() if k != "path"} for r in records],
        "calibration": calibration_curves(config, rows, split["test"]),
        "timing": {
            "wall_seconds": round(time.perf_counter() - started, 2),
            "training_seconds": round(sum(r["seconds"] for r in records), 2),
            "scoring_seconds": scoring_seconds,
            "bootstrap_seconds": bootstrap_seconds,
            "runs_trained": sum(not r["reused"] for r in records),
            "runs_reused": sum(r["reused"] for r in records),
        },
    }
    artifacts.write_bytes(artifacts.join(config.out, "ablations.json"), artifacts.dumps(result))
    return result


def parse_args(argv: Sequence[str]) -> tuple[EvaluateConfig, argparse.Namespace]:
    """The run's configuration, and the CLI-only switches (``report``, ``world``) that are not part of it."""
    d = EvaluateConfig(examples="x")
    p = CommandParser("podtarget.evaluation.ablations", __doc__)
    p.add_argument("--examples", default="./data/examples", help="Example table root.")
    p.add_argument("--models", default=d.models, help="Folder of the evaluation's model runs (cached).")
    p.add_argument("--out", default=d.out, help="Report folder: ablations.json, report.md, plots.")
    p.add_argument("--seeds", type=parse_ints, default=d.seeds, help="Comma list of training seeds.")
    p.add_argument("--setups", default="", help=f"Comma list (default: all): {', '.join(all_setups())}.")
    p.add_argument("--spec", default=d.spec)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--split", default=d.split, help="trainer (default split or the days below) or mature.")
    p.add_argument("--valid_count", type=int, default=d.valid_count, help="--split=mature: validation days.")
    p.add_argument("--test_count", type=int, default=d.test_count, help="--split=mature: test days.")
    p.add_argument("--train_days")
    p.add_argument("--valid_days")
    p.add_argument("--test_days")
    p.add_argument("--max_batches_per_epoch", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every core).")
    p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True, help="Reuse cached runs.")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap, help="Bootstrap resamples.")
    p.add_argument("--confidence", type=float, default=d.confidence)
    p.add_argument("--bootstrap_seed", type=int, default=d.bootstrap_seed)
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True, help="Rewrite the report.")
    p.add_argument(
        "--world",
        default=None,
        help="World folder: its ground truth scores the test rows as references, and the report records its "
        "configuration (default: beside the examples).",
    )
    a = p.parse_args(argv)
    setups = tuple(s.strip() for s in a.setups.split(",") if s.strip()) or None
    fields = {f.name for f in dataclasses.fields(EvaluateConfig)}
    a.world = a.world or world_beside(a.examples)
    values = {k: v for k, v in vars(a).items() if k in fields}
    return EvaluateConfig(**{**values, "setups": setups}), a


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_ablations(config)
    print(format_summary(result))
    if cli.report:
        from podtarget.evaluation.report import write_report

        print(f"report written to {write_report(config.out, world_dir=config.world)}")
    return 0


def format_summary(result: dict) -> str:
    """The ablation table as text: the % change of the seed-mean AP against the baseline, with its interval."""
    lines = [f"{'setup':<22} {'promotions AP %':>26} {'ads AP %':>26} {'paper':>16}"]
    for name, s in result["setups"].items():
        cells = []
        for channel in ("promotions", "ads"):
            change = result["figures"][channel]["segments"]["all"].get("change_pct", {}).get(f"{name}|baseline")
            cells.append(_ci_text((change or {}).get("point"), (change or {}).get("ci")))
        paper = f"{s['paper']['promotions']:+.1f} / {s['paper']['ads']:+.1f}" if s["paper"] else ""
        lines.append(f"{name:<22} {cells[0]:>26} {cells[1]:>26} {paper:>16}")
    for d in result["directions"]:
        lines.append(f"{d['name']:<32} paper {d['paper']:+6.1f}%  ours {_ci_text(d['ours'], d['ci'])}  {d['verdict']}")
    t = result["timing"]
    lines.append(f"wall {t['wall_seconds']} s; trained {t['runs_trained']} runs, reused {t['runs_reused']}")
    return "\n".join(lines)


def _ci_text(point: float | None, ci: Sequence[float] | None) -> str:
    if point is None:
        return "-"
    return f"{point:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else f"{point:+.1f}"


if __name__ == "__main__":
    from podtarget.common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

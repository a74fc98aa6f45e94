"""The ablations' figures from the scored test rows: AP per setup and seed per figure and segment, the paired-
bootstrap % change against the baseline and of Table 1's comparisons, each setup's share of the achievable gain,
the within-user and within-campaign metrics (:mod:`podtarget.evaluation.ranking`), and calibration curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..model.metrics import binary_metrics
from . import intervals, ranking
from .ablations_config import EvaluateConfig
from .scored_rows import FIGURES, TestRows
from .table1 import table1_directions
from .truth import REFERENCES


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

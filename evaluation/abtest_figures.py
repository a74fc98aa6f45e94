"""The A/B test's figures from its counters: per arm totals and rates, each arm against control, where each arm
sits between random and oracle, and (audience design) the arms compared at matched delivery; all with percentile
bootstrap intervals over model seeds and campaign-days.

Counters per (seed, campaign-day, arm[, audience share]): impressions, reach, spend, clicks, streams and expected
streams (the sum of the true stream probabilities of the sold impressions). Rates: i2s, CTR, eCPS (spend /
streams) and expected i2s (free of the draws' noise).

- **Position** of an arm between random and oracle: ``(x - x_random) / (x_oracle - x_random)`` of the expected
  i2s; 0 is random targeting, 1 the world's true stream probability.
- **Matched delivery** (audience design, where an arm that buys smaller audiences sells fewer impressions at a
  higher i2s): each arm's counters over the audience shares form a curve against impressions (and against
  spend); the control's delivery at ``matched_share`` is the point every arm is read at, by linear
  interpolation between its shares (None where the arm's shares do not reach it). At equal impressions the
  arms are compared on i2s; at equal spend, as a budget split would hold it, on streams and eCPS.

:func:`summarize` gathers the test's per campaign-day units into these counters and figures every design and
segment; :func:`inventory_summary` says how scarce the slots were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import intervals
from .abtest_config import DESIGNS, ABTestConfig

COUNTERS = ("impressions", "reach", "spend_micros", "clicks", "streams", "expected_streams")
METRICS = ("i2s", "ecps", "ctr", "streams", "reach", "impressions", "expected_i2s")
LESS_STREAMED_TIERS = (3, 4, 5)
_C = {name: i for i, name in enumerate(COUNTERS)}


def rates(totals: dict[str, float]) -> dict[str, float | None]:
    """i2s, CTR, eCPS (spend / streams, in currency units) and expected i2s from summed counters."""
    imps, streams = totals["impressions"], totals["streams"]
    return {
        "i2s": streams / imps if imps else None,
        "ctr": totals["clicks"] / imps if imps else None,
        "ecps": totals["spend_micros"] / 1e6 / streams if streams else None,
        "streams": float(streams),
        "reach": float(totals["reach"]),
        "impressions": float(imps),
        "expected_i2s": totals["expected_streams"] / imps if imps else None,
    }


def metric_arrays(summed: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, its value from counters summed to ``[..., counter]`` (NaN where undefined)."""
    c = {k: summed[..., i] for i, k in enumerate(COUNTERS)}
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "i2s": c["streams"] / c["impressions"],
            "ctr": c["clicks"] / c["impressions"],
            "ecps": c["spend_micros"] / 1e6 / c["streams"],
            "streams": c["streams"],
            "reach": c["reach"],
            "impressions": c["impressions"],
            "expected_i2s": c["expected_streams"] / c["impressions"],
        }


def lift_arrays(summed: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, each arm / control (arm 0) - 1 in %, from counters summed to ``[..., arm, counter]``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {m: 100.0 * (v / v[..., :1] - 1.0) for m, v in metric_arrays(summed).items()}


def positions(summed: np.ndarray, arms: Sequence[str]) -> np.ndarray:
    """``[..., arm]``: where each arm's expected i2s sits between random's (0) and oracle's (1)."""
    e = metric_arrays(summed)["expected_i2s"]
    low, high = e[..., arms.index("random")], e[..., arms.index("oracle")]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (e - low[..., None]) / (high - low)[..., None]


def _interval(draws: np.ndarray, point: float | None, confidence: float) -> list[float] | None:
    return None if point is None else intervals.percentile_interval(draws, confidence)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def auction_segment(
    counts: np.ndarray, arms: Sequence[str], bootstrap: int, confidence: float, rng: np.random.Generator
) -> dict:
    """``counts[seed, unit, arm, counter]``: per arm its totals and rates, its lift against control and its
    position between random and oracle, with intervals."""
    totals = counts.sum(axis=(0, 1))
    out: dict[str, Any] = {"units": int(counts.shape[1]), "seeds": int(counts.shape[0]), "arms": {}}
    for i, arm in enumerate(arms):
        counters = dict(zip(COUNTERS, map(float, totals[i]), strict=True))
        out["arms"][arm] = {**counters, **rates(counters)}
    if counts.shape[1] == 0:
        return out
    has_refs = "random" in arms and "oracle" in arms

    def figures(summed: np.ndarray) -> np.ndarray:
        lifts = lift_arrays(summed)
        stacked = [lifts[m] for m in METRICS]
        if has_refs:
            stacked.append(positions(summed, arms))
        return np.moveaxis(np.stack(stacked), 1, -1)  # [figure, arm, resamples]

    draws = intervals.bootstrap_lifts(counts, figures, bootstrap, rng)
    point = figures(totals[None])[..., 0]
    out["lift_pct"], out["ci_pct"] = {}, {}
    for a, arm in enumerate(arms[1:], start=1):
        out["lift_pct"][arm] = {m: _finite(point[i, a]) for i, m in enumerate(METRICS)}
        out["ci_pct"][arm] = {
            m: _interval(draws[i, a], out["lift_pct"][arm][m], confidence) for i, m in enumerate(METRICS)
        }
    if has_refs:
        out["position"] = {
            arm: {"point": _finite(point[-1, a]), "ci": _interval(draws[-1, a], _finite(point[-1, a]), confidence)}
            for a, arm in enumerate(arms)
        }
    return out


def at_delivery(
    summed: np.ndarray, shares: Sequence[float], matched_share: float, by: str
) -> tuple[np.ndarray, np.ndarray]:
    """``summed[..., arm, share, counter]``: each arm's counters interpolated linearly at the control's ``by``
    (impressions or spend_micros) at ``matched_share``: ``[..., arm, counter]`` (NaN where an arm's shares do not
    reach it), and that target ``[...]``."""
    x = summed[..., _C[by]]  # [..., arm, share]
    target = x[..., 0, list(shares).index(matched_share)]
    order = np.argsort(x, axis=-1, kind="stable")
    xs = np.take_along_axis(x, order, axis=-1)
    ys = np.take_along_axis(summed, order[..., None], axis=-2)  # [..., arm, share, counter]
    t = np.broadcast_to(target[..., None], x.shape[:-1])  # [..., arm]
    low = np.clip((xs <= t[..., None]).sum(axis=-1) - 1, 0, xs.shape[-1] - 2)
    x0 = np.take_along_axis(xs, low[..., None], axis=-1)[..., 0]
    x1 = np.take_along_axis(xs, (low + 1)[..., None], axis=-1)[..., 0]
    y0 = np.take_along_axis(ys, low[..., None, None], axis=-2)[..., 0, :]
    y1 = np.take_along_axis(ys, (low + 1)[..., None, None], axis=-2)[..., 0, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(x1 > x0, (t - x0) / (x1 - x0), 0.0)
    out = y0 + w[..., None] * (y1 - y0)
    reached = (xs[..., 0] <= t) & (t <= xs[..., -1])
    return np.where(reached[..., None], out, np.nan), target


def audience_segment(
    counts: np.ndarray,
    arms: Sequence[str],
    shares: Sequence[float],
    matched_share: float,
    bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict:
    """``counts[seed, unit, arm, share, counter]``: per share, each arm's totals and rates; and every arm read at
    the control's impressions and at its spend at ``matched_share``: its rates there, its lifts against control
    and (at equal impressions) its position between random and oracle, with intervals."""
    n_seeds, n_units, n_arms, n_shares, _ = counts.shape
    totals = counts.sum(axis=(0, 1))
    out: dict[str, Any] = {"units": int(n_units), "seeds": int(n_seeds), "by_share": {}, "matched": {}}
    for j, share in enumerate(shares):
        out["by_share"][str(share)] = {}
        for i, arm in enumerate(arms):
            counters = dict(zip(COUNTERS, map(float, totals[i, j]), strict=True))
            out["by_share"][str(share)][arm] = {**counters, **rates(counters)}
    if n_units == 0:
        return out
    flat = counts.reshape(n_seeds, n_units, n_arms * n_shares, -1)
    has_refs = "random" in arms and "oracle" in arms

    def figures(by: str) -> Callable[[np.ndarray], np.ndarray]:
        def compute(summed: np.ndarray) -> np.ndarray:
            matched, _ = at_delivery(
                summed.reshape(*summed.shape[:-2], n_arms, n_shares, -1), shares, matched_share, by
            )
            lifts = lift_arrays(matched)
            stacked = [lifts[m] for m in METRICS] + [metric_arrays(matched)[m] for m in METRICS]
            if has_refs:
                stacked.append(positions(matched, arms))
            return np.moveaxis(np.stack(stacked), 1, -1)  # [figure, arm, resamples]

        return compute

    for by in ("impressions", "spend_micros"):
        compute = figures(by)
        draws = intervals.bootstrap_lifts(flat, compute, bootstrap, rng)
        point = compute(totals.reshape(1, n_arms * n_shares, -1))[..., 0]
        matched, target = at_delivery(totals[None], shares, matched_share, by)
        k = len(METRICS)
        block: dict[str, Any] = {"control_at": float(target[0]), "arms": {}}
        for a, arm in enumerate(arms):
            counters = dict(zip(COUNTERS, map(float, matched[0, a]), strict=True))
            entry: dict[str, Any] = {"counters": counters if np.isfinite(matched[0, a]).all() else None}
            entry["rates"] = {m: _finite(point[k + i, a]) for i, m in enumerate(METRICS)}
            if a:
                entry["lift_pct"] = {m: _finite(point[i, a]) for i, m in enumerate(METRICS)}
                entry["ci_pct"] = {
                    m: _interval(draws[i, a], entry["lift_pct"][m], confidence) for i, m in enumerate(METRICS)
                }
            if has_refs:
                pos = _finite(point[-1, a])
                entry["position"] = {"point": pos, "ci": _interval(draws[-1, a], pos, confidence)}
            block["arms"][arm] = entry
        out["matched"][by] = block
    return out


def segment_masks(tiers: np.ndarray) -> dict[str, np.ndarray]:
    """All campaign-days, less-streamed (tiers 3-5), more-streamed (0-2) and each tier."""
    masks = {
        "all": np.ones(len(tiers), bool),
        "less_streamed": np.isin(tiers, LESS_STREAMED_TIERS),
        "more_streamed": np.isin(tiers, (0, 1, 2)),
    }
    for tier in sorted(set(tiers.tolist())):
        masks[f"tier_{tier}"] = tiers == tier
    return masks


def summarize(units: list[dict], config: ABTestConfig) -> dict:
    """Per design and segment (all, less-streamed = tiers 3-5, more-streamed = tiers 0-2, each tier): the arms'
    figures with bootstrap intervals over model seeds and campaign-days (the segment figures above)."""
    seeds = sorted({u["seed"] for u in units})
    keys = sorted({(u["day"], u["campaign_id"]) for u in units})
    position = {k: i for i, k in enumerate(keys)}
    tiers = np.full(len(keys), -1)
    shares = [str(q) for q in config.audience_shares]
    shapes = {"auction": (len(config.arms),), "audience": (len(config.arms), len(shares))}
    counts = {d: np.zeros((len(seeds), len(keys), *shapes[d], len(COUNTERS))) for d in config.designs}
    for u in units:
        j = position[(u["day"], u["campaign_id"])]
        tiers[j] = -1 if u["tier"] is None else u["tier"]
        s = seeds.index(u["seed"])
        if "auction" in counts:
            counts["auction"][s, j] = [[u["auction"][arm][k] for k in COUNTERS] for arm in config.arms]
        if "audience" in counts:
            counts["audience"][s, j] = [
                [[u["audience"][arm][q][k] for k in COUNTERS] for q in shares] for arm in config.arms
            ]
    out: dict[str, Any] = {}
    for design, c in counts.items():
        rng = np.random.default_rng([config.draw_seed, 0xB007, DESIGNS.index(design)])
        segments = {}
        for name, mask in segment_masks(tiers).items():
            if design == "auction":
                segments[name] = auction_segment(c[:, mask], config.arms, config.bootstrap, config.confidence, rng)
            else:
                segments[name] = audience_segment(
                    c[:, mask],
                    config.arms,
                    config.audience_shares,
                    config.matched_share,
                    config.bootstrap,
                    config.confidence,
                    rng,
                )
        out[design] = {"segments": segments, "inventory": inventory_summary(units, design, config)}
    return out


def inventory_summary(units: list[dict], design: str, config: ABTestConfig) -> dict:
    """How scarce the inventory was in a design (the audience design at its matched share): per arm, impressions
    sold and the share of the slots, and how much of the budgets and audiences it reached."""
    out: dict[str, Any] = {"arms": {}}
    slots = sum({(u["seed"], u["day"]): u.get("slots", 0) for u in units}.values())
    for arm in config.arms:
        shares, spent = [], []
        sold = 0
        for u in units:
            a = u["auction"][arm] if design == "auction" else u["audience"][arm][str(config.matched_share)]
            sold += a["impressions"]
            if a["eligible_users"]:
                shares.append(a["reach"] / a["eligible_users"])
            if a["budget_micros"]:
                spent.append(a["spend_micros"] / a["budget_micros"])
        shares_a, spent_a = np.array(shares), np.array(spent)
        out["arms"][arm] = {
            "impressions": int(sold),
            "sold_share": sold / slots if slots else None,
            "reach_share_median": float(np.median(shares_a)) if shares_a.size else None,
            "budget_spent_median": float(np.median(spent_a)) if spent_a.size else None,
            "budget_exhausted_share": float((spent_a >= 0.99).mean()) if spent_a.size else None,
        }
    out["slots"] = int(slots)
    return out

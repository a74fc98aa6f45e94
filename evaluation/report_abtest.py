"""The A/B test's part of the report (``report.md`` section 2 and ``abtest_by_tier.png``), from ``abtest.json``."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .report_style import label_axes, paper_change, save_figure

AB_METRICS = (("i2s", "i2s"), ("ecps", "eCPS"), ("ctr", "CTR"), ("streams", "streams"), ("reach", "reach"))
SEGMENTS = (("all", "All podcasts"), ("less_streamed", "Less-streamed (tiers 3-5)"))


def _pct(point: float | None, ci: list[float] | None, digits: int = 1) -> str:
    if point is None:
        return "-"
    text = f"{point:+.{digits}f}%"
    return text + (f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if ci else "")


def _lift(segment: dict, arm: str, metric: str) -> str:
    return _pct(
        (segment.get("lift_pct") or {}).get(arm, {}).get(metric), (segment.get("ci_pct") or {}).get(arm, {}).get(metric)
    )


def _position(entry: dict | None) -> str:
    if not entry or entry.get("point") is None:
        return "-"
    ci = entry.get("ci")
    return f"{entry['point']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def plot_abtest_by_tier(abtest: dict, path: str) -> None:
    """Treatment against control by tier: expected i2s and i2s in the auction design, expected i2s at matched
    impressions in the audience design; the paper's i2s lifts beside them."""
    designs = abtest["designs"]
    fig, axes = plt.subplots(1, len(designs), figsize=(5.5 * len(designs), 4), squeeze=False)
    for ax, (design, d) in zip(axes[0], designs.items(), strict=True):
        segments = d["segments"]
        names = [n for n in segments if n.startswith("tier_") and n != "tier_-1"] + ["less_streamed", "all"]
        names = [n for n in names if n in segments]
        x = np.arange(len(names))
        for offset, metric in ((-0.1, "expected_i2s"), (0.1, "i2s")):
            point, low, high = [], [], []
            for n in names:
                if design == "auction":
                    value = (segments[n].get("lift_pct") or {}).get("treatment", {}).get(metric)
                    ci = (segments[n].get("ci_pct") or {}).get("treatment", {}).get(metric)
                else:
                    entry = segments[n].get("matched", {}).get("impressions", {}).get("arms", {}).get("treatment", {})
                    value, ci = (entry.get("lift_pct") or {}).get(metric), (entry.get("ci_pct") or {}).get(metric)
                point.append(np.nan if value is None else value)
                low.append(np.nan if not ci else value - ci[0])
                high.append(np.nan if not ci else ci[1] - value)
            ax.errorbar(x + offset, point, yerr=[low, high], fmt="o", capsize=3, label=f"{metric} (95% CI)")
        paper = [abtest["paper"]["i2s_by_tier"].get(n.removeprefix("tier_"), np.nan) for n in names]
        for i, n in enumerate(names):
            if n in ("all", "less_streamed"):
                paper[i] = abtest["paper"][n]["i2s"]
        ax.scatter(x, paper, marker="x", color="red", label="paper, i2s")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [n.removeprefix("tier_").replace("less_streamed", "3-5") for n in names])
        title = "auction: every slot sold" if design == "auction" else "audience: at the control's impressions"
        label_axes(ax, "podcast popularity tier", "treatment vs control, %", title)
    save_figure(fig, path)


def abtest_sections(ab: dict) -> list[str]:
    cfg, t = ab["config"], ab["timing"]
    split = next(iter(ab["model_splits"].values()))
    level = int(100 * cfg["confidence"])
    ctx = ab["serving_context"]
    lines = [
        "## 2. Simulated online A/B test (`make abtest`)",
        "",
        f"Held-out days {', '.join(cfg['days'])} (the models trained on {split['train'][0]}..{split['train'][-1]} "
        f"and validated on {', '.join(split['valid'])}). Model seeds {cfg['model_seeds']}: for each, control is the "
        f"baseline of that seed with its {cfg['heads']['control']} head (the promotions-only model reused for ads), "
        f"treatment the joint model of that seed with its {cfg['heads']['treatment']} head. Reference arms, "
        "possible only in simulation: "
        + "; ".join(f"`{a}`, {d}" for a, d in ab["arms"].items() if a not in cfg["heads"])
        + ". Audiences from the scoring pipeline (same eligibility and serving context as `make score`), every "
        "eligible user scored; the reference arms score the same pairs.",
        "",
        "**Every arm serves the same slots.** Each user's ad slots of the day are drawn from the world's session "
        f"model (inventory seed {cfg['inventory_seed']}, the same for every arm and model seed), and every arm "
        "serves all of them as its own counterfactual day, with each campaign's whole daily budget: there is no "
        "user split, so no arm gets more slots than another. Each slot's random numbers are the same in every arm "
        f"(draw seed {cfg['draw_seed']}): arms differ only by whom they served. Outcomes from "
        f"`World.outcome_probabilities`: {ctx['hour']}, {ctx['device']}, {ctx['creative']}, {ctx['slot_surface']}; "
        f"prior exposures = {ctx['prior_exposures']}. Second price, reserve {cfg['reserve_cpm_micros'] / 1e6:g} "
        "per thousand, frequency cap and budgets in both designs.",
        "",
        "**What each design can see.** *Auction* (every slot sold): every campaign bids its CPM x the arm's score "
        "over its mean score on every eligible user, and the slot goes to the highest bid. A factor shared by all "
        "of a user's campaigns (how responsive the user is to ads) cancels in that comparison, and the division "
        "cancels one shared by all of a campaign's users; only how an arm ranks a user's campaigns matters, so "
        "the design cannot see user-level targeting. *Audience*: each campaign buys the top share of its "
        "eligible users by the arm's score and bids value within it; slots of users in no audience go to outside "
        "demand. It rewards user-level targeting, but an arm can then raise i2s by buying fewer impressions, so "
        f"arms are compared at matched delivery: at the control's impressions at share {cfg['matched_share']:g} "
        "(i2s), and at its spend (streams and eCPS, as a budget split would hold spend equal), each arm "
        f"interpolated between its shares {', '.join(f'{q:g}' for q in cfg['audience_shares'])}.",
        "",
        f"*Position* = (expected i2s - random's) / (oracle's - random's): 0 is random targeting, 1 the world's true "
        f"stream probability. *Expected i2s* is the mean true stream probability of the sold impressions, free of "
        f"the draws' noise. Intervals: {level}% percentile bootstrap ({cfg['bootstrap']} resamples) over the model "
        "seeds and the campaign-days.",
        "",
    ]
    designs = ab["designs"]
    if "auction" in designs:
        lines += auction_lines(designs["auction"], ab["paper"], level)
    if "audience" in designs:
        lines += audience_lines(designs["audience"], cfg, level)
    lines += [
        "### Cost",
        "",
        f"Wall time {t['wall_seconds']:.0f} s: scoring (two pipeline runs per seed and day) "
        f"{t['scoring_seconds']:.0f} s, auctions and draws of every arm and design {t['serving_seconds']:.0f} s, "
        f"bootstrap {t['bootstrap_seconds']:.0f} s" + _models_note(t.get("models") or {}) + ".",
        "",
    ]
    return lines


def _arm_table(segment: dict) -> list[str]:
    lines = [
        "| arm | impressions | expected i2s | position | i2s | eCPS | expected i2s vs control | i2s vs control | "
        "eCPS vs control |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in segment["arms"].items():
        ecps = "-" if a["ecps"] is None else f"{a['ecps']:.2f}"
        lines.append(
            f"| `{arm}` | {a['impressions']:,.0f} | {_rate(a['expected_i2s'])} | "
            f"{_position((segment.get('position') or {}).get(arm))} | {_rate(a['i2s'])} | {ecps} | "
            + " | ".join("-" if arm == "control" else _lift(segment, arm, m) for m in ("expected_i2s", "i2s", "ecps"))
            + " |"
        )
    return lines


def auction_lines(design: dict, paper: dict, level: int) -> list[str]:
    seg, inv = design["segments"], design["inventory"]
    control = inv["arms"]["control"]
    lines = [
        "### 2a. Auction design (every slot sold)",
        "",
        f"Inventory: {inv['slots']:,} ad slots over the days and seeds; control sold {control['impressions']:,} "
        f"({100 * (control['sold_share'] or 0):.0f}%); a campaign-day reached a median "
        f"{100 * (control['reach_share_median'] or 0):.2f}% of its eligible users and spent a median "
        f"{100 * (control['budget_spent_median'] or 0):.0f}% of its daily budget "
        f"({100 * (control['budget_exhausted_share'] or 0):.0f}% spent it all).",
        "",
        "All campaign-days:",
        "",
        *_arm_table(seg["all"]),
        "",
        "Treatment against control beside the paper's Table 2:",
        "",
        "| segment | campaign-days | " + " | ".join(label for _, label in AB_METRICS) + " | expected i2s |",
        "|---|---|" + "---|" * (len(AB_METRICS) + 1),
    ]
    for name, label in SEGMENTS:
        if name not in seg:
            continue
        s = seg[name]
        cells = [_lift(s, "treatment", m) for m, _ in AB_METRICS] + [_lift(s, "treatment", "expected_i2s")]
        lines.append(f"| {label}, ours | {s['units']} | " + " | ".join(cells) + " |")
        p = paper[name]
        lines.append(
            f"| {label}, paper | | {p['i2s']:+.0f}% | {p['ecps']:+.0f}% | {p['ctr']:+.0f}% | {p['streams']:+.0f}% | | |"
        )
    lines += ["", *excludes_zero_lines(seg, level), ""]
    lines += [
        "By tier (treatment against control; positions of control and treatment):",
        "",
        "| tier | campaign-days | expected i2s | i2s | paper i2s | eCPS | position control | position treatment |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in seg.items():
        if not name.startswith("tier_"):
            continue
        tier = name.removeprefix("tier_")
        pos = s.get("position") or {}
        lines.append(
            f"| {tier} | {s['units']} | {_lift(s, 'treatment', 'expected_i2s')} | {_lift(s, 'treatment', 'i2s')} | "
            f"{paper_change(paper['i2s_by_tier'].get(tier))} | {_lift(s, 'treatment', 'ecps')} | "
            f"{_position(pos.get('control'))} | {_position(pos.get('treatment'))} |"
        )
    lines += [
        "",
        "![A/B by tier](abtest_by_tier.png)",
        "",
        "Tier -1: campaigns whose show had no popularity tier on the day. The paper gives tier 1 no figure of its own.",
        "",
    ]
    return lines


def excludes_zero_lines(segments: dict, level: int) -> list[str]:
    """Which of treatment's headline lifts have intervals that exclude zero, and which do not."""
    out = []
    for name, label in (("all", "all podcasts"), ("less_streamed", "less-streamed podcasts")):
        if name not in segments:
            continue
        cis = (segments[name].get("ci_pct") or {}).get("treatment", {})
        clear = [text for metric, text in AB_METRICS if cis.get(metric) and (cis[metric][0] > 0 or cis[metric][1] < 0)]
        unclear = [text for _, text in AB_METRICS if text not in clear]
        sentence = f"For {label}, the {level}% intervals of {', '.join(clear) or 'no lift'} exclude zero"
        if unclear:
            sentence += f"; those of {', '.join(unclear)} contain it (an effect this test cannot tell from noise)"
        out.append(sentence + ".")
    return out


def _matched_table(block: dict, by: str) -> list[str]:
    metrics = ("expected_i2s", "i2s") if by == "impressions" else ("streams", "ecps")
    head = ("expected i2s", "i2s") if by == "impressions" else ("streams", "eCPS")
    lines = [
        f"| arm | {head[0]} | {head[1]} | {head[0]} vs control | {head[1]} vs control | position |",
        "|---|---|---|---|---|---|",
    ]
    for arm, entry in block["arms"].items():
        r = entry["rates"]
        values = [
            _rate(r.get(m)) if m in ("expected_i2s", "i2s") else ("-" if r.get(m) is None else f"{r[m]:,.2f}")
            for m in metrics
        ]
        lifts = [
            "-" if arm == "control" else _pct((entry.get("lift_pct") or {}).get(m), (entry.get("ci_pct") or {}).get(m))
            for m in metrics
        ]
        lines.append(f"| `{arm}` | {' | '.join(values)} | {' | '.join(lifts)} | {_position(entry.get('position'))} |")
    return lines


def audience_lines(design: dict, cfg: dict, level: int) -> list[str]:
    seg = design["segments"]
    lines = ["### 2b. Audience design (each campaign buys a top-scored audience)", ""]
    by_share = seg["all"]["by_share"]
    arms = list(next(iter(by_share.values())))
    lines += [
        "Equal share (each arm's impressions and expected i2s when every campaign buys that share of its eligible "
        "users): an arm with a better ranking buys fewer slots at a higher i2s, so this view alone does not say "
        "which arm is better.",
        "",
        "| share | " + " | ".join(f"`{a}` impressions / expected i2s" for a in arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for share, by_arm in by_share.items():
        lines.append(
            f"| {float(share):g} | "
            + " | ".join(f"{by_arm[a]['impressions']:,.0f} / {_rate(by_arm[a]['expected_i2s'])}" for a in arms)
            + " |"
        )
    for name, label in SEGMENTS:
        if name not in seg or not seg[name].get("matched"):
            continue
        matched = seg[name]["matched"]
        imps, spend = matched["impressions"], matched["spend_micros"]
        lines += [
            "",
            f"{label} ({seg[name]['units']} campaign-days), at the control's impressions at share "
            f"{cfg['matched_share']:g} ({imps['control_at']:,.0f}):",
            "",
            *_matched_table(imps, "impressions"),
            "",
            f"{label}, at the control's spend at share {cfg['matched_share']:g} ({spend['control_at'] / 1e6:,.0f}):",
            "",
            *_matched_table(spend, "spend_micros"),
        ]
    lines += [
        "",
        "By tier, treatment against control at the control's impressions (expected i2s, i2s):",
        "",
        "| tier | campaign-days | expected i2s | i2s | position control | position treatment |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in seg.items():
        if not name.startswith("tier_") or not s.get("matched"):
            continue
        arms_at = s["matched"]["impressions"]["arms"]
        t: dict[str, Any] = arms_at.get("treatment", {})
        lifts = [
            _pct((t.get("lift_pct") or {}).get(m), (t.get("ci_pct") or {}).get(m)) for m in ("expected_i2s", "i2s")
        ]
        lines.append(
            f"| {name.removeprefix('tier_')} | {s['units']} | {' | '.join(lifts)} | "
            f"{_position(arms_at.get('control', {}).get('position'))} | {_position(t.get('position'))} |"
        )
    lines += [
        "",
        f"A '-' position or lift: the arm's shares do not reach the control's delivery ({level}% intervals).",
        "",
    ]
    return lines


def _models_note(models: dict) -> str:
    if not models:
        return ""
    done = [f"{k} {'reused' if v['reused'] else 'trained in {:.0f} s'.format(v['seconds'])}" for k, v in models.items()]
    return "; models: " + ", ".join(done)

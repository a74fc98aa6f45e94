"""The evaluation report (``make report``): markdown, PNG plots and the JSON behind every figure.

Reads what :mod:`evaluation.ablations` and :mod:`evaluation.abtest` wrote into a report folder (either may be
missing: its sections are then left out) and writes beside them::

    <out>/report.md              the report: our figures beside the paper's, timings, the simulator configuration
    <out>/ap_by_tier.png         AP by podcast popularity tier, baseline against the joint model (mean ± std)
    <out>/abtest_by_tier.png     A/B lifts of i2s and eCPS by tier, with bootstrap intervals
    <out>/calibration.png        reliability curves of the baseline and the joint model on the test days
    <out>/world_config.json      the simulated world's configuration, copied as it was
    <out>/ablations.json, abtest.json   the figures (written by the two drivers)

Nothing is recomputed here: rebuilding the report never retrains or rescores::

    python -m evaluation.report --out=reports/eval --world=./data/world
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model import artifacts  # noqa: E402

TIER_NOTE = (
    "Popularity tiers are this project's (`transforms/features.py`): shows ranked by 30-day listening hours, tier 0 "
    "the top 1% of all shows, then 2%, 4%, 8%, 15% and 20% (tiers 1-5); tier 6 every other show with any listening, "
    "tier 7 shows with none. The paper's tiers are also by 30-day listening hours, and it calls tiers 3-5 the "
    "less-streamed creators; its '< 5,000 streams' threshold has no counterpart at this scale, so **less-streamed "
    "= tiers 3-5** here. Tiers 6-7 (the long tail and cold shows, which the paper does not discuss) are reported "
    "per tier only."
)


def _load(out: str, name: str) -> dict | None:
    path = artifacts.join(out, name)
    return json.loads(artifacts.read_bytes(path)) if artifacts.exists(path) else None


def _pm(s: dict | None, digits: int = 1, pct: bool = True) -> str:
    if not s or s.get("mean") is None:
        return "-"
    sign = "+" if pct else ""
    text = f"{s['mean']:{sign}.{digits}f} ± {s['std']:.{digits}f}"
    if s.get("n", 0) > 1:
        text += f" ({s['min']:{sign}.{digits}f}..{s['max']:{sign}.{digits}f})"
    return text


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _ci(segment: dict, metric: str) -> str:
    point, ci = segment["lift_pct"].get(metric), segment["ci_pct"].get(metric)
    if point is None:
        return "-"
    return f"{point:+.1f}% [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else f"{point:+.1f}%"


# ------------------------------------------------------------------------------------------ plots


def _label(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ap_by_tier(ablations: dict, path: str) -> None:
    setups = ablations["setups"]
    shown = [s for s in ("baseline", "joint") if s in setups]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, channel, title in zip(
        axes, ("ads", "promotions"), ("Ads AP (AdStream, ad rows)", "Promotions AP"), strict=True
    ):
        tiers = sorted({t for s in shown for t in setups[s][channel]["ap_by_tier"]}, key=int)
        x = np.arange(len(tiers))
        width = 0.8 / max(len(shown), 1)
        for i, name in enumerate(shown):
            by = setups[name][channel]["ap_by_tier"]
            means = [by.get(t, {}).get("mean") or 0.0 for t in tiers]
            stds = [by.get(t, {}).get("std") or 0.0 for t in tiers]
            ax.bar(x + i * width, means, width, yerr=stds, capsize=3, label=setups[name]["label"])
        ax.set_xticks(x + width * (len(shown) - 1) / 2, tiers)
        _label(ax, "podcast popularity tier (0 = most streamed)", "average precision (mean ± std over seeds)", title)
    _save(fig, path)


def plot_abtest_by_tier(abtest: dict, path: str) -> None:
    segments = abtest["segments"]
    names = [n for n in segments if n.startswith("tier_") and n != "tier_-1"] + ["less_streamed", "all"]
    names = [n for n in names if n in segments]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in zip(axes, ("i2s", "ecps"), ("i2s lift", "eCPS change"), strict=True):
        x = np.arange(len(names))
        point = np.array([segments[n]["lift_pct"].get(metric) or np.nan for n in names], float)
        ci = np.array([segments[n]["ci_pct"].get(metric, [np.nan, np.nan]) for n in names], float)
        ax.errorbar(x, point, yerr=[point - ci[:, 0], ci[:, 1] - point], fmt="o", capsize=4, label="ours (95% CI)")
        key = "i2s_by_tier" if metric == "i2s" else "cps_by_tier"
        paper = [abtest["paper"][key].get(n.removeprefix("tier_"), np.nan) for n in names]
        for i, n in enumerate(names):
            if n in ("all", "less_streamed"):
                paper[i] = abtest["paper"][n][metric]
        ax.scatter(x, paper, marker="x", color="red", label="paper")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [n.removeprefix("tier_").replace("less_streamed", "3-5").replace("all", "all") for n in names])
        _label(ax, "podcast popularity tier", "treatment vs control, %", title)
    _save(fig, path)


def plot_calibration(ablations: dict, path: str) -> None:
    curves = ablations["calibration"]["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, channel in zip(axes, ("ads", "promotions"), strict=True):
        top = 0.0
        for setup, by_channel in curves.items():
            c = by_channel[channel]
            ax.plot(c["mean_prediction"], c["observed_rate"], "o-", label=f"{setup} ({c['head']})")
            top = max(top, max(c["mean_prediction"]), max(c["observed_rate"]))
        ax.plot([0, top], [0, top], "--", color="grey", lw=0.8, label="perfect")
        _label(
            ax,
            "mean predicted stream probability (equal-count bins)",
            "observed stream rate",
            f"{channel} impressions, test days",
        )
    _save(fig, path)


# ------------------------------------------------------------------------------------------ markdown


def ablation_sections(ab: dict) -> list[str]:
    setups, t = ab["setups"], ab["timing"]
    cfg = ab["config"]
    seeds = cfg["seeds"]
    lines = [
        "## 1. Offline ablations (`make evaluate`)",
        "",
        f"Temporal split: train {ab['split']['train'][0]}..{ab['split']['train'][-1]}, validation "
        f"{', '.join(ab['split']['valid'])}, test {', '.join(ab['split']['test'])}. Seeds {seeds}; up to "
        f"{cfg['epochs']} epochs, early stopping on the validation AP of the stream tasks (patience "
        f"{cfg['patience']}), batches of {cfg['batch_size']}. Every figure is the mean ± sample standard deviation "
        "over seeds (min..max in brackets) of the AP change relative to the promotions-only baseline trained with "
        "the same seed. Promotions AP = PromotionStream on promotion impressions, Ads AP = AdStream on ad "
        "impressions; a setup without one of these heads serves that channel with its other stream head, applied "
        "as is (`--apply_head`), as the paper's baseline does for ads.",
        "",
        "| setup | Promotions AP, ours | paper | Ads AP, ours | paper | Promotions AP (abs.) | Ads AP (abs.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in setups.items():
        paper = s["paper"] or {}
        lines.append(
            f"| {s['label']} (`{name}`) | {_pm(s['promotions']['relative_pct'])}% | {_paper(paper.get('promotions'))} "
            f"| {_pm(s['ads']['relative_pct'])}% | {_paper(paper.get('ads'))} "
            f"| {_pm(s['promotions']['ap'], 4, False)} | {_pm(s['ads']['ap'], 4, False)} |"
        )
    base = setups.get("baseline", {})
    for channel in ("promotions", "ads"):
        if base:
            lines.append("")
            lines.append(
                f"Test rows, {channel}: {base[channel]['rows']:,}, positive rate "
                f"{100 * (base[channel]['positive_rate'] or 0):.2f}% (a constant predictor's AP)."
            )
    lines += ["", "### AP by podcast popularity tier", "", "![AP by tier](ap_by_tier.png)", ""]
    for channel in ("ads", "promotions"):
        tiers = sorted({t for s in setups.values() for t in s[channel]["ap_by_tier"]}, key=int)
        lines += [
            f"{channel.capitalize()} AP by tier (mean ± std over seeds; rows and positives of the test days):",
            "",
            "| setup | " + " | ".join(f"tier {t}" for t in tiers) + " |",
            "|---|" + "---|" * len(tiers),
        ]
        if base:
            lines.append(
                "| rows / positives | "
                + " | ".join(
                    f"{base[channel]['rows_by_tier'].get(t, 0):,} / {base[channel]['positives_by_tier'].get(t, 0)}"
                    for t in tiers
                )
                + " |"
            )
        for name in ("baseline", "joint", *[n for n in setups if n not in ("baseline", "joint")]):
            if name in setups:
                by = setups[name][channel]["ap_by_tier"]
                lines.append(f"| `{name}` | " + " | ".join(_pm(by.get(t), 3, False) for t in tiers) + " |")
        lines.append("")
        if "joint" in setups:
            rel = setups["joint"][channel]["relative_pct_by_tier"]
            lines.append(
                f"Joint against baseline, {channel} AP change by tier: "
                + ", ".join(f"tier {t} {_pm(rel[t])}%" for t in tiers if rel.get(t))
                + "."
            )
            lines.append("")
    cal = ab.get("calibration", {})
    if cal.get("curves"):
        lines += [
            "### Calibration",
            "",
            f"Reliability on the test days ({', '.join(cal['test_days'])}), seed {cal['seed']}: equal-count bins "
            "of each model's prediction against the observed stream rate.",
            "",
            "![calibration](calibration.png)",
            "",
            "| model | channel | head | mean prediction / observed rate | log loss | constant's log loss |",
            "|---|---|---|---|---|---|",
        ]
        for setup, by_channel in cal["curves"].items():
            for channel, c in by_channel.items():
                o = c["overall"]
                lines.append(
                    f"| `{setup}` | {channel} | {c['head']} | {o.get('calibration') or 0:.2f} | "
                    f"{o.get('log_loss') or 0:.4f} | {o.get('baseline_log_loss') or 0:.4f} |"
                )
        lines.append("")
    lines += [
        "### Cost",
        "",
        f"Wall time {t['wall_seconds']:.0f} s: {t['runs_trained']} runs trained, {t['runs_reused']} reused from the "
        f"cache; training and evaluation {t['training_seconds']:.0f} s (as measured when each run was trained), "
        f"calibration {t['calibration_seconds']:.0f} s. Per setup, all seeds (including the applied-head "
        "evaluations):",
        "",
        "| setup | seconds | best epochs |",
        "|---|---|---|",
    ]
    for name, s in setups.items():
        lines.append(f"| `{name}` | {s['seconds']:.0f} | {s['best_epochs']} |")
    lines.append("")
    return lines


def abtest_sections(ab: dict) -> list[str]:
    seg, cfg, t = ab["segments"], ab["config"], ab["timing"]
    ctx = ab["serving_context"]
    lines = [
        "## 2. Simulated online A/B test (`make abtest`)",
        "",
        f"Held-out days {', '.join(cfg['days'])} (the models trained on "
        f"{ab['model_splits']['treatment']['train'][0]}..{ab['model_splits']['treatment']['train'][-1]} and "
        f"validated on {', '.join(ab['model_splits']['treatment']['valid'])}). Control: `{cfg['control_model']}`, "
        f"head {cfg['heads']['control']} (the promotions-only model reused for ads); treatment: "
        f"`{cfg['treatment_model']}`, head {cfg['heads']['treatment']}. Audiences from the scoring pipeline "
        "(same eligibility and serving context as `make score`), every eligible user ranked. Users are split "
        f"between the arms by a stable hash (split seed {cfg['split_seed']}); each ad campaign active on a day "
        "gives each arm half its daily budget (budget / campaign days), spent at the campaign's CPM on the arm's "
        "own eligible users in rank order (one impression per user per pass, at most the simulator's frequency "
        "cap per user, campaign and day). Outcomes are drawn from `World.outcome_probabilities` (seed "
        f"{cfg['draw_seed']}) with the context fixed as scoring assumed it: hour {ctx['hour']}, "
        f"{ctx['device']}, {ctx['creative']}, {ctx['slot_surface']}; prior exposures = {ctx['prior_exposures']}. "
        f"Intervals: {int(100 * cfg['confidence'])}% percentile bootstrap over campaign-days ({cfg['bootstrap']} "
        "resamples, both arms of a campaign-day together). *Expected i2s* is the mean true stream probability of "
        "the served impressions: the same comparison without the noise of the draws.",
        "",
        "| segment | campaign-days | i2s | eCPS | CTR | streams | expected i2s |",
        "|---|---|---|---|---|---|---|",
    ]
    paper = ab["paper"]
    for name, label in (("all", "All podcasts"), ("less_streamed", "Less-streamed (tiers 3-5)")):
        if name not in seg:
            continue
        s = seg[name]
        lines.append(
            f"| {label}, ours | {s['units']} | {_ci(s, 'i2s')} | {_ci(s, 'ecps')} | {_ci(s, 'ctr')} | "
            f"{_ci(s, 'streams')} | {_ci(s, 'expected_i2s')} |"
        )
        p = paper[name]
        lines.append(
            f"| {label}, paper | | {p['i2s']:+.0f}% | {p['ecps']:+.0f}% | {p['ctr']:+.0f}% | {p['streams']:+.0f}% | |"
        )
    lines += [
        "",
        "Totals per arm:",
        "",
        "| segment | arm | impressions | spend | clicks | streams | i2s | CTR | eCPS |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name in ("all", "less_streamed"):
        for arm in ("control", "treatment"):
            a = seg[name]["arms"][arm]
            lines.append(
                f"| {name} | {arm} | {a['impressions']:,.0f} | {a['spend_micros'] / 1e6:,.0f} | {a['clicks']:,.0f} | "
                f"{a['streams']:,.0f} | {100 * (a['i2s'] or 0):.2f}% | {100 * (a['ctr'] or 0):.2f}% | "
                f"{a['ecps'] or 0:.2f} |"
            )
    lines += ["", reach_note(ab["units"])]
    lines += [
        "",
        "### By popularity tier",
        "",
        "![A/B by tier](abtest_by_tier.png)",
        "",
        "| tier | campaign-days | i2s | paper i2s | eCPS | paper CPS | streams | expected i2s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in seg.items():
        if not name.startswith("tier_"):
            continue
        tier = name.removeprefix("tier_")
        lines.append(
            f"| {tier} | {s['units']} | {_ci(s, 'i2s')} | {_paper(paper['i2s_by_tier'].get(tier))} | "
            f"{_ci(s, 'ecps')} | {_paper(paper['cps_by_tier'].get(tier))} | {_ci(s, 'streams')} | "
            f"{_ci(s, 'expected_i2s')} |"
        )
    lines += [
        "",
        "The paper gives tier 1 no figure of its own, and the CPS of tiers 0-2 only as a range (-4% to -17%).",
        "",
        "### Cost",
        "",
        f"Wall time {t['wall_seconds']:.0f} s: scoring (two pipeline runs a day) {t['scoring_seconds']:.0f} s, "
        f"serving and drawing {t['serving_seconds']:.0f} s, bootstrap {t['bootstrap_seconds']:.0f} s"
        + _models_note(t.get("models") or {})
        + ".",
        "",
    ]
    return lines


def reach_note(units: list[dict]) -> str:
    """How deep into their eligible users the campaigns bought: where an arm reaches all of them, the ranking
    cannot matter, so this says how much room the test leaves the models."""
    shares = np.array(
        [
            u[arm]["reached_users"] / u[arm]["eligible_users"]
            for u in units
            for arm in ("control", "treatment")
            if u[arm]["eligible_users"]
        ]
    )
    if shares.size == 0:
        return "No campaign-day had eligible users."
    return (
        f"Reach: an arm's campaign-day reached a median {100 * np.median(shares):.0f}% of the arm's eligible users "
        f"(mean {100 * shares.mean():.0f}%); {100 * (shares >= 0.999).mean():.0f}% of them reached every eligible user "
        f"(there the ranking cannot matter), {100 * (shares < 0.5).mean():.0f}% fewer than half. Ad inventory is not "
        "modelled: every eligible user can be served up to the frequency cap, so the half budgets buy more "
        "impressions than the simulator's logs hold for those days."
    )


def _models_note(models: dict) -> str:
    if not models:
        return ""
    done = [f"{k} {'reused' if v['reused'] else 'trained in {:.0f} s'.format(v['seconds'])}" for k, v in models.items()]
    return "; models: " + ", ".join(done)


def write_report(out: str, world_dir: str | None = None) -> str:
    """Write ``<out>/report.md`` and its plots from the JSON in ``out``; returns the report's path."""
    ablations, abtest = _load(out, "ablations.json"), _load(out, "abtest.json")
    if ablations is None and abtest is None:
        raise FileNotFoundError(f"nothing to report in {out}: run `make evaluate` and/or `make abtest` first")
    os.makedirs(out, exist_ok=True)
    world_config = None
    if world_dir and artifacts.exists(artifacts.join(world_dir, "config.json")):
        world_config = json.loads(artifacts.read_bytes(artifacts.join(world_dir, "config.json")))
        artifacts.write_bytes(artifacts.join(out, "world_config.json"), artifacts.dumps(world_config))
    lines = [
        "# podtarget evaluation: the paper's ablations and A/B test on the simulated world",
        "",
        f"Generated {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} from the JSON in this "
        "folder. The simulator's parameters were not tuned to the paper's figures: these are the figures the "
        "world as configured produced (its configuration is at the end and in `world_config.json`).",
        "",
        TIER_NOTE,
        "",
    ]
    files = []
    if ablations is not None:
        lines += ablation_sections(ablations)
        plot_ap_by_tier(ablations, os.path.join(out, "ap_by_tier.png"))
        files += ["ablations.json", "ap_by_tier.png"]
        if ablations.get("calibration", {}).get("curves"):
            plot_calibration(ablations, os.path.join(out, "calibration.png"))
            files.append("calibration.png")
    if abtest is not None:
        lines += abtest_sections(abtest)
        plot_abtest_by_tier(abtest, os.path.join(out, "abtest_by_tier.png"))
        files += ["abtest.json", "abtest_by_tier.png"]
    lines += ["## Files", "", *[f"- `{f}`" for f in files]]
    if world_config is not None:
        files.append("world_config.json")
        lines += [
            "- `world_config.json`",
            "",
            "## Simulator configuration",
            "",
            f"From `{world_dir}/config.json`:",
            "",
            "```json",
            json.dumps(world_config, indent=1, sort_keys=True),
            "```",
        ]
    path = os.path.join(out, "report.md")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="reports/eval", help="Report folder holding ablations.json / abtest.json.")
    p.add_argument("--world", default="./data/world", help="World folder whose config.json the report records.")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"report written to {write_report(a.out, a.world)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

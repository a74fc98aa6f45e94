"""The evaluation report (``make report``): markdown, PNG plots and the JSON behind every figure.

Reads what :mod:`podtarget.evaluation.ablations` and :mod:`podtarget.evaluation.abtest` wrote into a report folder
(either may be missing: its sections are then left out) and writes beside them::

    <out>/report.md              the report: our figures beside the paper's, timings, the simulator configuration
    <out>/ap_by_tier.png         AP by podcast popularity tier, baseline against the joint model (mean ± std)
    <out>/abtest_by_tier.png     A/B lifts of i2s and eCPS by tier, with bootstrap intervals
    <out>/calibration.png        reliability curves of the baseline and the joint model on the test days
    <out>/world_config.json      the simulated world's configuration, copied as it was
    <out>/ablations.json, abtest.json   the figures (written by the two drivers)

Nothing is recomputed here: rebuilding the report never retrains or rescores::

    python -m podtarget.evaluation.report --out=reports/eval --world=./data/world
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..model import artifacts
from .report_abtest import abtest_sections, plot_abtest_by_tier
from .report_coldstart import coldstart_sections, plot_coldstart
from .report_style import label_axes, paper_change, save_figure

TIER_NOTE = (
    "Popularity tiers are this project's (`transforms/arrow/features.py`): shows ranked by 30-day listening hours, "
    "tier 0 the top 1% of all shows, then 2%, 4%, 8%, 15% and 20% (tiers 1-5); tier 6 every other show with any "
    "listening, tier 7 shows with none. The paper's tiers are also by 30-day listening hours, and it calls tiers 3-5 "
    "the less-streamed creators; its '< 5,000 streams' threshold has no counterpart at this scale, so **less-streamed "
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


# ------------------------------------------------------------------------------------------ plots


def plot_ap_by_tier(ablations: dict, path: str) -> None:
    """The joint model's AP change against the baseline by tier, with its bootstrap interval, for both channels."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, channel, title in zip(
        axes, ("ads", "promotions"), ("Ads AP (AdStream, ad rows)", "Promotions AP (PromotionStream)"), strict=True
    ):
        segments = ablations["figures"][channel]["segments"]
        names = [n for n in segments if n.startswith("tier_")] + ["all"]
        changes = [segments[n].get("change_pct", {}).get("joint|baseline") or {} for n in names]
        point = np.array([c.get("point") if c.get("point") is not None else np.nan for c in changes], float)
        ci = np.array([c.get("ci") or [np.nan, np.nan] for c in changes], float)
        x = np.arange(len(names))
        ax.errorbar(x, point, yerr=[point - ci[:, 0], ci[:, 1] - point], fmt="o", capsize=4, label="joint vs baseline")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [n.removeprefix("tier_") for n in names])
        level = int(100 * ablations["config"]["confidence"])
        label_axes(ax, "podcast popularity tier (0 = most streamed)", f"AP change, % ({level}% interval)", title)
    save_figure(fig, path)


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
        label_axes(
            ax,
            "mean predicted stream probability (equal-count bins)",
            "observed stream rate",
            f"{channel} impressions, test days",
        )
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------ markdown


def _change(segment: dict, setup: str, versus: str = "baseline") -> str:
    c = segment.get("change_pct", {}).get(f"{setup}|{versus}")
    if not c or c.get("point") is None:
        return "-"
    return f"{c['point']:+.1f}% [{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}]" if c.get("ci") else f"{c['point']:+.1f}%"


def _ap(segment: dict, setup: str) -> str:
    return _pm(segment.get("ap", {}).get(setup), 4, False)


def ablation_sections(ab: dict) -> list[str]:
    setups, t, cfg, fig = ab["setups"], ab["timing"], ab["config"], ab["figures"]
    level = int(100 * cfg["confidence"])
    split = ab["split"]
    lines = [
        "## 1. Offline ablations (`make evaluate`)",
        "",
        f"Temporal split: train {split['train'][0]}..{split['train'][-1]}, validation {', '.join(split['valid'])}, "
        f"test {', '.join(split['test'])} (split `{cfg['split']}`"
        + (": the last days whose labels are all mature, like and follow included" if cfg["split"] == "mature" else "")
        + f"). Seeds {cfg['seeds']}; up to {cfg['epochs']} epochs"
        + (f" of at most {cfg['max_batches_per_epoch']} batches" if cfg.get("max_batches_per_epoch") else "")
        + f", early stopping on the validation AP of the stream tasks (patience {cfg['patience']}), batches of "
        f"{cfg['batch_size']}. Promotions AP = PromotionStream on promotion impressions, Ads AP = AdStream on ad "
        "impressions; a setup without one of these heads serves that channel with its other stream head, as is "
        "(what `--apply_head` copies), as the paper's baseline does for ads.",
        "",
        f"Each figure is the % change of the seed-mean AP against the promotions-only baseline's, with a {level}% "
        f"percentile interval from {cfg['bootstrap']} bootstrap resamples that draw the test impressions (Poisson "
        "weights, the same for every model: paired) and the seeds (with replacement; a setup and the baseline of "
        "one seed together). The interval covers both the test set's noise and the run-to-run spread of training.",
        "",
        "| setup | Promotions AP change | paper | Ads AP change | paper | Promotions AP (mean ± std) | "
        "Ads AP (mean ± std) |",
        "|---|---|---|---|---|---|---|",
    ]
    promos, ads = fig["promotions"]["segments"]["all"], fig["ads"]["segments"]["all"]
    for name, s in setups.items():
        paper = s["paper"] or {}
        lines.append(
            f"| {s['label']} (`{name}`) | {_change(promos, name) if name != 'baseline' else '-'} | "
            f"{paper_change(paper.get('promotions'))} | {_change(ads, name) if name != 'baseline' else '-'} | "
            f"{paper_change(paper.get('ads'))} | {_ap(promos, name)} | {_ap(ads, name)} |"
        )
    for channel, seg in (("promotions", promos), ("ads", ads)):
        lines += [
            "",
            f"Test rows, {channel}: {seg['rows']:,}, {seg['positives']:,} streams (positive rate "
            f"{100 * (seg['positive_rate'] or 0):.2f}%, a constant predictor's AP).",
        ]
    lines += [
        "",
        f"### Table 1, direction by direction ({level}%)",
        "",
        "*Reproduced*: the interval excludes zero on the paper's side; *reversed*: it excludes zero on the other "
        "side; *inconclusive*: it contains zero.",
        "",
        "| direction | paper | ours | verdict |",
        "|---|---|---|---|",
    ]
    for d in ab["directions"]:
        ours = (
            "-"
            if d["ours"] is None
            else f"{d['ours']:+.1f}%" + (f" [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]" if d["ci"] else "")
        )
        what = f"{d['claim']}: {d['channel']} AP" if d["versus"] == "baseline" else d["claim"]
        versus = "" if d["versus"] == "baseline" else f" (`{d['setup']}` against `{d['versus']}`)"
        lines.append(f"| {what}{versus} | {d['paper']:+.1f}% | {ours} | **{d['verdict']}** |")
    counts = {v: sum(d["verdict"] == v for d in ab["directions"]) for v in ("reproduced", "reversed", "inconclusive")}
    lines += ["", ", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(ab['directions'])} directions.", ""]
    lines += ceiling_lines(ab)
    lines += ranking_lines(ab)
    lines += like_follow_lines(ab)
    lines += ["### AP change by podcast popularity tier", "", "![AP by tier](ap_by_tier.png)", ""]
    for channel in ("ads", "promotions"):
        segments = fig[channel]["segments"]
        tiers = [n for n in segments if n.startswith("tier_")]
        lines += [
            f"{channel.capitalize()} AP change against the baseline by tier ({level}% intervals), and the rows and "
            "positives of the test days:",
            "",
            "| setup | " + " | ".join(f"tier {n.removeprefix('tier_')}" for n in tiers) + " |",
            "|---|" + "---|" * len(tiers),
            "| rows / positives | "
            + " | ".join(f"{segments[n]['rows']:,} / {segments[n]['positives']:,}" for n in tiers)
            + " |",
            "| baseline AP | " + " | ".join(_ap(segments[n], "baseline") for n in tiers) + " |",
        ]
        for name in setups:
            if name != "baseline":
                lines.append(f"| `{name}` | " + " | ".join(_change(segments[n], name) for n in tiers) + " |")
        lines.append("")
    lines += calibration_lines(ab)
    lines += [
        "### Cost",
        "",
        f"Wall time of this invocation {t['wall_seconds']:.0f} s: {t['runs_trained']} runs trained, "
        f"{t['runs_reused']} reused from the cache; training {t['training_seconds']:.0f} s (as measured when each "
        f"run was trained), scoring the test days {t['scoring_seconds']:.0f} s, bootstrap "
        f"{t['bootstrap_seconds']:.0f} s. Per setup, all seeds:",
        "",
        "| setup | training seconds | best epochs |",
        "|---|---|---|",
    ]
    for name, s in setups.items():
        lines.append(f"| `{name}` | {s['seconds']:.0f} | {s['best_epochs']} |")
    lines.append("")
    return lines


def _share(gain: dict | None) -> str:
    if not gain or gain.get("point") is None:
        return "-"
    ci = gain.get("ci")
    return f"{100 * gain['point']:.0f}%" + (f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else "")


def ceiling_lines(ab: dict) -> list[str]:
    """The yardsticks: a constant and the world's ground truth scoring the same test rows, and each setup's share
    of the gain between them, overall and per tier."""
    fig = ab["figures"]
    if "references" not in fig["ads"]["segments"]["all"]:
        return []
    level = int(100 * ab["config"]["confidence"])
    lines = [
        "### How much of the achievable gain (ceiling)",
        "",
        "The same test rows scored by a constant (AP = the positive rate) and by the simulated world's ground truth: "
        "every term of the true stream probability in the row's logged context (device, hour, surface, slot, "
        "creative or promotion placement, the day's earlier impressions of the campaign), and the terms both "
        "channels share only (user x show affinity, language match, show appeal), which is what promotions can "
        "teach about ads at best. A setup's *share of the achievable gain* is (AP - constant's) / (ground truth's "
        f"- constant's), of its seed-mean AP, with a {level}% interval from the same resamples.",
        "",
        "| | Ads AP | share of gain (all terms) | share (shared terms) | Promotions AP | share of gain (all terms) "
        "| share (shared terms) |",
        "|---|---|---|---|---|---|---|",
    ]
    ads, promos = fig["ads"]["segments"]["all"], fig["promotions"]["segments"]["all"]
    for name, label in (ab.get("references") or {}).items():
        a, p = ads["references"].get(name), promos["references"].get(name)
        lines.append(f"| {label} | {a if a is None else f'{a:.4f}'} | | | {p if p is None else f'{p:.4f}'} | | |")
    for name in ab["setups"]:
        cells = []
        for seg in (ads, promos):
            gain = seg.get("gain_share", {}).get(name, {})
            cells += [_ap(seg, name), _share(gain.get("truth")), _share(gain.get("truth_shared"))]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("")
    for channel in ("ads", "promotions"):
        segments = fig[channel]["segments"]
        tiers = [n for n in segments if n.startswith("tier_") and "references" in segments[n]]
        if not tiers:
            continue
        lines += [
            f"{channel.capitalize()}, share of the achievable gain (all terms) by tier:",
            "",
            "| | " + " | ".join(f"tier {n.removeprefix('tier_')}" for n in tiers) + " |",
            "|---|" + "---|" * len(tiers),
        ]
        for ref in ("constant", "truth"):
            values = [segments[n]["references"].get(ref) for n in tiers]
            lines.append(f"| {ref} AP | " + " | ".join("-" if v is None else f"{v:.4f}" for v in values) + " |")
        for name in ab["setups"]:
            cells = [_share(segments[n].get("gain_share", {}).get(name, {}).get("truth")) for n in tiers]
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _rank_value(metric: dict, setup: str) -> str:
    v = metric.get("setups", {}).get(setup)
    if not v or v.get("mean") is None:
        return "-"
    return f"{v['mean']:.4f}"


def _rank_change(metric: dict, setup: str) -> str:
    c = metric.get("change_vs_baseline", {}).get(setup)
    if not c or c.get("point") is None:
        return "-"
    if metric.get("change_unit") == "points":
        text = f"{c['point']:+.4f}"
        return text + (f" [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]" if c.get("ci") else "")
    text = f"{c['point']:+.1f}%"
    return text + (f" [{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}]" if c.get("ci") else "")


def ranking_lines(ab: dict) -> list[str]:
    """Pooled AP beside the offline metrics the A/B designs reward: the within-user ranking of campaigns (the
    auction) and the within-campaign ranking of users (the audience design)."""
    ranking = ab.get("ranking") or {}
    if not ranking:
        return []
    level = int(100 * ab["config"]["confidence"])
    lines = [
        "### Offline metrics matched to the A/B designs",
        "",
        "Pooled AP ranks all test impressions of a channel together, so it rewards knowing which users stream "
        "after any ad and which campaigns get streams from anyone. The auction design ignores both (a factor "
        "shared by a user's campaigns cancels in the auction, and bids are scores over the campaign's mean): "
        "*within-user AUC* is, over pairs of impressions of one user and two campaigns, one streamed and one not, "
        "the share where the streamed one has the higher campaign-normalised score (0.5 = chance). The audience "
        "design ranks users within each campaign: *within-campaign AP* is each campaign's AP over its impressions, "
        "weighted by its streams. Changes against the baseline with "
        f"{level}% cluster-bootstrap intervals (users or campaigns, and seeds); AUC changes in points.",
        "",
    ]
    for channel, figure in ranking.items():
        auc, cap = figure["within_user_auc"], figure["within_campaign_ap"]
        pooled = ab["figures"][channel]["segments"]["all"]
        lines += [
            f"{channel.capitalize()}: {auc.get('pairs', 0):,} within-user pairs ({auc.get('users', 0):,} users), "
            f"{cap.get('campaigns', 0):,} campaigns with both outcomes.",
            "",
            "| | pooled AP | change | within-user AUC | change | within-campaign AP | change |",
            "|---|---|---|---|---|---|---|",
        ]
        for ref in auc.get("references", {}):
            pooled_ref = pooled.get("references", {}).get(ref)
            lines.append(
                f"| {ref} | {'-' if pooled_ref is None else f'{pooled_ref:.4f}'} | | "
                f"{auc['references'][ref]:.4f} | | {cap['references'].get(ref, 0):.4f} | |"
            )
        for name in ab["setups"]:
            lines.append(
                f"| `{name}` | {_ap(pooled, name)} | {_change(pooled, name) if name != 'baseline' else '-'} | "
                f"{_rank_value(auc, name)} | {_rank_change(auc, name)} | {_rank_value(cap, name)} | "
                f"{_rank_change(cap, name)} |"
            )
        lines.append("")
    return lines


def like_follow_lines(ab: dict) -> list[str]:
    """Like and Follow: each head's AP against a constant's (the positive rate) and the change against the
    baseline's own Like and Follow heads."""
    lines = [
        "### Like and Follow heads",
        "",
        "Measured on the promotion impressions of the test days, whose like and follow labels (7-day windows) are "
        "mature. A constant predictor's AP is the positive rate.",
        "",
        "| head | setup | AP (mean ± std over seeds) | AP / positive rate | change against the baseline |",
        "|---|---|---|---|---|",
    ]
    for figure in ("like", "follow"):
        seg = ab["figures"][figure]["segments"]["all"]
        left_out = ab["figures"][figure].get("immature_days") or []
        if left_out:
            lines.append(
                f"| {figure.capitalize()} | - | test days left out, labels immature: {', '.join(left_out)} | | |"
            )
        if "ap" not in seg:
            lines.append(f"| {figure.capitalize()} | - | {seg.get('note', 'not measured')} | | |")
            continue
        rate = seg["positive_rate"]
        for name, ap in seg["ap"].items():
            lift = f"{ap['mean'] / rate:.2f}" if rate and ap["mean"] is not None else "-"
            change = "-" if name == "baseline" else _change(seg, name)
            lines.append(f"| {figure.capitalize()} | `{name}` | {_pm(ap, 4, False)} | {lift} | {change} |")
        lines.append(
            f"| {figure.capitalize()} | rows | {seg['rows']:,} rows, {seg['positives']:,} positives "
            f"({100 * rate:.2f}%) | | |"
        )
    return [*lines, ""]


def calibration_lines(ab: dict) -> list[str]:
    cal = ab.get("calibration", {})
    if not cal.get("curves"):
        return []
    lines = [
        "### Calibration",
        "",
        f"Reliability on the test days ({', '.join(cal['test_days'])}), seed {cal['seed']}: equal-count bins of "
        "each model's prediction against the observed stream rate.",
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
    return [*lines, ""]


def world_parameter_lines(world_config: dict) -> list[str]:
    """The world's sizes and behaviour as a table (the ground truth's coefficients follow in the JSON)."""
    lines = ["| parameter | value |", "|---|---|"]
    for key in sorted(world_config):
        value = world_config[key]
        if not isinstance(value, dict):
            lines.append(f"| `{key}` | {value} |")
    return lines


def write_report(out: str, world_dir: str | None = None) -> str:
    """Write ``<out>/report.md`` and its plots from the JSON in ``out``; returns the report's path."""
    ablations, abtest = _load(out, "ablations.json"), _load(out, "abtest.json")
    coldstart = _load(out, "coldstart.json")
    if ablations is None and abtest is None and coldstart is None:
        raise FileNotFoundError(
            f"nothing to report in {out}: run `make evaluate`, `make abtest` and/or `make coldstart` first"
        )
    os.makedirs(out, exist_ok=True)
    world_config = None
    if world_dir and artifacts.exists(artifacts.join(world_dir, "config.json")):
        world_config = json.loads(artifacts.read_bytes(artifacts.join(world_dir, "config.json")))
        artifacts.write_bytes(artifacts.join(out, "world_config.json"), artifacts.dumps(world_config))
    lines = [
        "# podtarget evaluation: the paper's ablations and A/B test on the simulated world",
        "",
        f"Generated {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} from the JSON in this "
        "folder. The world's parameters were fixed before the evaluation ran and were not tuned to the paper's "
        "figures: these are the figures the world as configured produced. Its parameters are listed at the end "
        "(and in `world_config.json`).",
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
        files += ["abtest.json", "abtest_units.json.gz", "abtest_by_tier.png"]
    if coldstart is not None:
        lines += coldstart_sections(coldstart)
        plot_coldstart(coldstart, os.path.join(out, "coldstart.png"))
        files += ["coldstart.json", "coldstart.png"]
    lines += ["## Files", "", *[f"- `{f}`" for f in files]]
    if world_config is not None:
        files.append("world_config.json")
        lines += [
            "- `world_config.json`",
            "",
            "## World parameters (fixed before the evaluation ran)",
            "",
            *world_parameter_lines(world_config),
            "",
            # The copy beside the report, not the world's path: a committed report names no machine's folders.
            "Everything, as in `world_config.json` (the world's `config.json`, the ground-truth coefficients "
            "included):",
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
    from ..common.cli import CommandParser

    p = CommandParser("podtarget.evaluation.report", __doc__)
    p.add_argument("--out", default="reports/eval", help="Report folder holding ablations.json / abtest.json.")
    p.add_argument("--world", default="./data/world", help="World folder whose config.json the report records.")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"report written to {write_report(a.out, a.world)}")
    return 0


if __name__ == "__main__":
    from ..common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

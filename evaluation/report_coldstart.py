"""The cold-start sweep's part of the report (``report.md`` section 3 and ``coldstart.png``), from
``coldstart.json``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

STYLE = {
    "baseline": ("k", "--"),
    "ads_stream_only": ("tab:orange", "-"),
    "ads_stream_anc": ("tab:green", "-"),
    "joint": ("tab:blue", "-"),
    "joint_promo_head": ("tab:purple", ":"),
}


def plot_coldstart(coldstart: dict, path: str) -> None:
    """Ads AP against days of ad history, one panel per world: each setup's seed mean with its interval, and the
    references (a constant, the ground truth's shared terms) as flat lines."""
    worlds = coldstart["worlds"]
    history = coldstart["history"]
    fig, axes = plt.subplots(1, len(worlds), figsize=(6 * len(worlds), 5.0), squeeze=False, sharey=True)
    x = np.arange(len(history))
    for ax, (tag, w) in zip(axes[0], worlds.items(), strict=True):
        for k, (setup, by) in enumerate(w["points"].items()):
            mean = np.array([by[h]["mean"] for h in history])
            ci = np.array([by[h]["ci"] or [np.nan, np.nan] for h in history], float)
            color, style = STYLE.get(setup, (None, "-"))
            offset = (k - 2) * 0.04
            ax.errorbar(
                x + offset,
                mean,
                yerr=[mean - ci[:, 0], ci[:, 1] - mean],
                color=color,
                ls=style,
                marker="o",
                capsize=3,
                label=coldstart["labels"].get(setup, setup),
            )
        refs = w["references"]
        if "constant" in refs:
            ax.axhline(refs["constant"], color="grey", lw=0.8, label="constant (stream rate)")
        if "truth_shared" in refs:
            ax.axhline(refs["truth_shared"], color="grey", lw=0.8, ls="-.", label="ground truth, shared terms")
        ax.set_xticks(x, history)
        ax.set_xlabel("days of ad history the models train on")
        ax.set_title(f"correlation {tag}")
    axes[0][0].set_ylabel("Ads AP (seed mean, 95% interval)")
    # One legend below the panels: inside them it hid the points of the longer histories.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ap(point: dict) -> str:
    ci = point.get("ci")
    return f"{point['mean']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def _change(change: dict | None) -> str:
    if not change:
        return "-"
    ci = change.get("ci")
    return f"{change['point']:+.1f}%" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")


def _budget_line(world: dict, cfg: dict) -> str:
    """Runs still improving when the recipe's epochs ran out: the sweep compares models trained to one budget."""
    last = world.get("best_at_last_epoch") or {}
    runs: dict[str, int] = {}
    for r in world["runs"]:
        name = r["setup"].split("-h")[0]
        runs[name] = runs.get(name, 0) + 1
    parts = [f"`{name}` {last.get(name, 0)} of {n}" for name, n in runs.items()]
    return (
        f"Runs whose best validation score came in their last allowed epoch ({cfg['epochs']}; still improving when "
        f"the budget ended): {', '.join(parts)}."
    )


def _days(h: str) -> str:
    return "1 day" if h == "1" else f"{h} days"


def verdict_lines(changes: dict, history: list[str]) -> list[str]:
    """Where the joint model wins and where it does not, against each other setup, from the intervals."""
    out = []
    for key, by in changes.items():
        setup, versus = key.split("|")
        if setup != "joint":
            continue
        grouped: dict[str, list[str]] = {}
        for h in history:
            grouped.setdefault(by[h]["verdict"], []).append(h)
        parts = [f"{verdict} with {', '.join(_days(h) for h in days)}" for verdict, days in grouped.items()]
        out.append(f"- `joint` against `{versus}`: " + "; ".join(parts) + " of ad history.")
    return out


def coldstart_sections(cs: dict) -> list[str]:
    cfg, history = cs["config"], cs["history"]
    level = int(100 * cfg["confidence"])
    repeats = cfg["max_source_repeats"]
    lines = [
        "## 3. Cold start: Ads AP against ad history (`make coldstart`)",
        "",
        "The models train on the last N training days of ad impressions (every promotion impression; the "
        "validation and test days whole) and are measured on the same ad test impressions. The baseline trains "
        "on promotions only and serves ads with its PromotionStream head at every N; `joint_promo_head` is the "
        "joint run's own PromotionStream head applied to ads. "
        f"Seeds {cfg['seeds']}; recipe: up to {cfg['epochs']} epochs of at most {cfg['max_batches_per_epoch']} "
        f"batches of {cfg['batch_size']} (early stopping, patience {cfg['patience']}); sampling of the runs with "
        "both sources: "
        + (
            "balanced batches, no cap on repeats"
            if repeats is None
            else f"balanced batches, at most {repeats:g} draws per epoch of a row of the scarcer source"
        )
        + f". {level}% intervals from a bootstrap over the test impressions (paired) and the seeds. The two worlds "
        "differ only in `ad_promo_responsiveness_correlation` (how strongly a user's ad responsiveness follows "
        "their promotion responsiveness), fixed before the run; neither it nor the recipe was tuned to the paper.",
        "",
        "![cold start](coldstart.png)",
        "",
    ]
    for index, (tag, w) in enumerate(cs["worlds"].items()):
        t = w["timing"]
        lines += [
            # The world by its parameter, not its folder: a committed report names no machine's paths.
            f"### Correlation {tag}" + (" (the evaluated world)" if index == 0 else " (the second world)"),
            "",
            f"Test days {', '.join(w['split']['test'])}: {w['test_rows']:,} ad impressions, {w['test_streams']:,} "
            "streams. References: "
            + ", ".join(f"{name} {value:.4f}" for name, value in w["references"].items())
            + ". Ad rows the joint runs trained on, by history: "
            + ", ".join(
                f"{h}: {r['ad_rows']:,} ({(r['ad_repeats_per_epoch'] or 0):.1f} draws per epoch)"
                for h, r in w["ad_rows_by_history"].items()
            )
            + ".",
            "",
            _budget_line(w, cfg),
            "",
            "| setup | " + " | ".join(f"{h} day{'s' if h != '1' else ''}" for h in history) + " |",
            "|---|" + "---|" * len(history),
        ]
        for setup, by in w["points"].items():
            lines.append(f"| `{setup}` | " + " | ".join(_ap(by[h]) for h in history) + " |")
        lines += ["", "Paired changes (*higher* / *lower*: the interval excludes zero):", ""]
        lines += ["| comparison | " + " | ".join(history) + " |", "|---|" + "---|" * len(history)]
        for key, by in w["changes"].items():
            setup, versus = key.split("|")
            cells = [f"{_change(by[h])} {by[h]['verdict']}" for h in history]
            lines.append(f"| `{setup}` vs `{versus}` | " + " | ".join(cells) + " |")
        lines += ["", *verdict_lines(w["changes"], history)]
        world = t["world"]
        built = f"world simulated and built in {world['seconds']:.0f} s; " if world["built"] else ""
        lines += [
            "",
            f"Cost: {built}{t['runs_trained']} runs trained ({t['run_seconds']:.0f} s as measured when each was "
            f"trained), {t['runs_reused']} reused; scoring {t['scoring_seconds']:.0f} s, bootstrap "
            f"{t['bootstrap_seconds']:.0f} s.",
            "",
        ]
    lines += [f"Wall time of the sweep: {cs['timing']['wall_seconds']:.0f} s.", ""]
    return lines

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
import logging
import sys
import time
from collections.abc import Sequence

from ..common.cli import CommandParser, configure_logging, warn_if_threads_spin
from ..common.options import add_options, from_options
from .ablation_figures import calibration_curves, figures, ranking_figures
from .ablations_config import EvaluateConfig
from .outputs import check_same_run, report_identity, world_beside, write_report_json
from .runs import resolve_days, run_setup
from .scored_rows import score_test_rows
from .table1 import directions
from .truth import REFERENCES

log = logging.getLogger(__name__)


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
    data_root = config.examples.rstrip("/").rsplit("/", 1)[0]
    write_report_json(config.out, "ablations.json", result, {"$DATA_ROOT": data_root})
    return result


def parse_args(argv: Sequence[str]) -> tuple[EvaluateConfig, argparse.Namespace]:
    """The run's configuration, and the CLI-only switch (``report``) that is not part of it."""
    p = CommandParser("podtarget.evaluation.ablations", __doc__)
    add_options(p, EvaluateConfig, defaults={"examples": "./data/examples"})
    p.add_argument("--report", action="store_true", default=True, help="Rewrite the report (the default).")
    p.add_argument("--no_report", dest="report", action="store_false", help="Not --report.")
    a = p.parse_args(argv)
    return from_options(EvaluateConfig, a, world=a.world or world_beside(a.examples)), a


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # the command's own progress; libraries only warn (PODTARGET_VERBOSE=1 for more)
    warn_if_threads_spin(log)
    config, cli = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_ablations(config)
    print(format_summary(result))
    if cli.report:
        from .report import write_report

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
    from ..common.cli import run_cli

    sys.exit(run_cli(main, {"--out": "EVAL_OUT=reports/<name>"}))  # errors as one line

"""`make bench`: run every benchmark and write its figures to ``<out>/<name>.json``.

    python -m benchmarks.run [--out=reports/local/bench] [--only=simulate] [--bench_root=./data/bench] [beam args...]

Beam arguments (``--runner``, ``--direct_running_mode``, ``--direct_num_workers``, ...) are passed to every
pipeline the benchmarks run.
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks import examples, score, simulate, train
from benchmarks.harness import write_report
from podtarget.common.cli import CommandParser, run_cli

# In order: the examples benchmark builds on the worlds the simulate benchmark leaves behind, and the train
# benchmark trains on the examples it builds; the score benchmark scores the features of that day.
BENCHMARKS = {"simulate": simulate.run, "examples": examples.run, "train": train.run, "score": score.run}


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("benchmarks.run", __doc__)
    parser.add_argument(
        "--out",
        default="reports/local/bench",
        help="Folder for the JSON reports (the committed record, reports/bench, only when named).",
    )
    parser.add_argument("--bench_root", default="./data/bench", help="Where the bench world is simulated.")
    parser.add_argument("--only", default="", help=f"Comma-separated subset of: {', '.join(BENCHMARKS)}.")
    args, beam_args = parser.parse_known_args(argv)
    chosen = [b for b in args.only.split(",") if b] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; expected some of {', '.join(BENCHMARKS)}")
    # Every benchmark runs its commands as child processes, which load torch: measure them as make runs them, with
    # passive OpenMP threads (Makefile), also when this runs without make.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    failed = False
    for name in chosen:
        figures = BENCHMARKS[name](args.bench_root, beam_args)
        path = write_report(args.out, name, figures)
        print(f"{name}: {json.dumps(figures, indent=2)}\n-> {path}")
        failed |= not figures.get("targets_met", True)
    if failed:
        print("WARNING: a benchmark missed its target (see targets_met above)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))  # a bad flag or benchmark name is one line

"""Backfill features and examples for every day in a range; resumable, idempotent, local or ``gs://``.

Usage (``make backfill START=... END=...`` wraps this)::

    python -m pipelines.backfill --data_root=./data --start=2026-03-02 --end=2026-03-08 [--force] \\
        [--allow_unobserved] [beam options...]

Days run in order, features before examples (examples of D join the features of D). A partition that already
carries ``_SUCCESS.json`` is complete and skipped unless ``--force``; partitions are committed whole, so after a
failure the same command resumes where it stopped. Every other option is passed to both pipelines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import build_examples, build_features
from pipelines.daily import bucket_processes, day_range
from pipelines.options import resolve_runner
from schemas import layout
from transforms.storage import is_complete


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", default="./data")
    parser.add_argument("--start", required=True, type=datetime.date.fromisoformat, help="First day, YYYY-MM-DD.")
    parser.add_argument("--end", required=True, type=datetime.date.fromisoformat, help="Last day (inclusive).")
    parser.add_argument("--force", action="store_true", help="Rebuild days that are already complete.")
    parser.add_argument("--allow_unobserved", action="store_true", help="Passed to build_examples.")
    parser.add_argument("--skip_examples", action="store_true", help="Build features only.")
    parser.add_argument(
        "--status_json",
        default=None,
        help="Also write the status rows (day, stage, rows, seconds, status) to this JSON file, for schedulers.",
    )
    return parser.parse_known_args(argv)


def run(argv: list[str]) -> list[dict]:
    """Backfill the range; returns one status row per (day, stage): built, skipped or failed."""
    args, beam_args = parse_args(argv)
    # Starts the worker processes' server (when the runner will use one) while the first day is planned.
    bucket_processes(resolve_runner(PipelineOptions(beam_args)))
    statuses = []
    stages = [("features", build_features.run, lambda d: layout.feature_partition(args.data_root, "user", d))]
    if not args.skip_examples:
        stages.append(("examples", build_examples.run, lambda d: layout.examples_partition(args.data_root, d)))
    for day in day_range(args.start, args.end):
        for stage, run_stage, partition in stages:
            if is_complete(partition(day)) and not args.force:
                statuses.append({"date": day.isoformat(), "stage": stage, "status": "skipped (complete)"})
                continue
            stage_args = [f"--data_root={args.data_root}", f"--date={day.isoformat()}", *beam_args]
            if stage == "examples" and args.allow_unobserved:
                stage_args.append("--allow_unobserved")
            started = time.perf_counter()
            try:
                summary = run_stage(stage_args)
            except Exception as exc:
                statuses.append({"date": day.isoformat(), "stage": stage, "status": f"failed: {exc}"})
                raise BackfillError(statuses, day, stage) from exc
            rows = summary.get("rows", summary.get("users", 0))
            statuses.append(
                {
                    "date": day.isoformat(),
                    "stage": stage,
                    "status": "built",
                    "rows": rows,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
    return statuses


class BackfillError(RuntimeError):
    def __init__(self, statuses: list[dict], day: datetime.date, stage: str) -> None:
        super().__init__(
            f"backfill stopped at {stage} of {day}; days before it are complete. Fix the cause and rerun the same "
            "command to resume.\n" + format_statuses(statuses)
        )
        self.statuses = statuses


def format_statuses(statuses: list[dict]) -> str:
    lines = [f"{'date':<12}{'stage':<10}{'rows':>10}{'seconds':>9}  status"]
    for s in statuses:
        rows = f"{s['rows']:,}" if "rows" in s else ""
        seconds = f"{s['seconds']:.1f}" if "seconds" in s else ""
        lines.append(f"{s['date']:<12}{s['stage']:<10}{rows:>10}{seconds:>9}  {s['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    status_json = parse_args(argv)[0].status_json
    try:
        statuses = run(argv)
    except BackfillError as exc:
        print(exc, file=sys.stderr)
        _write_statuses(status_json, exc.statuses)
        return 1
    print(format_statuses(statuses))
    _write_statuses(status_json, statuses)
    return 0


def _write_statuses(path: str | None, statuses: list[dict]) -> None:
    if path is not None:
        with open(path, "w") as handle:
            json.dump(statuses, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())

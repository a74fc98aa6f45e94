"""Backfill features and examples for every day in a range; resumable, idempotent, local or ``gs://``.

Usage (``make backfill START=... END=...`` wraps this)::

    python -m podtarget.pipelines.backfill --data_root=./data --start=2026-03-02 --end=2026-03-08 [--force] \\
        [--allow_unobserved] [beam options...]

Days run in order, features before examples (examples of D join the features of D). A partition is complete,
and skipped unless ``--force``, when it carries ``_SUCCESS.json`` *and* the inputs recorded there are the inputs a
run would read now (``pipelines/lineage.py``): after a re-simulated world, rewritten or late log files, new log days
that cover an immature day's windows, or features rebuilt under a day's examples, the partition is rebuilt and
the status says why. Partitions are committed whole, so after a failure (or Ctrl-C) the same command resumes where
it stopped. Every other option is passed to both pipelines.

Each day's row is printed as soon as it finishes, with a progress line on a terminal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from collections.abc import Callable

from apache_beam.options.pipeline_options import PipelineOptions

from podtarget.common.cli import one_line
from podtarget.common.cloud import require_credentials
from podtarget.common.days import day_range, parse_day
from podtarget.pipelines import build_examples, build_features, lineage
from podtarget.pipelines.daily import start_worker_server
from podtarget.pipelines.options import MAKE_VARIABLES, resolve_runner
from podtarget.schemas import layout
from podtarget.transforms.runtime.storage import is_complete, read_success


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", default="./data")
    parser.add_argument("--start", required=True, type=parse_day, help="First day, YYYY-MM-DD.")
    parser.add_argument("--end", required=True, type=parse_day, help="Last day (inclusive).")
    parser.add_argument("--force", action="store_true", help="Rebuild days that are already complete.")
    parser.add_argument("--allow_unobserved", action="store_true", help="Passed to build_examples.")
    parser.add_argument("--skip_examples", action="store_true", help="Build features only.")
    parser.add_argument(
        "--status_json",
        default=None,
        help="Also write the status rows (day, stage, rows, seconds, status) to this JSON file, for schedulers.",
    )
    return parser.parse_known_args(argv)


def run(argv: list[str], on_status: Callable[[dict], None] | None = None) -> list[dict]:
    """Backfill the range; returns one status row per (day, stage): built, rebuilt (why), skipped or failed.
    ``on_status`` gets each row as soon as it is decided (``main`` prints it)."""
    args, beam_args = parse_args(argv)
    require_credentials([args.data_root])
    resolve_runner(PipelineOptions(beam_args))  # unknown options and unusable runners fail before the first day
    statuses: list[dict] = []

    def emit(row: dict) -> None:
        statuses.append(row)
        if on_status is not None:
            on_status(row)

    stages = [("features", build_features, lambda d: layout.feature_partition(args.data_root, "user", d))]
    if not args.skip_examples:
        stages.append(("examples", build_examples, lambda d: layout.examples_partition(args.data_root, d)))
    day, stage = args.start, stages[0][0]
    try:
        for day in day_range(args.start, args.end):
            for stage, pipeline, partition in stages:
                _run_stage(args, beam_args, day, stage, pipeline, partition(day), emit, statuses)
    except KeyboardInterrupt:
        raise Interrupted(statuses, day, stage) from None
    return statuses


def _run_stage(args, beam_args, day, stage, pipeline, partition, emit, statuses) -> None:
    """One stage of one day: skipped when complete for today's inputs, else built (or rebuilt, with why)."""
    stage_args = [f"--data_root={args.data_root}", f"--date={day.isoformat()}", *beam_args]
    if stage == "examples" and args.allow_unobserved:
        stage_args.append("--allow_unobserved")
    built = "built"
    if is_complete(partition) and not args.force:
        why = stale_reason(read_success(partition), pipeline.planned_inputs(stage_args))
        if why is None:
            emit({"date": day.isoformat(), "stage": stage, "status": "skipped (complete)"})
            return
        built = f"rebuilt ({why})"
    started = time.perf_counter()
    try:
        summary = pipeline.run(stage_args)
    except Exception as exc:
        emit({"date": day.isoformat(), "stage": stage, "status": f"failed: {exc}"})
        raise BackfillError(statuses, day, stage, exc) from exc
    rows = summary.get("rows", summary.get("users", 0))
    seconds = round(time.perf_counter() - started, 1)
    emit({"date": day.isoformat(), "stage": stage, "status": built, "rows": rows, "seconds": seconds})


def stale_reason(success: dict, planned: dict) -> str | None:
    """Why a complete partition (its ``_SUCCESS.json``) must be rebuilt for the inputs there are now; None if not."""
    if success.get("labels_mature") is False and planned.get("mature"):
        return f"labels were immature; logs now reach {planned['logs_needed_through']}"
    if planned.get("inputs") is None:
        return "its logs are gone"
    return lineage.stale_reason(success.get("inputs"), planned["inputs"])


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a backfill: which days finished and where it stopped."""

    def __init__(self, statuses: list[dict], day: datetime.date, stage: str) -> None:
        super().__init__(f"interrupted during {stage} of {day}")
        self.statuses, self.day, self.stage = statuses, day, stage


class BackfillError(RuntimeError):
    def __init__(self, statuses: list[dict], day: datetime.date, stage: str, cause: Exception) -> None:
        super().__init__(
            f"backfill stopped at {stage} of {day}: {cause} (the days before it are complete; rerun the same "
            "command to resume)"
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
    args, beam_args = parse_args(argv)
    try:
        # First thing: the workers' server (when the runner will use one) imports while the first day is planned.
        start_worker_server(PipelineOptions(beam_args))
    except ValueError as exc:  # a bad --bucket_processes: one line, as every command
        print(f"error: {one_line(exc, MAKE_VARIABLES)}", file=sys.stderr)
        return 2
    progress = Progress(len(day_range(args.start, args.end)) * (1 if args.skip_examples else 2))
    try:
        statuses = run(argv, on_status=progress.row)
    except BackfillError as exc:
        progress.clear()
        print(f"error: {one_line(exc, MAKE_VARIABLES)}", file=sys.stderr)
        _write_statuses(args.status_json, exc.statuses)
        return 1
    except KeyboardInterrupt as exc:
        progress.clear()
        done = finished_days(getattr(exc, "statuses", []), 1 if args.skip_examples else 2)
        where = f" during {exc.stage} of {exc.day}" if isinstance(exc, Interrupted) else ""
        print(
            f"interrupted{where}; finished: {', '.join(done) or 'nothing'} (committed; the same command resumes)",
            file=sys.stderr,
        )
        _write_statuses(args.status_json, getattr(exc, "statuses", []))
        return 130
    except Exception as exc:  # before the first day (bad arguments, no credentials): one line, as every command
        progress.clear()
        print(f"error: {one_line(exc, MAKE_VARIABLES)}", file=sys.stderr)
        return 2
    progress.clear()
    _write_statuses(args.status_json, statuses)
    return 0


def finished_days(statuses: list[dict], stages_per_day: int) -> list[str]:
    """Days whose every stage finished (built, rebuilt or skipped as complete)."""
    done: dict[str, int] = {}
    for s in statuses:
        if not s["status"].startswith("failed"):
            done[s["date"]] = done.get(s["date"], 0) + 1
    return sorted(d for d, n in done.items() if n == stages_per_day)


class Progress:
    """Prints each status row as it is decided (the header first), and, on a terminal, a progress bar of the
    stages done on stderr under it."""

    def __init__(self, total: int, out=None, err=None) -> None:
        self.total, self.done = total, 0
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.tty = self.err.isatty()
        self.started = time.perf_counter()
        print(format_statuses([]), file=self.out, flush=True)

    def row(self, status: dict) -> None:
        self.clear()
        print(format_statuses([status]).split("\n", 1)[1], file=self.out, flush=True)
        self.done += 1
        if self.tty and self.done < self.total:
            width = 30
            filled = width * self.done // self.total
            elapsed = time.perf_counter() - self.started
            bar = "#" * filled + "-" * (width - filled)
            self.err.write(f"\r[{bar}] {self.done}/{self.total} stages, {elapsed:.0f} s")
            self.err.flush()

    def clear(self) -> None:
        if self.tty:
            self.err.write("\r\033[K")
            self.err.flush()


def _write_statuses(path: str | None, statuses: list[dict]) -> None:
    if path is not None:
        with open(path, "w") as handle:
            json.dump(statuses, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())

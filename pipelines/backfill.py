"""Backfill features and examples for every day in a range; resumable, idempotent, local or ``gs://``.

Usage (``make backfill START=... END=...`` wraps this)::

    python -m podtarget.pipelines.backfill --data_root=./data --start=2026-03-02 --end=2026-03-08 [--force] \\
        [--allow_unobserved] [beam options...]

Before any work, every day of the range must have its raw snapshots (and, for the examples, a partition of every
log table, even an empty one): a range that reaches past the raw data is refused with the days that are there.
Days run in order, features before examples (examples of D join the features of D). A partition is complete,
and skipped unless ``--force``, when it carries ``_SUCCESS.json`` *and* the inputs recorded there are the inputs a
run would read now (``pipelines/lineage.py``): after a re-simulated world, rewritten or late log files, new log days
that cover an immature day's windows, or features rebuilt under a day's examples, the partition is rebuilt and
the status says why. Partitions are committed whole, so after a failure (or Ctrl-C) the days before it are
complete: the error says from which day to resume. Every other option is passed to both pipelines.

Each day's row is printed as soon as it finishes (with a progress bar on a terminal): its rows, the rows its day
dead-lettered, and the raw files it found unreadable, of its own day and of the days it read as context. A total
row per stage ends the table, and a warning names every unreadable file (the run still succeeds: the complete
blocks of such a file are used, and its day dead-letters it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable

from apache_beam.options.pipeline_options import PipelineOptions

from ..common.cli import CommandParser, argument, configure_logging, one_line, run_cli, was_interrupted
from ..common.cloud import require_credentials
from ..common.days import day_range, parse_day
from ..schemas import LOG_TABLES, SNAPSHOT_TABLES, layout
from ..transforms.arrow.validation import UNREADABLE_FILE
from ..transforms.runtime.day_inputs import available_days
from ..transforms.runtime.storage import is_complete, read_success
from . import build_examples, build_features, lineage
from .daily_options import start_worker_server
from .options import COMMAND_LOG_FORMAT, MAKE_VARIABLES, require_data_root, resolve_runner

STAGES = ("features", "examples")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The backfill's own flags, and the rest (Beam and pipeline options, checked by :func:`run`). A bad day or an
    end before the start is a one-line error."""
    parser = CommandParser(__spec__.name if __spec__ else __name__, __doc__)
    parser.add_argument("--data_root", default="./data")
    parser.add_argument("--start", required=True, type=argument(parse_day), help="First day, YYYY-MM-DD.")
    parser.add_argument("--end", required=True, type=argument(parse_day), help="Last day (inclusive).")
    parser.add_argument("--force", action="store_true", help="Rebuild days that are already complete.")
    parser.add_argument("--allow_unobserved", action="store_true", help="Passed to build_examples.")
    parser.add_argument("--skip_examples", action="store_true", help="Build features only.")
    parser.add_argument(
        "--status_json",
        default=None,
        help="Also write the status rows (day, stage, rows, dead letters, unreadable files, seconds, status) to "
        "this JSON file, for schedulers.",
    )
    args, rest = parser.parse_known_args(argv)
    if args.end < args.start:
        raise ValueError(f"--end={args.end} is before --start={args.start}: the range runs from --start to --end")
    return args, rest


def run(argv: list[str], on_status: Callable[[dict], None] | None = None) -> list[dict]:
    """Backfill the range; returns one status row per (day, stage): built, rebuilt (why), skipped or failed.
    ``on_status`` gets each row as soon as it is decided (``main`` prints it)."""
    args, beam_args = parse_args(argv)
    require_data_root(args.data_root)
    require_credentials([args.data_root])
    resolve_runner(PipelineOptions(beam_args))  # unknown options and unusable runners fail before the first day
    days = day_range(args.start, args.end)
    require_raw_days(args.data_root, days, examples=not args.skip_examples)
    statuses: list[dict] = []

    def emit(row: dict) -> None:
        statuses.append(row)
        if on_status is not None:
            on_status(row)

    stages = [("features", build_features, lambda d: layout.feature_partition(args.data_root, "user", d))]
    if not args.skip_examples:
        stages.append(("examples", build_examples, lambda d: layout.examples_partition(args.data_root, d)))
    try:
        for day in days:
            for stage, pipeline, partition in stages:
                _run_stage(args, beam_args, day, stage, pipeline, partition(day), emit, statuses)
    except KeyboardInterrupt:
        # Where it stopped: the first stage without a row (Ctrl-C may land just after a row was printed).
        done = {(s["date"], s["stage"]) for s in statuses if not s["status"].startswith("failed")}
        pending = [(d, name) for d in days for name, _, _ in stages if (d.isoformat(), name) not in done]
        day, stage = pending[0] if pending else (days[-1], stages[-1][0])
        raise Interrupted(statuses, day, stage, args.force) from None
    return statuses


def require_raw_days(data_root: str, days: list[datetime.date], examples: bool) -> None:
    """Every day of the range has its raw snapshots and, when its examples are built, a partition of every log
    table (an empty file for a day without events): otherwise a one-line error naming what is missing and the
    days the raw data do cover."""
    tables = SNAPSHOT_TABLES + (LOG_TABLES if examples else ())
    present = {table: set(available_days(data_root, table)) for table in tables}
    missing = {day: [t for t in tables if day not in present[t]] for day in days}
    missing = {day: lacking for day, lacking in missing.items() if lacking}
    if not missing:
        return
    first = min(missing)
    shown = ", ".join(f"raw/{t}/dt={first}" for t in missing[first][:3])
    more = len(missing[first]) - 3
    complete = sorted(set.intersection(*present.values()))
    within = [d for d in days if d not in missing]
    if within and min(missing) > within[-1]:
        advice = f"end the range there with --end={within[-1]} or add the missing files"
    elif within and max(missing) < within[0]:
        advice = f"start the range there with --start={within[0]} or add the missing files"
    else:
        advice = "choose days within the raw data or add the missing files"
    covered = f"the raw data cover {_spans(complete)}" if complete else f"no day under {data_root}/raw has all of it"
    raise FileNotFoundError(
        f"{len(missing)} day(s) of the range lack raw data ({_spans(sorted(missing))}): {first} has no {shown}"
        + (f" (and {more} more)" if more > 0 else "")
        + f"; {covered}: {advice}. Every log table needs a partition every day (an empty file for a day without "
        "events), and every day its four snapshots"
    )


def _spans(days: list[datetime.date]) -> str:
    """Days as runs of consecutive days: ``2026-03-02..2026-03-07, 2026-03-09``."""
    runs: list[list[datetime.date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def _run_stage(args, beam_args, day, stage, pipeline, partition, emit, statuses) -> None:
    """One stage of one day: skipped when complete for today's inputs, else built (or rebuilt, with why)."""
    stage_args = [f"--data_root={args.data_root}", f"--date={day.isoformat()}", *beam_args]
    if stage == "examples" and args.allow_unobserved:
        stage_args.append("--allow_unobserved")
    built = "built"
    if is_complete(partition) and not args.force:
        success = read_success(partition)
        why = stale_reason(success, pipeline.planned_inputs(stage_args))
        if why is None:
            emit({"date": day.isoformat(), "stage": stage, "status": "skipped (complete)", **data_problems(success)})
            return
        built = f"rebuilt ({why})"
    started = time.perf_counter()
    try:
        summary = pipeline.run(stage_args)
    except Exception as exc:
        if was_interrupted():  # Ctrl-C inside the pipeline, re-raised by the runner as another exception
            raise KeyboardInterrupt from exc
        emit({"date": day.isoformat(), "stage": stage, "status": f"failed: {one_line(exc)}"})
        raise BackfillError(statuses, day, stage, exc, args.force) from exc
    rows = summary.get("rows", summary.get("users", 0))
    seconds = round(time.perf_counter() - started, 1)
    row = {"date": day.isoformat(), "stage": stage, "status": built, "rows": rows, "seconds": seconds}
    emit({**row, **data_problems(summary)})


def data_problems(summary: dict) -> dict:
    """From a partition's summary (``_SUCCESS.json``): its rows, the rows its day dead-lettered (examples; features
    dead-letter nothing: the examples of a row's own day do), and the raw files it found unreadable, of its own
    day and of the days it read as context (a features snapshot reads only earlier days: all context)."""
    if "users" in summary:  # features
        return {
            "rows": summary["users"],
            "unreadable_files": [],
            "context_unreadable_files": [f["path"] for f in summary.get("history_unreadable_files", [])],
        }
    row_reasons = (
        count
        for reasons in summary.get("dead_letter", {}).values()
        for reason, count in reasons.items()
        if reason != UNREADABLE_FILE
    )
    return {
        "rows": summary.get("rows", 0),
        "dead_lettered": sum(row_reasons),
        "unreadable_files": [f["path"] for f in summary.get("unreadable_files", [])],
        "context_unreadable_files": [f["path"] for f in summary.get("context_unreadable_files", [])],
    }


def stale_reason(success: dict, planned: dict) -> str | None:
    """Why a complete partition (its ``_SUCCESS.json``) must be rebuilt for the inputs there are now; None if not."""
    if success.get("labels_mature") is False and planned.get("mature"):
        return f"labels were immature; logs now reach {planned['logs_needed_through']}"
    if planned.get("inputs") is None:
        return "its logs are gone"
    return lineage.stale_reason(success.get("inputs"), planned["inputs"])


def resume_hint(day: datetime.date, force: bool) -> str:
    """How to go on from ``day``, where a backfill stopped: the days before it are complete."""
    if force:
        return f"resume from there with --start={day} (with --force the same command would rebuild the finished days)"
    return f"the same command resumes there (finished days are skipped), or resume with --start={day}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a backfill: which days finished and where it stopped."""

    def __init__(self, statuses: list[dict], day: datetime.date, stage: str, force: bool = False) -> None:
        super().__init__(f"interrupted during {stage} of {day}")
        self.statuses, self.day, self.stage, self.force = statuses, day, stage, force


class BackfillError(RuntimeError):
    def __init__(
        self, statuses: list[dict], day: datetime.date, stage: str, cause: Exception, force: bool = False
    ) -> None:
        super().__init__(
            f"backfill stopped at {stage} of {day}: {one_line(cause).rstrip('.')}. The days before it are complete; "
            f"once that is fixed, {resume_hint(day, force)}"
        )
        self.statuses = statuses


# -- the table of status rows ----------------------------------------------------------------------------------------
COLUMNS = (
    ("date", "<12"),
    ("stage", "<10"),
    ("rows", ">10"),
    ("dead-lettered", ">15"),
    ("unreadable", ">12"),
    ("unreadable context", ">20"),
    ("seconds", ">9"),
)


def format_statuses(statuses: list[dict]) -> str:
    """The header and one line per status row. Unreadable files are counted (their paths are in the warning)."""
    lines = ["".join(f"{name:{spec}}" for name, spec in COLUMNS) + "  status"]
    for s in statuses:
        cells = (
            s["date"],
            s["stage"],
            f"{s['rows']:,}" if "rows" in s else "",
            f"{s['dead_lettered']:,}" if s.get("dead_lettered") is not None else ("-" if "rows" in s else ""),
            f"{len(s['unreadable_files']):,}" if "unreadable_files" in s else "",
            f"{len(s['context_unreadable_files']):,}" if "context_unreadable_files" in s else "",
            f"{s['seconds']:.1f}" if "seconds" in s else "",
        )
        lines.append(
            "".join(f"{cell:{spec}}" for cell, (_, spec) in zip(cells, COLUMNS, strict=True)) + f"  {s['status']}"
        )
    return "\n".join(lines)


def totals(statuses: list[dict]) -> list[dict]:
    """One total row per stage: its rows and dead-lettered rows summed, its unreadable files counted once each."""
    out = []
    for stage in STAGES:
        rows = [s for s in statuses if s["stage"] == stage and "rows" in s]
        if not rows:
            continue
        dead = [s["dead_lettered"] for s in rows if s.get("dead_lettered") is not None]
        out.append(
            {
                "date": "total",
                "stage": stage,
                "status": f"{len(rows)} day(s)",
                "rows": sum(s["rows"] for s in rows),
                "dead_lettered": sum(dead) if dead else None,
                "unreadable_files": sorted({p for s in rows for p in s.get("unreadable_files", [])}),
                "context_unreadable_files": sorted({p for s in rows for p in s.get("context_unreadable_files", [])}),
                "seconds": round(sum(s.get("seconds", 0.0) for s in rows), 1),
            }
        )
    return out


def unreadable_warnings(statuses: list[dict]) -> list[str]:
    """One warning per raw file some day found unreadable: the day that owns it dead-letters it (its complete
    blocks are used), and every day that read it as context could not see past the damage."""
    owners: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for s in statuses:
        for path in s.get("unreadable_files", []):
            owners.setdefault(path, []).append(s["date"])
        for path in s.get("context_unreadable_files", []):
            readers.setdefault(path, []).append(f"{s['stage']} {s['date']}")
    lines = []
    for path in sorted(set(owners) | set(readers)):
        try:
            logged = layout.parse_dt(path).isoformat()
        except ValueError:
            logged = "?"
        read_by = sorted(set(readers.get(path, [])))
        lines.append(
            f"warning: unreadable raw file {path} (logged {logged}): its complete blocks were used and its day "
            f"dead-letters it as {UNREADABLE_FILE}"
            + (
                f"; {len(read_by)} partition(s) read it as context ({', '.join(read_by[:4])}"
                + (", ..." if len(read_by) > 4 else "")
                + ")"
                if read_by
                else ""
            )
            + ". Once it is repaired, the next backfill rebuilds what read it"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """The command: status rows as days finish, totals and warnings at the end; an error is one line (status 2),
    Ctrl-C says which days finished (status 130)."""
    configure_logging(logging.WARNING, COMMAND_LOG_FORMAT)  # warnings only: the rows are the command's output
    argv = sys.argv[1:] if argv is None else argv

    def backfill() -> int:
        args, beam_args = parse_args(argv)
        # First thing: the workers' server (when the runner will use one) imports while the first day is planned.
        start_worker_server(PipelineOptions(beam_args))
        progress = Progress(len(day_range(args.start, args.end)) * (1 if args.skip_examples else 2))
        try:
            statuses = run(argv, on_status=progress.row)
        except BackfillError as exc:
            _write_statuses(args.status_json, exc.statuses)
            raise
        except Interrupted as exc:
            progress.clear()
            done = finished_days(exc.statuses, 1 if args.skip_examples else 2)
            print(
                f"interrupted during {exc.stage} of {exc.day}; finished: {', '.join(done) or 'nothing'} (committed); "
                f"{resume_hint(exc.day, exc.force)}",
                file=sys.stderr,
            )
            _write_statuses(args.status_json, exc.statuses)
            return 130
        finally:
            progress.clear()  # before any error line
        progress.finish(statuses)
        _write_statuses(args.status_json, statuses)
        return 0

    return run_cli(backfill, MAKE_VARIABLES)


def finished_days(statuses: list[dict], stages_per_day: int) -> list[str]:
    """Days whose every stage finished (built, rebuilt or skipped as complete)."""
    done: dict[str, int] = {}
    for s in statuses:
        if not s["status"].startswith("failed"):
            done[s["date"]] = done.get(s["date"], 0) + 1
    return sorted(d for d, n in done.items() if n == stages_per_day)


class Progress:
    """Prints each status row as it is decided (the header first), and, on a terminal, a progress bar of the
    stages done on stderr under it; at the end the total rows and the warnings."""

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

    def finish(self, statuses: Iterable[dict]) -> None:
        """The total row of each stage under the rows, then a warning line per unreadable file (on stderr)."""
        self.clear()
        statuses = list(statuses)
        for total in totals(statuses):
            print(format_statuses([total]).split("\n", 1)[1], file=self.out, flush=True)
        for line in unreadable_warnings(statuses):
            print(line, file=self.err, flush=True)

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

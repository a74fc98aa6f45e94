"""The skeleton every daily pipeline run follows (features, examples, scoring): stage, count, run, reconcile, commit.

A run of day D writes each output partition into a staging folder of its own (``<table>/_staging/dt=D-<run>``,
:meth:`DailyRun.stage`), its dead letters into the dead-letter partition's (:meth:`DailyRun.stage_dead_letters`),
and its merged counts into ``_counts.json`` in the first staging folder (:attr:`DailyRun.counts_path`, written by
:class:`podtarget.transforms.beam.sinks.SaveCounts`). After the Beam graph has run (:meth:`DailyRun.execute`;
the run's shuffle folder is deleted whatever happens), the counts are read and the scratch file deleted; a run whose
counts do not reconcile stops there (:meth:`DailyRun.reconcile`), committing nothing. Then :meth:`DailyRun.commit`
swaps every partition in, dead letters first, each with the run's summary as ``_SUCCESS.json``. On a dry run
(``--dry_run``) the graph is only built and validated, and nothing is read or committed.

Nothing is left behind: a run that fails deletes its staging folders, and a successful one leaves no empty
``_staging/`` or ``_shuffle/<pipeline>/`` folder. A run that was killed cannot clean up, so each run first deletes
what a dead run of the same pipeline and day left (its staging folders and shuffle files, or the old version a
killed commit had swapped out; ``transforms/runtime/storage.py:remove_dead_runs``).

    run = DailyRun.open(options, "build_examples")
    staging = run.stage(layout.examples_partition(run.data_root, run.day))
    dead_staging = run.stage_dead_letters(layout.deadletter_partition(run.data_root, "build_examples", run.day))
    pipeline = beam.Pipeline(options=options)
    ...                                   # parts into staging, dead letters into dead_staging,
    counts >> SaveCounts(run.counts_path)  # and the counts
    counts = run.execute(pipeline)
    if counts is None:
        return run.dry_run_summary(files=len(files))
    balance = run.reconcile(rows_ledgers(counts["tables"]))
    return run.commit({... "reconciliation": balance.rows}, dead_letters={"dead_letter": ...})
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions

from ..schemas import layout
from ..transforms.runtime.shuffle import removed_afterwards
from ..transforms.runtime.storage import (
    commit_partition,
    delete_tree,
    new_run_id,
    read_json,
    remove_dead_runs,
    remove_if_empty,
    staging_dir,
)
from .daily_options import build_day, shuffle_folder
from .options import DataRootOptions, require_data_root
from .reconciliation import Ledger, Reconciliation, reconcile

COUNTS_FILE = "_counts.json"


@dataclasses.dataclass
class DailyRun:
    """One run of the daily pipeline ``pipeline`` for ``day``: its staged partitions, counts and timing."""

    options: PipelineOptions
    pipeline: str
    day: datetime.date
    data_root: str
    run_id: str
    started: float
    outputs: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (staging, partition), commit order
    dead_letters: tuple[str, str] | None = None  # (staging, partition)
    shuffle: str | None = None
    state: str | None = None  # the pipeline result's state, once executed

    @classmethod
    def open(cls, options: PipelineOptions, pipeline: str) -> DailyRun:
        """A new run of ``pipeline`` for the ``--date`` of ``options`` (an error when it is missing or not a day);
        its clock starts now."""
        data_root = require_data_root(options.view_as(DataRootOptions).data_root)
        return cls(options, pipeline, build_day(options), data_root, new_run_id(), time.perf_counter())

    def stage(self, partition: str) -> str:
        """The folder this run writes ``partition``'s parts into; partitions are committed in the order staged.
        What dead runs left in that partition's staging area is deleted first."""
        staging = staging_dir(partition, self.run_id)
        _remove_dead_runs_beside(staging)
        self.outputs.append((staging, partition))
        return staging

    def stage_dead_letters(self, partition: str) -> str:
        """The folder this run writes its dead letters into (committed first, with its own small summary)."""
        staging = staging_dir(partition, self.run_id)
        _remove_dead_runs_beside(staging)
        self.dead_letters = (staging, partition)
        return staging

    def shuffle_folder(self) -> str | None:
        """The run's file-backed shuffle folder (None with ``--shuffle=beam``), deleted when :meth:`execute` ends;
        what dead runs of this pipeline and day left there is deleted first."""
        self.shuffle = shuffle_folder(self.options, self.data_root, self.pipeline, self.day, self.run_id)
        if self.shuffle is not None:
            _remove_dead_runs_beside(self.shuffle)
        return self.shuffle

    @property
    def staging_folders(self) -> list[str]:
        """Every staging folder of the run (the dead letters' first)."""
        return ([self.dead_letters[0]] if self.dead_letters else []) + [staging for staging, _ in self.outputs]

    @property
    def counts_path(self) -> str:
        """Where the graph saves its merged counts: run-internal scratch in the first staging folder."""
        folders = [staging for staging, _ in self.outputs] + ([self.dead_letters[0]] if self.dead_letters else [])
        if not folders:
            raise RuntimeError(f"{self.pipeline}: stage a partition before asking where its counts go")
        return layout.join(folders[0], COUNTS_FILE)

    @property
    def dry_run(self) -> bool:
        return bool(self.options.view_as(TestOptions).dry_run)

    def execute(self, pipeline: beam.Pipeline) -> dict | None:
        """Run the graph to its end and return the counts it saved (the scratch file deleted: the summary replaces
        it), or None on a dry run, where nothing ran."""
        try:
            with removed_afterwards(self.shuffle):
                result = pipeline.run()
                result.wait_until_finish()
        except BaseException:
            self.discard()
            raise
        finally:
            if self.shuffle is not None:
                remove_if_empty(*_parents(self.shuffle, 2))  # _shuffle/<pipeline>/, then _shuffle/
        self.state = str(result.state)
        if self.dry_run:
            self.discard()
            return None
        counts = read_json(self.counts_path)
        FileSystems.delete([self.counts_path])
        return counts

    def discard(self) -> None:
        """Delete the run's staging folders (a failed run, or a dry run that wrote nothing to commit)."""
        for staging in self.staging_folders:
            delete_tree(staging)
            remove_if_empty(*_parents(staging, 1))

    def dry_run_summary(self, **sizes: int) -> dict:
        """What a dry run returns: that it was one, the graph's final state, and ``sizes`` (e.g. ``files=12``)."""
        return {"dry_run": True, "state": self.state, **sizes}

    def reconcile(self, ledgers: Mapping[str, Ledger]) -> Reconciliation:
        """The run's reconciliation; a ``RuntimeError`` (and nothing committed) when any balance is off."""
        balance = reconcile(ledgers)
        try:
            balance.require_balanced(f"the counts of {self.pipeline} for {self.day}")
        except RuntimeError:
            self.discard()
            raise
        return balance

    def commit(self, summary: dict, dead_letters: dict | None = None) -> dict:
        """Commit the dead letters (with ``date`` and ``dead_letters`` as their ``_SUCCESS.json``), then every
        staged partition with ``summary``; returns the summary with the run's ``seconds``."""
        if self.dead_letters is not None:
            if dead_letters is None:
                raise ValueError(f"{self.pipeline} staged dead letters: commit needs their summary (dead_letters=)")
            commit_partition(*self.dead_letters, {"date": self.day.isoformat(), **dead_letters})
        for staging, partition in self.outputs:
            commit_partition(staging, partition, summary)
        for staging in self.staging_folders:
            remove_if_empty(*_parents(staging, 1))  # the table's _staging/, unless another run uses it
        return {**summary, "seconds": self.seconds()}

    def seconds(self) -> float:
        """Seconds since the run was opened."""
        return round(time.perf_counter() - self.started, 2)


def _parents(path: str, levels: int) -> list[str]:
    """The ``levels`` folders above ``path``, nearest first."""
    out = []
    for _ in range(levels):
        path = path.rstrip("/").rpartition("/")[0]
        out.append(path)
    return out


def _remove_dead_runs_beside(run_folder: str) -> list[str]:
    """Delete the folders beside ``<parent>/dt=D-<run>`` that dead runs of the same day left."""
    parent, _, name = run_folder.rstrip("/").rpartition("/")
    day_name = name[: len("dt=YYYY-MM-DD")]
    return remove_dead_runs(parent, day_name)

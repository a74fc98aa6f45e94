"""The daily-run skeleton on a one-step graph: staged partitions, counts, dry run, reconciliation, commit."""

import pathlib

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from podtarget.pipelines.reconciliation import rows_ledgers
from podtarget.pipelines.staged_run import DailyRun
from podtarget.transforms.beam.sinks import SaveCounts
from podtarget.transforms.runtime.storage import is_complete, read_success

DAY = "2026-03-03"


def _run(tmp_path: pathlib.Path, counts: list[dict], *extra: str) -> tuple[DailyRun, dict | None]:
    options = PipelineOptions([f"--data_root={tmp_path}", f"--date={DAY}", "--runner=FnApiRunner", *extra])
    run = DailyRun.open(options, "test_pipeline")
    run.stage(str(tmp_path / "out" / f"dt={DAY}"))
    run.stage_dead_letters(str(tmp_path / "dead" / f"dt={DAY}"))
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | beam.Create(counts) | SaveCounts(run.counts_path)
    return run, run.execute(pipeline)


def test_a_run_commits_dead_letters_and_partitions_with_its_summary_and_no_scratch(tmp_path):
    run, counts = _run(
        tmp_path, [{"tables": {"click": {"read": 2, "accepted": 1}}}, {"tables": {"click": {"read": 1}}}]
    )
    assert counts == {"tables": {"click": {"read": 3, "accepted": 1}}}  # merged across the elements
    assert not pathlib.Path(run.counts_path).exists()  # read, then deleted: the summary replaces it
    with pytest.raises(
        RuntimeError, match=r"test_pipeline for 2026-03-03 do not reconcile: \{'click': \{'unaccounted': 2"
    ):
        run.reconcile(rows_ledgers(counts["tables"]))
    assert not is_complete(str(tmp_path / "out" / f"dt={DAY}"))
    assert not (tmp_path / "out" / "_staging").exists()  # a failed run deletes its staging folders

    run, counts = _run(tmp_path, [{"tables": {"click": {"read": 2, "accepted": 2}}}])
    balance = run.reconcile(rows_ledgers(counts["tables"]))
    with pytest.raises(ValueError, match="staged dead letters: commit needs their summary"):
        run.commit({"date": DAY})
    summary = run.commit({"date": DAY, "reconciliation": balance.rows}, dead_letters={"dead_letter": {}})
    assert summary["seconds"] >= 0
    assert read_success(str(tmp_path / "out" / f"dt={DAY}"))["reconciliation"]["click"]["unaccounted"] == 0
    assert read_success(str(tmp_path / "dead" / f"dt={DAY}")) == {"date": DAY, "dead_letter": {}, "files": []}
    assert not [staging for staging, _ in run.outputs if pathlib.Path(staging).exists()]  # swapped in
    # No empty scratch folders are left beside the partitions.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"dt={DAY}"]
    assert sorted(p.name for p in (tmp_path / "dead").iterdir()) == [f"dt={DAY}"]


def test_a_dry_run_reads_and_commits_nothing(tmp_path):
    run, counts = _run(tmp_path, [{"tables": {}}], "--dry_run=True")
    assert counts is None
    assert run.dry_run_summary(files=3) == {"dry_run": True, "state": run.state, "files": 3}
    assert not (tmp_path / "out" / f"dt={DAY}").exists()


def test_counts_need_a_staged_partition_to_live_in(tmp_path):
    run = DailyRun.open(PipelineOptions([f"--data_root={tmp_path}", f"--date={DAY}"]), "test_pipeline")
    with pytest.raises(RuntimeError, match="stage a partition before asking where its counts go"):
        _ = run.counts_path

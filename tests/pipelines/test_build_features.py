"""The features run reconciles every input row: each history row is used, filtered or rejected, each user of the
snapshot gets a feature row, and a run whose counts do not add up commits nothing."""

import datetime

import pytest

from podtarget.pipelines import build_features
from podtarget.schemas import layout
from podtarget.transforms.beam import feature_snapshots
from podtarget.transforms.runtime.storage import is_complete, read_success
from tests.pipelines.handmade import HandmadeWorld

START = datetime.date(2026, 3, 2)
D = START + datetime.timedelta(days=1)
RUNNER = "--runner=FnApiRunner"


def _world(root) -> HandmadeWorld:
    """History of D (logged on the day before): streams used, a duplicate, a row its day rejects; a follow, an ad."""
    w = HandmadeWorld(root / "data", START, n_days=3)
    w.stream(1, 1, w.ts(0, 10))
    w.stream(1, 2, w.ts(0, 11), event_id="dup-stream")
    w.stream(1, 2, w.ts(0, 11), event_id="dup-stream")
    w.stream(2, 1, w.ts(0, 12), user_id=None)  # rejected (null_user_id) by its own day's checks
    w.follow(3, 2, w.ts(0, 9))
    w.ad(1, 1, w.ts(0, 8))
    w.write()
    return w


def test_every_history_row_and_every_user_is_accounted_for(tmp_path):
    w = _world(tmp_path)
    summary = build_features.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--n_buckets=4"])
    balance = summary["reconciliation"]
    assert balance["stream"] == {"read": 4, "used": 2, "rejected": 1, "filtered": 1, "unaccounted": 0}
    assert balance["follow"] == {"read": 1, "used": 1, "rejected": 0, "filtered": 0, "unaccounted": 0}
    assert balance["ad_impression"] == {"read": 1, "used": 1, "rejected": 0, "filtered": 0, "unaccounted": 0}
    assert balance["user"] == {"read": 3, "used": 3, "rejected": 0, "filtered": 0, "unaccounted": 0}
    assert summary["history_rows_filtered"]["stream"] == {"duplicate": 1}
    assert read_success(layout.feature_partition(w.root, "user", D))["reconciliation"] == balance
    assert "_counts.json" not in read_success(layout.feature_partition(w.root, "user", D))["files"]


def test_rows_lost_between_reading_and_the_buckets_fail_the_run_and_commit_nothing(tmp_path, monkeypatch):
    w = _world(tmp_path)
    gather = feature_snapshots._gather

    def losing_a_stream(parts, table, id_column):
        rows, duplicates = gather(parts, table, id_column)
        return (rows.slice(1) if table == "stream" else rows), duplicates

    # In this process (no worker processes), so the bucket DoFn sees the patched function.
    monkeypatch.setattr(feature_snapshots, "_gather", losing_a_stream)
    args = [f"--data_root={w.root}", f"--date={D}", RUNNER, "--n_buckets=1", "--bucket_processes=0"]
    expected = rf"the counts of build_features for {D} do not reconcile: \{{'stream': \{{'unaccounted': 1\}}\}}"
    with pytest.raises(RuntimeError, match=expected):
        build_features.run(args)
    for entity in ("user", "podcast"):
        assert not is_complete(layout.feature_partition(w.root, entity, D))

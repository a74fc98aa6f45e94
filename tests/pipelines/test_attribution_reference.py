"""The examples pipeline against a slow reference of the rules in docs/design.md (``reference_attribution.py``), per
impression and label, on a tiny world with every kind of dirt on both sides of the days compared."""

import datetime
import json

import pyarrow.parquet as pq
import pytest

from podtarget.pipelines import build_examples, build_features
from podtarget.schemas import layout
from tests.conftest import simulate
from tests.pipelines.reference_attribution import ReferenceWorld

DIRTY_RATE = 0.05  # every kind of dirt on 5% of rows each: about one row in four is late, duplicated or bad
RUNNER = "--runner=FnApiRunner"
LABELS = ("label_stream", "label_click", "label_follow", "label_like")


@pytest.fixture(scope="module")
def dirty_world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("reference") / "data")
    summary = simulate(root, f"--dirty_rate={DIRTY_RATE}", "--seed=11")
    start = datetime.date.fromisoformat(summary["world"]["start_date"])
    days = [start + datetime.timedelta(days=k) for k in (2, 3)]  # context before and after each of them
    built = {}
    for day in days:
        build_features.run([f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=3"])
        built[day] = build_examples.run(
            [f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=3", "--allow_unobserved"]
        )
    return root, days, built, ReferenceWorld(root)


def test_the_compared_days_have_dirt_in_their_context_on_both_sides(dirty_world):
    _, days, _, reference = dirty_world
    for day in days:
        dirt = reference.dirt_around(day)
        for side in ("before", "after"):
            for kind in ("late", "bad_timestamp", "null_user_id", "unknown_user", "unknown_podcast"):
                assert dirt.get(f"{side}:{kind}", 0) > 0, (day, side, kind, dirt)


def test_labels_equal_the_reference_per_impression_and_label(dirty_world):
    root, days, _, reference = dirty_world
    for day in days:
        expected = reference.labels(day)
        rows = pq.read_table(layout.examples_partition(root, day)).to_pylist()
        got = {r["impression_id"]: {label: r[label] for label in LABELS} for r in rows}
        assert len(rows) == len(got)  # one example per impression
        assert sorted(got) == sorted(expected), day
        differing = {i: (got[i], expected[i]) for i in expected if got[i] != expected[i]}
        assert not differing, (day, len(differing), list(differing.items())[:5])
        positives = {label: sum(v[label] == 1 for v in expected.values()) for label in LABELS}
        assert positives["label_stream"] > 20 and positives["label_click"] > 5, positives  # a comparison with teeth


def test_orphan_clicks_and_their_reasons_equal_the_reference(dirty_world):
    root, days, built, reference = dirty_world
    for day in days:
        expected = reference.orphan_clicks(day)
        dead = pq.read_table(layout.deadletter_partition(root, "build_examples", day)).to_pylist()
        got = {
            json.loads(r["record_json"])["event_id"]: r["reason"]
            for r in dead
            if r["reason"] in ("click_without_impression", "click_of_rejected_impression")
        }
        assert got == expected, day
        assert all(r["unaccounted"] == 0 for r in built[day]["reconciliation"].values())

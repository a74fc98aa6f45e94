"""Exact scenarios through the real features and examples pipelines, on a hand-made world."""

import datetime
import hashlib
import pathlib
import re

import pyarrow.parquet as pq
import pytest

from podtarget.pipelines import build_examples, build_features
from podtarget.schemas import layout
from podtarget.schemas.derived import DEAD_LETTER, EXAMPLES
from podtarget.transforms.beam import examples as example_steps
from tests.pipelines.handmade import HandmadeWorld

START = datetime.date(2026, 3, 2)
D = START + datetime.timedelta(days=1)
RUNNER = "--runner=FnApiRunner"


def _build(root: str, day: datetime.date, *extra: str) -> dict:
    build_features.run([f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=4"])
    return build_examples.run([f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=4", *extra])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    w = HandmadeWorld(tmp_path_factory.mktemp("handmade") / "data", START, n_days=12)
    ids = {}
    # A stream before the impression is not credited to it.
    w.stream(1, 1, w.ts(1, 10))
    ids["stream_before"] = w.ad(1, 1, w.ts(1, 11))
    # A stream after the 72 h window is not credited.
    ids["after_window"] = w.ad(1, 2, w.ts(1, 9))
    w.stream(1, 2, w.ts(1, 9) + 73 * 3_600_000)
    # An ad then a promotion of the same show: the promotion takes the stream (last touch across channels).
    ids["ad_then_promo.ad"] = w.ad(2, 1, w.ts(1, 8))
    ids["ad_then_promo.promo"] = w.promo(2, 1, w.ts(1, 9))
    w.stream(2, 1, w.ts(1, 12))
    w.click(ids["ad_then_promo.ad"], 2, w.ts(1, 8) + 20_000)
    # Two ads of the same show: the later one takes it.
    ids["two_ads.first"] = w.ad(2, 2, w.ts(1, 8))
    ids["two_ads.second"] = w.ad(2, 2, w.ts(1, 10))
    w.stream(2, 2, w.ts(1, 11))
    # A duplicated stream event counts once (and is counted as a filtered duplicate).
    ids["duplicate_stream"] = w.ad(3, 1, w.ts(1, 8))
    w.stream(3, 1, w.ts(1, 9), event_id="dup-stream")
    w.stream(3, 1, w.ts(1, 9), event_id="dup-stream")
    # A late stream (logged two days after it happened) inside the window counts.
    ids["late_stream"] = w.ad(3, 2, w.ts(1, 8))
    w.stream(3, 2, w.ts(1, 20), logged=3)
    # A short stream does not count.
    ids["short_stream"] = w.ad(3, 3, w.ts(1, 8))
    w.stream(3, 3, w.ts(1, 9), ms=30_000)
    # A follow after a promotion.
    ids["follow"] = w.promo(1, 3, w.ts(1, 7))
    w.follow(1, 3, w.ts(1, 15))
    # A click without an impression is dead-lettered.
    w.click("never-served", 1, w.ts(1, 13))
    # History for the feature snapshot: one qualifying stream before D, one on D (must not be seen).
    w.stream(1, 3, w.ts(0, 12))
    w.stream(1, 3, w.ts(1, 12))
    w.write()
    summary = _build(w.root, D)
    examples = pq.read_table(layout.examples_partition(w.root, D)).to_pylist()
    return w, ids, summary, {r["impression_id"]: r for r in examples}


@pytest.mark.parametrize(
    ("case", "label", "expected"),
    [
        ("stream_before", "label_stream", 0),
        ("after_window", "label_stream", 0),
        ("ad_then_promo.ad", "label_stream", 0),
        ("ad_then_promo.promo", "label_stream", 1),
        ("ad_then_promo.ad", "label_click", 1),
        ("ad_then_promo.promo", "label_click", 0),
        ("two_ads.first", "label_stream", 0),
        ("two_ads.second", "label_stream", 1),
        ("duplicate_stream", "label_stream", 1),
        ("late_stream", "label_stream", 1),
        ("short_stream", "label_stream", 0),
        ("follow", "label_follow", 1),
        ("follow", "label_like", 0),
    ],
)
def test_labels(scenario, case, label, expected):
    _, ids, _, examples = scenario
    assert examples[ids[case]][label] == expected


def test_every_row_is_accounted_for_and_defects_are_dead_lettered(scenario):
    w, _, summary, examples = scenario
    assert len(examples) == summary["rows"] == 10
    assert all(r["unaccounted"] == 0 for r in summary["reconciliation"].values())
    assert summary["filtered"] == {"stream": {"duplicate": 1}}
    assert summary["dead_letter"] == {"click": {"click_without_impression": 1}}
    dead = pq.read_table(layout.deadletter_partition(w.root, "build_examples", D))
    assert dead.schema.equals(DEAD_LETTER, check_metadata=False)
    [row] = dead.to_pylist()
    assert row["reason"] == "click_without_impression" and "never-served" in row["record_json"]
    assert summary["labels_mature"] is True


def test_examples_follow_the_contract_and_features_never_see_the_future(scenario):
    w, ids, _, examples = scenario
    table = pq.read_table(layout.examples_partition(w.root, D))
    assert table.schema.equals(EXAMPLES, check_metadata=False)
    users = {r["user_id"]: r for r in pq.read_table(layout.feature_partition(w.root, "user", D)).to_pylist()}
    assert users[1]["user_streams_28d"] == 1  # the stream of D itself is not visible in D's snapshot
    assert users[1]["user_recent_podcasts_28d"] == [3]
    assert examples[ids["follow"]]["user_listened_podcast_28d"] is True
    assert examples[ids["stream_before"]]["user_listened_podcast_28d"] is False


def _digest(partition: str) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(pathlib.Path(partition).iterdir())}


def test_rerun_replaces_the_partition_with_identical_content(scenario):
    w, _, _, _ = scenario
    partition = layout.examples_partition(w.root, D)
    before = _digest(partition)
    build_examples.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--n_buckets=4"])
    assert _digest(partition) == before


def test_a_crash_mid_write_leaves_the_previous_partition_intact(scenario, monkeypatch):
    w, _, _, _ = scenario
    partition = layout.examples_partition(w.root, D)
    before = _digest(partition)

    calls = {"n": 0}
    real = example_steps.assemble_examples

    def fail_on_second_bucket(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(example_steps, "assemble_examples", fail_on_second_bucket)
    # In this process: worker processes would not see the patch (a failure in a worker fails the bundle too, see
    # tests/transforms/runtime/test_bucket_work.py; the commit after the run is the same).
    with pytest.raises(Exception, match="disk full"):
        build_examples.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--n_buckets=4", "--bucket_processes=0"])
    assert calls["n"] >= 2  # buckets computed side by side may start one more before the failure surfaces
    assert _digest(partition) == before


def test_immature_labels_are_refused_or_marked_unobserved(scenario):
    w, _, _, _ = scenario
    late_day = START + datetime.timedelta(days=6)
    build_features.run([f"--data_root={w.root}", f"--date={late_day}", RUNNER])
    with pytest.raises(
        ValueError,
        match="labels of 2026-03-08 are not mature: .* need logs through 2026-03-17, but "
        "logs end on 2026-03-13. Pass --allow_unobserved",
    ):
        build_examples.run([f"--data_root={w.root}", f"--date={late_day}", RUNNER])


def test_missing_features_fail_with_the_command_to_run(tmp_path):
    w = HandmadeWorld(tmp_path / "data", START, n_days=3)
    w.ad(1, 1, w.ts(1, 8))
    w.write()
    message = "features/user for 2026-03-03 are missing or incomplete; run `make features DATE=2026-03-03` first"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        build_examples.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--allow_unobserved"])
    build_features.run([f"--data_root={w.root}", f"--date={D}", RUNNER])
    summary = build_examples.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--allow_unobserved"])
    assert summary["labels_mature"] is False
    [row] = pq.read_table(layout.examples_partition(w.root, D)).to_pylist()
    assert row["label_stream"] is None and row["label_follow"] is None  # unobserved, never a silent negative


def test_a_missing_log_partition_is_named_with_its_table_and_day(tmp_path):
    import shutil

    w = HandmadeWorld(tmp_path / "data", START, n_days=3)
    w.ad(1, 1, w.ts(1, 8))
    w.write()
    build_features.run([f"--data_root={w.root}", f"--date={D}", RUNNER])
    for table in ("like", "click"):
        shutil.rmtree(layout.raw_partition(w.root, table, D))
    message = (
        f"no complete set of raw logs for {D} under {w.root}: raw/click/dt={D}, raw/like/dt={D} are missing. Every "
        "log table needs a partition every day (an empty file for a day without events)"
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        build_examples.run([f"--data_root={w.root}", f"--date={D}", RUNNER, "--allow_unobserved"])


def test_owned_events_of_users_without_impressions_are_still_accounted_for(tmp_path):
    """A day with streams but no impression at all for some users: those streams are read, accepted, reconciled."""
    w = HandmadeWorld(tmp_path / "data", START, n_days=12)
    w.ad(1, 1, w.ts(1, 8))
    for user in (2, 3):  # no impressions on D for these users, whatever bucket they land in
        w.stream(user, 2, w.ts(1, 9))
    w.write()
    summary = _build(w.root, D, "--n_buckets=16")
    assert summary["reconciliation"]["stream"] == {
        "read": 2,
        "used": 2,
        "dead_lettered": 0,
        "filtered": 0,
        "unaccounted": 0,
    }


def test_a_click_on_a_late_logged_impression_is_not_an_orphan(tmp_path):
    """An impression served on D but logged on D+1, clicked on D: its click must find it among D+1's impressions."""
    w = HandmadeWorld(tmp_path / "data", START, n_days=12)
    w.ad(1, 1, w.ts(1, 8))
    late = w.ad(2, 3, w.ts(1, 22), logged=2)  # a (user, show) pair with no impression logged on D
    w.click(late, 2, w.ts(1, 22) + 30_000)
    w.write()
    summary = _build(w.root, D)
    assert summary["dead_letter"] == {}


def test_attribution_windows_are_configurable_per_outcome_and_channel():
    from apache_beam.options.pipeline_options import PipelineOptions

    from podtarget.pipelines.build_examples import BuildExamplesOptions, attribution_config
    from podtarget.schemas.units import MS_PER_DAY

    opts = PipelineOptions(["--stream_window_hours=ad:48,promo:24", "--follow_window_days=3"])
    config = attribution_config(opts.view_as(BuildExamplesOptions))
    assert config.window_ms("stream", "ad") == 48 * 3_600_000
    assert config.window_ms("stream", "promo") == 24 * 3_600_000
    assert config.window_ms("follow", "promo") == 3 * MS_PER_DAY
    assert config.window_ms("like", "ad") == 7 * MS_PER_DAY
    bad = PipelineOptions(["--stream_window_hours=ad:48"]).view_as(BuildExamplesOptions)
    with pytest.raises(ValueError, match=r"--stream_window_hours must be a number or 'ad:N,promo:M'.*got 'ad:48'"):
        attribution_config(bad)

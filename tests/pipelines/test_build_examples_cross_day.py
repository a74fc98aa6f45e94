"""Attribution across logging days, on a hand-made world: late-logged impressions, context rows their own day
rejects, clicks of rejected impressions, an empty day and a corrupt file, read as context and by its own day.

D is day offset 3, so it has three days of logs before it and eight after.
"""

import datetime
import json
import pathlib

import pyarrow.parquet as pq
import pytest

from podtarget.model.data import ExampleTable
from podtarget.pipelines import build_examples, build_features
from podtarget.schemas import layout
from podtarget.schemas.derived import EXAMPLES
from tests.pipelines.handmade import HandmadeWorld

START = datetime.date(2026, 3, 2)
D_OFFSET = 3
D = START + datetime.timedelta(days=D_OFFSET)
RUNNER = "--runner=FnApiRunner"


def _build(root: str, day: datetime.date, *extra: str) -> dict:
    build_features.run([f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=2"])
    return build_examples.run([f"--data_root={root}", f"--date={day}", RUNNER, "--n_buckets=2", *extra])


def _examples(root: str, day: datetime.date) -> dict[str, dict]:
    return {r["impression_id"]: r for r in pq.read_table(layout.examples_partition(root, day)).to_pylist()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = HandmadeWorld(tmp_path_factory.mktemp("cross_day") / "data", START, n_days=13)
    ids = {}
    before, d, after = D_OFFSET - 1, D_OFFSET, D_OFFSET + 1
    # 1a. Served the day before D, logged on D: its stream and click were logged the day before D.
    ids["late_logged"] = w.ad(1, 1, w.ts(before, 10), logged=d)
    w.stream(1, 1, w.ts(before, 12))
    w.click(ids["late_logged"], 1, w.ts(before, 10) + 60_000)
    # 1b. Late-logged T, then C logged the day before D; the stream (logged late, on D) belongs to C only.
    ids["late_target"] = w.ad(1, 2, w.ts(before, 10), logged=d)
    ids["earlier_logged_winner"] = w.ad(1, 2, w.ts(before, 11))
    w.stream(1, 2, w.ts(before, 23), logged=d)
    # 2a. The stream after T3 lacks a required field (its own day rejects it); the follow names a show missing from
    # its own day's snapshot (unknown_podcast there): neither may credit T3.
    ids["rejected_outcomes"] = w.ad(1, 3, w.ts(d, 8))
    w.stream(1, 3, w.ts(after, 9), episode_id=None)
    w.follow(1, 3, w.ts(after, 10))
    w.absent[("podcast", after)] = {3}
    w.follow(2, 2, w.ts(after, 11))  # a valid follow that day, for the feature history
    # 2b. A later promotion with a null campaign_id cannot take the stream from T4.
    ids["rejected_competitor"] = w.ad(2, 1, w.ts(d, 8))
    w.promo(2, 1, w.ts(after, 9), campaign_id=None)
    w.stream(2, 1, w.ts(after, 10))
    # 2c. A stream logged three days after it happened is a bad_timestamp on its own day (lateness is 2).
    ids["too_late_stream"] = w.ad(2, 2, w.ts(d, 8))
    w.stream(2, 2, w.ts(d, 20), logged=d + 3)
    # Cross-day duplicate: the same impression logged the day before D and again on D is an example of that day.
    ids["logged_twice"] = w.ad(2, 3, w.ts(before, 20), impression_id="logged-twice")
    w.ad(2, 3, w.ts(before, 20), logged=d, impression_id="logged-twice")
    # 3. Clicks of rejected impressions: one logged the day before (null campaign_id), one of D (unknown creative).
    rejected_before = w.ad(3, 1, w.ts(before, 22), campaign_id=None)
    w.click(rejected_before, 3, w.ts(d, 0.5))
    rejected_today = w.ad(3, 2, w.ts(d, 8), creative_id=99)
    w.click(rejected_today, 3, w.ts(d, 8) + 30_000)
    w.click("never-served", 3, w.ts(d, 9))
    # 5. A corrupt context file: the follows of D + 2 (history for later features too).
    for k in range(40):
        w.follow(3, 3, w.ts(d + 2, 1 + k / 10))
    w.write()
    follows = pathlib.Path(layout.part_file(layout.raw_partition(w.root, "follow", D + datetime.timedelta(days=2)), 0))
    follows.write_bytes(follows.read_bytes()[:-40])

    before_day = D - datetime.timedelta(days=1)
    summaries = {before_day: _build(w.root, before_day), D: _build(w.root, D)}
    return w, ids, summaries


def test_a_late_logged_impression_gets_the_outcomes_logged_before_its_day(world):
    w, ids, _ = world
    row = _examples(w.root, D)[ids["late_logged"]]
    assert (row["label_stream"], row["label_click"]) == (1, 1)


def test_an_outcome_credits_one_impression_across_partitions(world):
    w, ids, _ = world
    before = _examples(w.root, D - datetime.timedelta(days=1))
    today = _examples(w.root, D)
    assert before[ids["earlier_logged_winner"]]["label_stream"] == 1
    assert today[ids["late_target"]]["label_stream"] == 0  # the later impression, logged before D, took it


def test_context_rows_their_own_day_rejects_never_act(world):
    w, ids, _ = world
    today = _examples(w.root, D)
    assert today[ids["rejected_outcomes"]]["label_stream"] == 0  # null episode_id
    assert today[ids["rejected_outcomes"]]["label_follow"] == 0  # show unknown to that day's snapshot
    assert today[ids["rejected_competitor"]]["label_stream"] == 1  # the promotion with a null campaign is no rival
    assert today[ids["too_late_stream"]]["label_stream"] == 0


def test_an_impression_logged_again_later_is_a_duplicate_not_a_second_example(world):
    w, ids, summaries = world
    assert ids["logged_twice"] in _examples(w.root, D - datetime.timedelta(days=1))
    assert ids["logged_twice"] not in _examples(w.root, D)
    assert summaries[D]["filtered"]["ad_impression"] == {"duplicate": 1}
    assert summaries[D]["reconciliation"]["ad_impression"]["unaccounted"] == 0


def test_clicks_of_rejected_impressions_are_dead_lettered_with_that_reason(world):
    w, _, summaries = world
    assert summaries[D]["dead_letter"]["click"] == {"click_of_rejected_impression": 2, "click_without_impression": 1}
    dead = pq.read_table(layout.deadletter_partition(w.root, "build_examples", D)).to_pylist()
    clicks = {json.loads(r["record_json"])["impression_id"]: r for r in dead if r["table"] == "click"}
    assert clicks["never-served"]["reason"] == "click_without_impression"
    rejected = [r for r in clicks.values() if r["reason"] == "click_of_rejected_impression"]
    assert len(rejected) == 2 and all("rejected by the run of the day that logged it" in r["detail"] for r in rejected)
    assert summaries[D]["reconciliation"]["click"]["unaccounted"] == 0


def test_a_corrupt_context_file_is_reported_by_the_days_that_read_it(world):
    w, _, summaries = world
    [lost] = summaries[D]["context_unreadable_files"]
    assert lost["table"] == "follow" and lost["day"] == (D + datetime.timedelta(days=2)).isoformat()
    assert 0 <= lost["rows_salvaged"] < 40
    assert "is corrupt" in build_examples.format_summary(summaries[D])
    assert summaries[D]["unreadable_files"] == []  # not D's file: its own day dead-letters it


def test_a_corrupt_file_of_the_day_itself_is_counted_with_its_dead_letters(world, tmp_path):
    """The day that logged the corrupt follows dead-letters the file once, as ``unreadable_file``, and the per-reason
    counts of its ``_SUCCESS.json`` are exactly the records of its dead-letter partition."""
    import shutil

    w, _, _ = world
    root = str(tmp_path / "data")
    shutil.copytree(w.root, root)
    owner = D + datetime.timedelta(days=2)
    summary = _build(root, owner, "--allow_unobserved")
    [lost] = summary["unreadable_files"]
    assert lost["table"] == "follow" and lost["day"] == owner.isoformat()
    assert summary["dead_letter"]["follow"]["unreadable_file"] == 1
    dead = pq.read_table(layout.deadletter_partition(root, "build_examples", owner)).to_pylist()
    records: dict[str, dict[str, int]] = {}
    for r in dead:
        records.setdefault(r["table"], {}).setdefault(r["reason"], 0)
        records[r["table"]][r["reason"]] += 1
    assert records == summary["dead_letter"]
    # Rows are reconciled without the file: the salvaged rows are read and used, the rest were never read.
    assert summary["reconciliation"]["follow"]["read"] == lost["rows_salvaged"]
    assert summary["reconciliation"]["follow"]["dead_lettered"] == 0


def test_a_day_without_impressions_commits_an_empty_partition(tmp_path):
    w = HandmadeWorld(tmp_path / "data", START, n_days=13)
    w.ad(1, 1, w.ts(D_OFFSET - 1, 8))
    w.stream(2, 2, w.ts(D_OFFSET, 9))  # D logs only a stream
    w.write()
    summary = _build(w.root, D)
    assert summary["rows"] == 0
    assert summary["reconciliation"]["stream"]["used"] == 1
    partition = layout.examples_partition(w.root, D)
    assert pathlib.Path(layout.success_marker(partition)).exists()
    table = pq.read_table(partition)  # an empty part with the contract's schema: every reader sees a valid empty day
    assert table.num_rows == 0 and table.schema.equals(EXAMPLES, check_metadata=False)
    examples = ExampleTable.open(layout.join(w.root, "examples"))
    assert D in examples.files and examples.skipped == []


def test_feature_history_skips_rows_their_own_day_rejects_and_reports_corrupt_files(world):
    """The follow of show 3 logged on D + 1, whose snapshot lacks show 3, is no more history than it is an outcome;
    a valid follow the same day counts."""
    w, _, _ = world
    day = D + datetime.timedelta(days=3)
    summary = build_features.run([f"--data_root={w.root}", f"--date={day}", RUNNER, "--n_buckets=2"])
    users = {r["user_id"]: r for r in pq.read_table(layout.feature_partition(w.root, "user", day)).to_pylist()}
    assert users[1]["user_follows_28d"] == 0
    assert users[2]["user_follows_28d"] == 1 and users[2]["user_followed_podcasts_28d"] == [2]
    # The corrupt follows of D + 2 are history here: the features say so too.
    [lost] = summary["history_unreadable_files"]
    assert lost["table"] == "follow" and "is corrupt" in build_features.describe({**summary, "seconds": 1.0})

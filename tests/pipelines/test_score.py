"""The scoring pipeline on a hand-made day whose every answer is known: eligibility, heads, ranks, cuts, dead
letters, reconciliation, formats, determinism, and clear errors before any work for bad models and inputs."""

import datetime
import hashlib
import json
import pathlib
import shutil

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podtarget.model.artifacts import ArtifactError, save_model
from podtarget.pipelines import score
from podtarget.schemas import layout
from podtarget.schemas.derived import AUDIENCES, DEAD_LETTER, EXAMPLES, USER_RANKINGS, stored_schema
from podtarget.transforms.runtime.day_inputs import MissingInputError
from tests.pipelines.scoring_world import (
    DAY,
    HEAD_LOGITS,
    _network,
    campaign,
    constant_model,
    creative,
    podcast,
    sigmoid32,
    streams_model,
    user,
    write_day,
)

USERS = [
    [
        user(1, user_streams_28d=5, user_recent_podcasts_28d=[1]),
        user(2, user_account_type="premium", user_streams_28d=50),
        user(3, user_country="US", user_age_bucket="35-44", user_language="en"),
        user(4, user_age_bucket="18-24", user_followed_podcasts_28d=[1], user_streams_28d=20),
        user(5, user_streams_28d=5),
    ],
    [
        user(6, user_country="NO", user_age_bucket="55+", user_account_type="premium", user_followed_podcasts_28d=[3]),
        user(7, user_country=None, user_streams_28d=100),
        user(8, user_country="US", user_streams_28d=7),
    ],
]
CAMPAIGNS = [
    campaign(10, "ad", "stream", 1, target_countries=["SE"]),
    campaign(11, "ad", "click", 2, target_age_buckets=["25-34"], budget_micros=1_800_000),
    campaign(12, "promo", "stream", 3),
    campaign(13, "promo", "follow", 2, target_account_types=["premium"]),
    campaign(14, "ad", "follow", 1, target_countries=["US"]),
    campaign(15, "promo", "click", 3, target_countries=["JP"]),  # nobody in JP: no eligible user
    campaign(16, "ad", "stream", 2),  # no creative
    campaign(17, "promo", "stream", 99),  # a show without features
    campaign(18, "ad", "awareness", 1),  # an objective no head maps
    campaign(19, "ad", "stream", 1, end_date=DAY - datetime.timedelta(days=1)),  # ended: not active
    campaign(20, "promo", "stream", 1, target_countries=["US"]),
]
CREATIVES = [creative(101, 10, "display"), creative(100, 10), creative(110, 11, "video"), creative(140, 14)]
CREATIVES += [creative(180, 18), creative(190, 19)]
PODCASTS = [podcast(1), podcast(2, "en"), podcast(3)]
# Campaign 14 (ad, follow) maps to Follow by default, a promotion head ad rows never train: dead-lettered
# (untrained_head) unless --transfers declares the use.
ELIGIBLE = {10: [1, 5], 11: [1, 5, 7, 8], 12: [1, 2, 3, 4, 5, 7, 8], 13: [2, 6], 20: [3, 8]}
HEADS = {10: "AdStream", 11: "Click", 12: "PromotionStream", 13: "Follow", 20: "PromotionStream"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"constant": constant_model(root / "constant"), "streams": streams_model(root / "streams")}


@pytest.fixture
def day_root(tmp_path):
    return write_day(tmp_path / "data", USERS, PODCASTS, CAMPAIGNS, CREATIVES)


def _score(root: str, model: str, *extra: str) -> dict:
    return score.run([f"--data_root={root}", f"--date={DAY}", f"--model={model}", "--runner=FnApiRunner", *extra])


def _read(partition: str) -> pa.Table:
    parts = sorted(pathlib.Path(partition).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else None


def test_audiences_rank_eligible_users_under_the_head_of_each_campaign(day_root, models):
    summary = _score(day_root, models["constant"], "--users_per_block=2")
    audiences = _read(layout.audience_partition(day_root, DAY))
    assert audiences.schema == AUDIENCES
    by_campaign = {}
    for row in audiences.to_pylist():
        by_campaign.setdefault(row["campaign_id"], []).append(row)
    # Eligibility: targeting lists (empty = all), ads only to free users, no user who follows the show.
    assert {c: [r["user_id"] for r in rows] for c, rows in by_campaign.items()} == ELIGIBLE
    for c, rows in by_campaign.items():
        head = HEADS[c]
        assert {r["head"] for r in rows} == {head}
        assert all(r["score"] == pytest.approx(sigmoid32(HEAD_LOGITS[head]), abs=1e-6) for r in rows)
        # Equal scores: ranked by user id; every user of an untruncated audience, with its eligible count.
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert {(r["audience_size"], r["eligible_users"], r["cut"]) for r in rows} == {(len(rows), len(rows), "top_k")}
    # Every active campaign is accounted for: scored, or dead-lettered with its reason.
    assert summary["campaigns"] == {
        "in_snapshot": 11,
        "active": 10,
        "scored": 5,
        "dead_letter": {
            "no_creative": 1,
            "unknown_podcast": 1,
            "unknown_objective": 1,
            "untrained_head": 1,
            "no_eligible_users": 1,
        },
    }
    dead = pq.read_table(pathlib.Path(layout.deadletter_partition(day_root, "score", DAY)) / "part-00000.parquet")
    assert dead.schema == DEAD_LETTER
    reasons = {json.loads(r["record_json"])["campaign_id"]: r["reason"] for r in dead.to_pylist()}
    assert reasons == {
        14: "untrained_head",
        15: "no_eligible_users",
        16: "no_creative",
        17: "unknown_podcast",
        18: "unknown_objective",
    }
    details = {json.loads(r["record_json"])["campaign_id"]: r["detail"] for r in dead.to_pylist()}
    assert "head Follow was trained for label_follow on promo rows, not for ad:follow" in details[14]
    assert "--transfers=ad:follow=Follow" in details[14]
    pairs = summary["pairs"]
    assert pairs["considered"] == 8 * 6 and pairs["eligible"] == pairs["scored"] == 17
    assert pairs["ineligible"]["follows_show"] == 2 and sum(pairs["ineligible"].values()) == 48 - 17
    assert summary["per_campaign"]["15"] == {"eligible": 0, "audience_size": 0}
    assert summary["reconciliation"]["campaigns"]["unaccounted"] == 0
    assert summary["users"]["read"] == 8 and summary["users"]["blocks"] == 5


def test_a_head_serves_another_channel_only_as_a_declared_transfer(day_root, models):
    summary = _score(day_root, models["constant"], "--transfers=ad:follow=Follow")
    audiences = _read(layout.audience_partition(day_root, DAY)).to_pylist()
    assert [(r["user_id"], r["head"]) for r in audiences if r["campaign_id"] == 14] == [(3, "Follow"), (8, "Follow")]
    assert "untrained_head" not in summary["campaigns"]["dead_letter"] and summary["campaigns"]["scored"] == 6
    assert summary["settings"]["transfers"] == "ad:follow=Follow"
    # A stream head for a click campaign is a transfer too (another label), even on rows that trained it.
    summary = _score(day_root, models["constant"], "--heads=ad:*=AdStream,promo:*=AdStream")
    # 11 and 15 (click), 13 and 14 (follow), 18 (awareness): AdStream learnt label_stream only.
    assert summary["campaigns"]["dead_letter"]["untrained_head"] == 5
    assert summary["campaigns"]["scored"] == 3  # 10, 12, 20 (stream; AdStream trains on promo rows too)


def test_scores_are_each_heads_calibrated_probability_for_the_campaigns_channel(day_root, models, tmp_path):
    # The constant model, with the calibration a run fits: AdStream on ad rows shifted down by 2 logits, Click on
    # ad rows halved in spread, Click on promotion rows not fitted (too few positives).
    fit = {
        "AdStream/ad": {"fitted": True, "a": 1.0, "b": -2.0},
        "Click/ad": {"fitted": True, "a": 0.5, "b": 0.0},
        "Click/promo": {"fitted": False, "reason": "3 validation positives of 900 rows"},
    }
    _score(day_root, constant_model(tmp_path / "calibrated", calibration_fit=fit), "--top_n=10")
    audiences = _read(layout.audience_partition(day_root, DAY)).to_pylist()
    score_of = {r["campaign_id"]: r["score"] for r in audiences}
    assert score_of[10] == pytest.approx(sigmoid32(HEAD_LOGITS["AdStream"] - 2.0), abs=1e-6)
    assert score_of[11] == pytest.approx(sigmoid32(0.5 * HEAD_LOGITS["Click"]), abs=1e-6)
    assert score_of[12] == pytest.approx(sigmoid32(HEAD_LOGITS["PromotionStream"]), abs=1e-6)
    # User rankings carry the same calibrated scores, so a user's campaigns are ranked by them.
    rankings = _read(layout.user_ranking_partition(day_root, DAY)).to_pylist()
    assert {(r["campaign_id"], round(r["score"], 6)) for r in rankings} <= {
        (c, round(s, 6)) for c, s in score_of.items()
    }
    user_1 = [r["campaign_id"] for r in sorted(rankings, key=lambda r: r["rank"]) if r["user_id"] == 1]
    assert user_1 == sorted(
        (c for c in score_of if 1 in ELIGIBLE.get(c, [])), key=lambda c: (-round(score_of[c], 7), c)
    )


def test_user_rankings_hold_each_users_best_campaigns(day_root, models):
    _score(day_root, models["constant"], "--top_n=2")
    rankings = _read(layout.user_ranking_partition(day_root, DAY))
    assert rankings.schema == USER_RANKINGS
    got = {}
    for row in rankings.to_pylist():
        got.setdefault(row["user_id"], []).append((row["rank"], row["campaign_id"], row["head"]))
    # AdStream 0.73 > PromotionStream 0.5 > Click 0.27 > Follow 0.12; equal scores by campaign id (12 before 20).
    assert got == {
        1: [(1, 10, "AdStream"), (2, 12, "PromotionStream")],
        2: [(1, 12, "PromotionStream"), (2, 13, "Follow")],
        3: [(1, 12, "PromotionStream"), (2, 20, "PromotionStream")],
        4: [(1, 12, "PromotionStream")],
        5: [(1, 10, "AdStream"), (2, 12, "PromotionStream")],
        6: [(1, 13, "Follow")],
        7: [(1, 12, "PromotionStream"), (2, 11, "Click")],
        8: [(1, 12, "PromotionStream"), (2, 20, "PromotionStream")],
    }


def test_scores_follow_the_model_and_cuts_follow_size_or_budget(day_root, models):
    _score(day_root, models["streams"], "--audience_size=3", "--users_per_block=3")
    rows = [r for r in _read(layout.audience_partition(day_root, DAY)).to_pylist() if r["campaign_id"] == 12]
    streams = {1: 5, 2: 50, 3: 0, 4: 20, 5: 5, 7: 100, 8: 7}
    assert [r["user_id"] for r in rows] == [7, 2, 4]  # most streams first; only the top 3 are kept
    for r in rows:
        expected = sigmoid32((np.log1p(streams[r["user_id"]]) + 10) / np.sqrt(1 + 1e-5))
        assert r["score"] == pytest.approx(expected, rel=1e-5)
    assert {(r["audience_size"], r["eligible_users"], r["cut"]) for r in rows} == {(3, 7, "top_k")}

    _score(day_root, models["streams"], "--audience_cut=budget", "--audience_size=5")
    rows = _read(layout.audience_partition(day_root, DAY)).to_pylist()
    cut = {r["campaign_id"]: (r["audience_size"], r["cut"]) for r in rows}
    # Campaign 11: 1.8 currency units over 10 days at CPM 20 buys 9 impressions a day, 3 users at 3 each.
    assert cut[11] == (3, "budget")
    assert [r["user_id"] for r in rows if r["campaign_id"] == 11] == [7, 8, 1]  # ties (1 and 5): lower id first
    assert cut[10] == (2, "budget")  # affords 500 users, capped by its 2 eligible users
    assert cut[12] == (5, "top_k")  # promotions have no budget


def test_avro_parts_hold_the_same_rows_as_parquet_in_a_folder_of_their_own(day_root, models):
    _score(day_root, models["constant"], "--audience_shards=2")
    for partition, avro_partition, schema in (
        (layout.audience_partition(day_root, DAY), layout.audience_partition(day_root, DAY, "avro"), AUDIENCES),
        (
            layout.user_ranking_partition(day_root, DAY),
            layout.user_ranking_partition(day_root, DAY, "avro"),
            USER_RANKINGS,
        ),
    ):
        folder, avro_folder = pathlib.Path(partition), pathlib.Path(avro_partition)
        assert avro_folder == pathlib.Path(day_root, "avro", folder.parent.name, folder.name)
        parquet = sorted(p.stem for p in folder.glob("part-*.parquet"))
        assert parquet == sorted(p.stem for p in avro_folder.glob("part-*.avro")) and parquet
        # Each folder holds one format (and _SUCCESS.json), so Parquet readers take the folder as it is.
        assert {p.suffix for p in folder.iterdir()} == {".parquet", ".json"}
        assert {p.suffix for p in avro_folder.iterdir()} == {".avro", ".json"}
        assert (
            pq.read_table(folder)
            .sort_by("rank")
            .equals(pa.concat_tables([pq.read_table(folder / f"{stem}.parquet") for stem in parquet]).sort_by("rank"))
        )
        for stem in parquet:
            with open(avro_folder / f"{stem}.avro", "rb") as handle:
                reader = fastavro.reader(handle)
                assert reader.metadata["podtarget.fingerprint"]
                records = list(reader)
            table = pq.read_table(folder / f"{stem}.parquet")
            assert records == table.to_pylist()
            assert pa.Table.from_pylist(records, schema=schema).equals(table)


def _digests(root: str) -> dict:
    out = {}
    for partition in (
        layout.audience_partition(root, DAY),
        layout.user_ranking_partition(root, DAY),
        layout.audience_partition(root, DAY, "avro"),
        layout.user_ranking_partition(root, DAY, "avro"),
        layout.deadletter_partition(root, "score", DAY),
    ):
        for path in sorted(pathlib.Path(partition).iterdir()):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_a_rerun_replaces_the_day_with_identical_bytes(day_root, models):
    _score(day_root, models["streams"], "--users_per_block=3")
    first = _digests(day_root)
    (pathlib.Path(layout.audience_partition(day_root, DAY)) / "stray.txt").write_text("from an older run")
    _score(day_root, models["streams"], "--users_per_block=3")
    assert _digests(day_root) == first
    assert not pathlib.Path(day_root, "audiences", "_staging").exists()  # no scratch, not even its empty folder


def test_a_missing_head_mapping_is_a_dead_letter_not_a_silent_skip(day_root, models):
    summary = _score(day_root, models["constant"], "--heads=ad:stream=AdStream,*:click=Click")
    # Unmapped: the three promo:stream campaigns, both follows and the awareness one.
    assert summary["campaigns"]["dead_letter"]["unknown_objective"] == 6
    assert summary["campaigns"]["scored"] == 2 and summary["reconciliation"]["campaigns"]["unaccounted"] == 0


def _nothing_written(root: str) -> bool:
    return not any(pathlib.Path(root, name).exists() for name in ("audiences", "user_rankings", "deadletter"))


def test_bad_models_fail_before_any_work(day_root, models, tmp_path):
    with pytest.raises(ArtifactError, match="no such folder"):
        _score(day_root, str(tmp_path / "absent"))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(models["constant"], corrupt)
    weights = corrupt / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match="weights.pt is corrupt"):
        _score(day_root, str(corrupt))
    spec, encoder, network = _network()
    other = pa.schema([f.with_type(pa.int64()) if f.name == "user_tenure_days" else f for f in stored_schema(EXAMPLES)])
    save_model(str(tmp_path / "mismatched"), network, spec, encoder, other)
    with pytest.raises(ArtifactError, match="column 'user_tenure_days': trained on int64, the table has int32"):
        _score(day_root, str(tmp_path / "mismatched"))
    with pytest.raises(ArtifactError, match="no head 'Awareness'"):
        _score(day_root, models["constant"], "--heads=ad:stream=AdStream,ad:follow=Awareness")
    assert _nothing_written(day_root)


def test_a_local_model_is_refused_where_workers_cannot_read_it(day_root, models):
    with pytest.raises(ValueError, match="is a local folder, but the workers of this runner load the model"):
        score.run(
            [f"--data_root={day_root}", f"--date={DAY}", f"--model={models['constant']}", "--runner=PortableRunner"]
        )
    assert _nothing_written(day_root)


def test_bad_inputs_and_settings_fail_before_any_work(day_root, models):
    with pytest.raises(ValueError, match=r"'audience_cut' parameter of ScoringConfig must be a str among"):
        _score(day_root, models["constant"], "--audience_cut=half")
    with pytest.raises(ValueError, match=r"'hour' parameter of ScoringConfig must be an int in the range \[0, 23\]"):
        _score(day_root, models["constant"], "--hour=24")
    with pytest.raises(ValueError, match="--model=models/<run> is required"):
        score.run([f"--data_root={day_root}", f"--date={DAY}", "--runner=FnApiRunner"])
    (pathlib.Path(layout.feature_partition(day_root, "podcast", DAY)) / "_SUCCESS.json").unlink()
    with pytest.raises(MissingInputError, match=f"run `make features DATE={DAY}` first"):
        _score(day_root, models["constant"])
    assert _nothing_written(day_root)


def test_a_corrupt_features_file_is_one_line_naming_it_and_how_to_rebuild_it(day_root, models):
    """The file is read inside the pipeline: Beam logs the step's error with its traceback and re-raises it; the
    command prints only its one line, which names the file and the command that rebuilds its day, and leaves no
    scratch behind. PODTARGET_TRACEBACK=1 shows everything."""
    import os
    import subprocess
    import sys

    part = sorted(pathlib.Path(layout.feature_partition(day_root, "user", DAY)).glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-64])
    command = [sys.executable, "-m", "podtarget.pipelines.score", f"--data_root={day_root}", f"--date={DAY}"]
    command += [f"--model={models['constant']}", "--runner=FnApiRunner"]
    env = {k: v for k, v in os.environ.items() if k not in ("PODTARGET_TRACEBACK", "PODTARGET_VERBOSE", "MAKELEVEL")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=pathlib.Path(__file__).parents[2])
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {part} (day {DAY}) is not readable Parquet (Parquet magic bytes not found in footer); rebuild that "
        f"day: make features DATE={DAY}\n"
    )
    assert _nothing_written(day_root)
    assert not list(pathlib.Path(day_root).rglob("_staging")) and not (pathlib.Path(day_root) / "_shuffle").exists()
    loud = subprocess.run(command, capture_output=True, text=True, env={**env, "PODTARGET_TRACEBACK": "1"})
    assert loud.returncode != 0 and "Traceback" in loud.stderr

"""Scoring end to end on a small simulated world with a model trained on it: no training/serving skew, the
pipeline's scores are the model's, and the same bytes in memory, through the portable runner and on gs://."""

import datetime
import hashlib
import json
import pathlib
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from podtarget.model.product import encode_product
from podtarget.model.train import TrainConfig, train
from podtarget.pipelines import build_examples, build_features, score
from podtarget.schemas import layout
from podtarget.schemas.derived import LABELS, USER_FEATURES
from podtarget.transforms.arrow.candidates import PAIR_KINDS, pair_kinds, plan_campaigns, user_side
from podtarget.transforms.arrow.scoring_config import ScoringConfig
from podtarget.transforms.beam.scoring import load_scoring_model
from podtarget.transforms.runtime.day_inputs import load_podcast_features, read_snapshot
from podtarget.transforms.runtime.storage import (
    list_files,
    partition_files,
    read_bytes,
    read_parquet,
    read_parquet_files,
    read_success,
)
from tests.conftest import DATAFLOW_DRY_RUN, simulate

START = datetime.date(2026, 3, 2)
DAY = START + datetime.timedelta(days=1)
PARTITIONS = ("audiences", "user_rankings", "avro/audiences", "avro/user_rankings", "deadletter/score")


def _train_on_one_day(examples: str, out: str, run: str, batches: int, **options) -> str:
    """A tiny model: one epoch of ``batches`` batches of 256 rows of DAY, no validation or test days."""
    config = TrainConfig(
        examples=examples,
        out=out,
        run=run,
        epochs=1,
        batch_size=256,
        max_batches_per_epoch=batches,
        train_days=DAY.isoformat(),
        valid_days="",
        test_days="",
        progress=False,
        **options,
    )
    return train(config).run_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(data root, model folder): 600 users over 3 days, features and examples of day 2, a model trained on them."""
    root = str(tmp_path_factory.mktemp("score_e2e") / "data")
    simulate(root, "--n_days=3", "--n_users=600")
    common = [f"--data_root={root}", f"--date={DAY}", "--runner=FnApiRunner", "--n_buckets=4"]
    build_features.run(common)
    build_examples.run([*common, "--allow_unobserved"])
    models = str(tmp_path_factory.mktemp("score_models"))
    return root, _train_on_one_day(f"{root}/examples", models, "tiny", batches=30)


@pytest.fixture(scope="module")
def scored(world):
    root, model = world
    summary = score.run([f"--data_root={root}", f"--date={DAY}", f"--model={model}", "--runner=FnApiRunner"])
    return root, model, summary


def _parquet(partition: str) -> pa.Table:
    return read_parquet(layout.join(partition, "part-*.parquet"))


def _digests(root: str) -> dict[str, str]:
    """sha256 of each committed file of the scoring partitions, in their marker's order, and of each marker less
    its file names (on gs:// committed files carry a generation in their names: see ``commit_partition``)."""
    out = {}
    for name in PARTITIONS:
        partition = layout.join(root, name, f"dt={DAY}")
        for k, path in enumerate(partition_files(partition)):
            out[f"{name}/file-{k}"] = hashlib.sha256(read_bytes(path)).hexdigest()
        marker = {key: value for key, value in read_success(partition).items() if key != "files"}
        out[f"{name}/_SUCCESS.json"] = hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()
    return out


def test_a_scored_pair_and_the_same_pair_in_the_examples_get_identical_model_inputs(world):
    """Impressions of day D, rebuilt through the scoring path with their own serving context, give exactly the
    example table's model inputs: the same Arrow values and the same encoded tensors."""
    root, model_dir = world
    model = load_scoring_model(model_dir)
    examples = pq.read_table(layout.examples_partition(root, DAY))
    served_on_day = pc.equal(pc.cast(examples.column("event_ts"), pa.date32()), pa.scalar(DAY, pa.date32()))
    examples = examples.filter(
        pc.and_(served_on_day, pc.equal(examples.column("country"), examples.column("user_country")))
    )
    rng = np.random.default_rng(0)
    sample = []
    for source in ("ad", "promo"):
        rows = np.flatnonzero(examples.column("source").to_numpy(zero_copy_only=False) == source)
        sample += rng.choice(rows, 20, replace=False).tolist()
    # Plus every impression of a show the user listened to or follows: the rarer values of the pair columns.
    known = pc.or_(examples.column("user_listened_podcast_28d"), examples.column("user_follows_podcast"))
    sample += np.flatnonzero(known.to_numpy(zero_copy_only=False)).tolist()
    users = read_parquet(layout.join(layout.feature_partition(root, "user", DAY), "part-*.parquet"), USER_FEATURES)
    podcasts = load_podcast_features(DAY.isoformat(), root)
    campaigns, creatives = read_snapshot(root, "campaign", DAY), read_snapshot(root, "creative", DAY)
    inputs = [c for c in model.encoder.columns if c not in LABELS]
    kinds = set()
    for i in sample:
        row = examples.slice(i, 1)
        ex = row.to_pylist()[0]
        ad = ex["source"] == "ad"
        config = ScoringConfig(
            hour=ex["hour"],
            device=ex["device"],
            ad_slot=ex["ad_slot"] if ad else "auto",
            ad_surface=ex["surface"] if ad else "auto",
            promo_slot=ex["promo_slot"] or "home_shelf",
            promo_layout=ex["promo_layout"] or "card",
            promo_position=ex["promo_position"] or 0,
            promo_surface=ex["surface"] if not ad else "home",
        )
        own_campaign = campaigns.filter(pc.equal(campaigns.column("campaign_id"), ex["campaign_id"]))
        own_creative = creatives.filter(pc.equal(creatives.column("creative_id"), ex["creative_id"] or -1))
        plan = plan_campaigns(own_campaign, own_creative, podcasts, DAY, config, "")
        assert plan.n == 1, plan.dead_letters.to_pylist()
        user = users.filter(pc.equal(users.column("user_id"), ex["user_id"]))
        kind = int(pair_kinds(user, plan)[0, 0])
        kinds.add(kind)
        sides = {"user": user_side(user, plan, DAY, config), "campaign": plan.side.table, "pair": PAIR_KINDS}
        rebuilt = {**sides["user"].to_pylist()[0], **sides["campaign"].to_pylist()[0], **PAIR_KINDS.to_pylist()[kind]}
        assert {c: rebuilt[c] for c in inputs} == {c: ex[c] for c in inputs}
        got = encode_product(model.encoder, sides, {"user": [0], "campaign": [0], "pair": [kind]})
        want = model.encoder.encode(row.drop_columns(list(LABELS)))
        assert got.differences(want) == []
    # Listened or not, following or not, same language or not: each pair column was checked with both values.
    assert (
        {k // 6 for k in kinds} == {0, 1} and {k // 3 % 2 for k in kinds} == {0, 1} and {k % 3 for k in kinds} >= {0, 1}
    )


def test_every_campaign_is_accounted_for_and_rankings_are_consistent(scored):
    root, _, summary = scored
    campaigns = read_snapshot(root, "campaign", DAY)
    active = pc.and_(
        pc.less_equal(campaigns.column("start_date"), pa.scalar(DAY)),
        pc.greater_equal(campaigns.column("end_date"), pa.scalar(DAY)),
    )
    assert summary["campaigns"]["active"] == pc.sum(active).as_py() > 0
    balance = summary["reconciliation"]
    assert balance["campaigns"]["unaccounted"] == balance["pairs"]["unaccounted"] == 0
    assert summary["pairs"]["scored"] == summary["pairs"]["eligible"] > 0
    audiences = _parquet(layout.audience_partition(root, DAY)).to_pylist()
    rankings = _parquet(layout.user_ranking_partition(root, DAY)).to_pylist()
    assert summary["audience_rows"] == len(audiences) and summary["user_ranking_rows"] == len(rankings)
    by_campaign = {}
    for r in audiences:
        by_campaign.setdefault(r["campaign_id"], []).append(r)
    assert len(by_campaign) == summary["campaigns"]["scored"]
    for rows in by_campaign.values():
        keys = [(-r["score"], r["user_id"]) for r in rows]
        assert keys == sorted(keys) and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) == min(1000, rows[0]["eligible_users"]) == rows[0]["audience_size"]
    # A pair in both outputs has one score: both come from the same forward pass.
    audience_score = {(r["campaign_id"], r["user_id"]): r["score"] for r in audiences}
    shared = [
        (r, audience_score[r["campaign_id"], r["user_id"]])
        for r in rankings
        if (r["campaign_id"], r["user_id"]) in audience_score
    ]
    assert shared and all(r["score"] == s for r, s in shared)
    per_user = {}
    for r in rankings:
        per_user.setdefault(r["user_id"], []).append(r)
    assert max(len(v) for v in per_user.values()) == 10


def test_pipeline_scores_are_the_models_probabilities(scored):
    """Audience scores equal the trained model's own prediction on the materialised pair inputs."""
    root, model_dir, _ = scored
    model = load_scoring_model(model_dir)
    audiences = _parquet(layout.audience_partition(root, DAY))
    sample = audiences.take(np.random.default_rng(1).choice(audiences.num_rows, 40, replace=False)).to_pylist()
    config = ScoringConfig()
    users = read_parquet(layout.join(layout.feature_partition(root, "user", DAY), "part-*.parquet"), USER_FEATURES)
    plan = plan_campaigns(
        read_snapshot(root, "campaign", DAY),
        read_snapshot(root, "creative", DAY),
        load_podcast_features(DAY.isoformat(), root),
        DAY,
        config,
        "",
    )
    ids = plan.campaigns.column("campaign_id").to_pylist()
    for r in sample:
        user = users.filter(pc.equal(users.column("user_id"), r["user_id"]))
        c = ids.index(r["campaign_id"])
        kind = int(pair_kinds(user, plan)[0, c])
        side = user_side(user, plan, DAY, config)
        rows = pa.table(
            {
                **{n: side.column(n) for n in side.column_names},
                **{n: plan.side.table.column(n).take([c]) for n in plan.side.table.column_names},
                **{n: PAIR_KINDS.column(n).take([kind]) for n in PAIR_KINDS.column_names},
            }
        )
        assert model.score(rows, [r["head"]])[r["head"]][0] == pytest.approx(r["score"], abs=2e-6)


@pytest.mark.slow
def test_portable_runner_writes_identical_bytes(scored, tmp_path):
    root, model, _ = scored
    before = _digests(root)
    score.run(
        [
            f"--data_root={root}",
            f"--date={DAY}",
            f"--model={model}",
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=LOOPBACK",
        ]
    )
    assert _digests(root) == before


@pytest.mark.slow
def test_scoring_on_gcs_writes_the_same_outputs(scored, gcs_emulator):
    from apache_beam.io.filesystems import FileSystems

    root, model, _ = scored
    remote = f"{gcs_emulator}/score"
    for sub in (
        f"features/user/dt={DAY}",
        f"features/podcast/dt={DAY}",
        f"raw/campaign/dt={DAY}",
        f"raw/creative/dt={DAY}",
    ):
        for path in sorted(pathlib.Path(root, sub).iterdir()):
            with FileSystems.create(f"{remote}/{sub}/{path.name}") as handle:
                handle.write(path.read_bytes())
    summary = score.run([f"--data_root={remote}", f"--date={DAY}", f"--model={model}", "--runner=FnApiRunner"])
    assert summary["pairs"]["scored"] > 0
    # Dead letters name the campaign snapshot they came from (a local path here, gs:// there): equal otherwise.
    dead = "deadletter/score/file-0"
    local, there = _digests(root), _digests(remote)
    assert {k: v for k, v in there.items() if k != dead} == {k: v for k, v in local.items() if k != dead}
    partition = f"deadletter/score/dt={DAY}"
    rows = [
        read_parquet_files(partition_files(layout.join(r, partition))).drop_columns(["source_path"])
        for r in (root, remote)
    ]
    assert rows[0].equals(rows[1]) and rows[0].num_rows == summary["reconciliation"]["campaigns"]["dead_lettered"]
    assert not list_files(layout.join(remote, "audiences", "_staging", "**"))


@pytest.mark.slow
def test_dataflow_job_graph_builds_offline(scored, tmp_path, monkeypatch):
    root, model, _ = scored
    monkeypatch.chdir(tmp_path)
    summary = score.run(
        [
            f"--data_root={root}",
            f"--date={DAY}",
            f"--model={model}",
            *DATAFLOW_DRY_RUN,
        ]
    )
    assert summary["dry_run"] is True and summary["state"] == "DONE"


@pytest.mark.slow
def test_nothing_but_the_evaluation_reads_the_worlds_ground_truth(scored, tmp_path):
    """Features, examples, training and scoring run on a copy of the logs without ``world/`` (the simulator's hidden
    traits) and produce the same bytes as beside it: none of them reads the ground truth."""
    root, model, _ = scored
    copy = tmp_path / "logs-only"
    shutil.copytree(pathlib.Path(root, "raw"), copy / "raw")
    assert pathlib.Path(root, "world").is_dir() and not (copy / "world").exists()
    common = [f"--data_root={copy}", f"--date={DAY}", "--runner=FnApiRunner", "--n_buckets=4"]
    build_features.run(common)
    build_examples.run([*common, "--allow_unobserved"])
    for table in ("features/user", "features/podcast", "examples"):
        files = [partition_files(layout.join(str(r), table, f"dt={DAY}")) for r in (root, copy)]
        assert [read_bytes(f) for f in files[0]] == [read_bytes(f) for f in files[1]], table
    runs = []
    for data in (root, str(copy)):
        runs.append(_train_on_one_day(f"{data}/examples", str(tmp_path / "models"), f"run-{len(runs)}", 10, threads=1))
    assert read_bytes(f"{runs[0]}/weights.pt") == read_bytes(f"{runs[1]}/weights.pt")
    score.run([f"--data_root={copy}", f"--date={DAY}", f"--model={model}", "--runner=FnApiRunner"])
    # Dead letters name the campaign snapshot they came from, whose path differs: equal otherwise.
    dead = "deadletter/score/file-0"
    there = _digests(str(copy))
    assert {k: v for k, v in there.items() if k != dead} == {k: v for k, v in _digests(root).items() if k != dead}
    partition = f"deadletter/score/dt={DAY}"
    rows = [
        read_parquet_files(partition_files(layout.join(str(r), partition))).drop_columns(["source_path"])
        for r in (root, copy)
    ]
    assert rows[0].equals(rows[1])
    assert not (copy / "world").exists()

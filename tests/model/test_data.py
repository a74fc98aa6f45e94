"""The table layout, stable hashing, encoding, label maturity and source-balanced sampling."""

import datetime
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podtarget.model.data import (
    BatchStream,
    DataError,
    Encoder,
    ExampleTable,
    FeatureStats,
    fit_statistics,
    hash_buckets,
    hash_strings,
    immature_labels,
    label_catalog,
    plan_sampling,
    split_days,
    task_priors,
    usable_days,
)
from podtarget.model.spec import Spec, load_spec

D = datetime.date


def test_hashing_is_stable_across_processes():
    code = "from podtarget.model.data import hash_strings; print(list(hash_strings(['se', 'podcast', ''])))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.strip() == str(list(hash_strings(["se", "podcast", ""])))


def test_hash_buckets_nulls_and_dictionaries():
    plain = pa.array(["a", None, "b", "a"])
    buckets = hash_buckets(plain, 64)
    assert buckets[1] == 0 and buckets[0] == buckets[3] and (buckets[[0, 2]] >= 1).all()
    np.testing.assert_array_equal(hash_buckets(pc_dict(plain), 64), buckets)
    ints = hash_buckets(pa.array([5, None, 5], pa.int64()), 1000)
    assert ints[1] == 0 and ints[0] == ints[2]
    np.testing.assert_array_equal(hash_buckets(pa.array([5], pa.int32()), 1000), ints[:1])


def pc_dict(array):
    import pyarrow.compute as pc

    return pc.dictionary_encode(array)


def test_layout_skips_staging_markers_and_incomplete_days(tmp_path):
    table = pa.table({"x": [1]})
    for name, marker in (("dt=2026-03-02", True), ("dt=2026-03-03", False), ("dt=2026-03-04", True)):
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / "part-00000.parquet")
        if marker:
            (tmp_path / name / "_SUCCESS.json").write_text("{}")
    (tmp_path / "_staging" / "dt=2026-03-05-x").mkdir(parents=True)
    (tmp_path / "dt=2026-03-04" / "_tmp.parquet").write_text("half-written")
    (tmp_path / "notes").mkdir()
    found = ExampleTable.open(str(tmp_path))
    assert found.days == [D(2026, 3, 2), D(2026, 3, 4)]
    assert found.skipped == [{"day": "2026-03-03", "reason": "no _SUCCESS.json (incomplete)"}]
    assert [u.rows for u in found.units(found.days)] == [1, 1]
    with pytest.raises(DataError, match="no complete day folders"):
        ExampleTable.open(str(tmp_path / "notes"))


def test_split_by_fractions_and_days():
    days = [D(2026, 3, 2) + datetime.timedelta(days=i) for i in range(9)]
    split = split_days(days)
    assert (len(split.train), len(split.valid), len(split.test)) == (7, 1, 1)
    assert max(split.train) < min(split.valid) < min(split.test)
    explicit = split_days(days, train=days[:2], valid=days[2:3], test=days[3:4])
    assert explicit.test == (days[3],)
    with pytest.raises(DataError, match=r"--test_days: \['2026-04-01'\] not in the table"):
        split_days(days, train=days[:2], test=[D(2026, 4, 1)])
    with pytest.raises(DataError, match="too few"):
        split_days(days[:2])


def test_too_few_usable_days_say_which_were_left_out_and_what_to_do():
    """Only immature days (labels whose windows the logs do not cover yet): the error says so, not just 'too few'."""
    immature = [{"day": f"2026-03-0{d}", "reason": "labels of AdStream unobserved (immature)"} for d in range(3, 8)]
    with pytest.raises(DataError) as error:
        split_days([], excluded=immature)
    message = str(error.value)
    assert message.startswith(
        "0 usable day(s) (none) are too few for a train/valid/test split (it needs 3); left out: "
    )
    assert "5 day(s) 2026-03-03..2026-03-07 (5 days): labels of AdStream unobserved (immature)" in message
    assert "add more days of logs, or choose the days with --train_days, --valid_days and --test_days" in message


def test_immature_days_are_excluded_and_masked(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    catalog = label_catalog(spec, table, table.days)
    immature = immature_labels(spec, catalog)
    last = table.days[-1].isoformat()
    assert ("label_stream", "promo") in immature[last] and immature[table.days[0].isoformat()] == []
    keep, excluded = usable_days(spec, catalog)
    assert keep == table.days[:-1] and excluded[0]["day"] == last
    stats = fit_statistics(spec, table, table.days[:3])
    encoder = Encoder(spec, stats)
    data = table.read(table.units([table.days[-1]])[0], encoder.columns)
    raw = encoder.encode_rows(data)
    assert raw.obs.any() and raw.y[raw.obs].min() == 1  # only credited positives were observed
    masked = encoder.encode_rows(data, [(table.days[-1], data.num_rows)], immature)
    assert not masked.obs.any()


def test_encoding_of_nulls_unseen_values_and_bags(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:2]))
    rows = pa.table(
        {
            "source": ["ad", "promo", "web"],
            "user_id": pa.array([1, None, 10**12], pa.int64()),
            "podcast_id": pa.array([1, 2, 3], pa.int64()),
            "uid": pa.array([0, 1, 2], pa.int64()),
            "user_genres": pa.array([["g1", "g2"], [], None]),
            "streams_28d": pa.array([1, None, 3], pa.int32()),
            "tier": pa.array([0, 1, None], pa.int8()),
            "is_original": [True, False, None],
            "surface": ["home", "search", None],
            "promo_position": pa.array([None, 2, None], pa.int16()),
            "ad_format": ["audio", None, "video"],
        }
    )
    block = encoder.encode_rows(rows)
    user_offset = encoder.offsets["user_id"]
    assert block.cat[1, 0] == user_offset  # null -> the feature's row 0
    assert block.cat[2, 0] == user_offset  # an id never seen in training -> row 0 too
    assert block.cat[0, 0] != user_offset
    assert block.bag_len.ravel().tolist() == [2, 0, 0]
    assert block.source.tolist() == [0, 1, -1] and block.slice.tolist() == [0, 1, -1]
    assert not block.obs.any()  # scoring rows carry no labels
    columns = encoder.numeric_columns()
    assert columns[-2:] == ["promo_position", "promo_position:missing"]
    assert block.num[:, -1].tolist() == [1.0, 0.0, 1.0]  # the missing indicator
    assert block.num[2, columns.index("is_original")] == 0.0  # null -> 0 after normalisation
    batch = encoder.to_batch(block)
    assert batch.rows.tolist() == sorted(set(block.cat.ravel().tolist()) | set(block.bag_val.tolist()))
    assert batch.bag_scale.ravel().tolist() == [0.5, 0.0, 0.0]


def _stream(podcast_toy, ratio, batch_size=400, epoch=0, seed=3):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    days = table.days[:-1]
    encoder = Encoder(spec, fit_statistics(spec, table, days))
    catalog = label_catalog(spec, table, days)
    rows = {s: sum(catalog[d.isoformat()]["rows"][s] for d in days) for s in spec.sources}
    plan = plan_sampling(spec, rows, batch_size, ratio)
    stream = BatchStream(table, table.units(days), encoder, plan, {}, seed=seed, epoch=epoch, pool_rows=2048)
    return plan, rows, list(stream), encoder


def _uids(batches, encoder) -> np.ndarray:
    st = encoder.stats.numeric["uid"]
    k = encoder.numeric_columns().index("uid")
    return np.rint(np.concatenate([b.num[:, k].numpy() for b in batches]) * st["std"] + st["mean"]).astype(int)


@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.8])
def test_balanced_batches_hold_the_ratio_and_an_epoch_reads_the_pacing_source_once(podcast_toy, ratio):
    plan, rows, batches, encoder = _stream(podcast_toy, ratio)
    promo = encoder.source_index["promo"]
    want = round(ratio * 400)
    full = [b for b in batches if b.size == 400]
    assert len(full) >= len(batches) - 1
    assert all(int((b.source == promo).sum()) == want for b in full)
    # The pacing source's rows appear exactly once per epoch; the other is drawn with replacement.
    pacing_index = encoder.source_index[plan.pacing]
    ids = _uids([b for b in batches], encoder)
    src = np.concatenate([b.source.numpy() for b in batches])
    pacing_ids = ids[src == pacing_index]
    assert len(pacing_ids) == len(set(pacing_ids)) == rows[plan.pacing]
    other = ids[src != pacing_index]
    assert len(set(other)) > 0.75 * min(len(other), rows[[s for s in rows if s != plan.pacing][0]])


def test_natural_mix_reads_every_row_once_and_epochs_differ(podcast_toy):
    plan, rows, batches, encoder = _stream(podcast_toy, None)
    ids = _uids(batches, encoder)
    assert plan.shares is None and len(ids) == len(set(ids)) == sum(rows.values())
    _, _, again, _ = _stream(podcast_toy, None)
    np.testing.assert_array_equal(_uids(again, encoder), ids)  # the same seed and epoch: the same order
    _, _, next_epoch, _ = _stream(podcast_toy, None, epoch=1)
    assert not np.array_equal(_uids(next_epoch, encoder), ids)


def test_a_repeat_cap_shrinks_the_scarce_sources_share_towards_the_natural_mix(podcast_toy):
    spec = load_spec(podcast_toy[1])
    balanced = plan_sampling(spec, {"ad": 100, "promo": 1000}, 100, 0.5)
    assert balanced.shares == {"ad": 50, "promo": 50} and balanced.pacing == "promo"
    assert balanced.repeats == {"ad": 10.0}  # 20 batches x 50 ad rows over 100 ad rows
    capped = plan_sampling(spec, {"ad": 100, "promo": 1000}, 100, 0.5, max_repeats=2)
    # batch x R n / (n_pacing + R n) = 100 x 200 / 1200 = 16.7 -> 17 ad rows a batch; 1000 / 83 -> 13 batches.
    assert capped.shares == {"promo": 83, "ad": 17} and capped.expected_batches == 13
    assert capped.repeats == {"ad": 13 * 17 / 100}
    natural = plan_sampling(spec, {"ad": 100, "promo": 1000}, 110, 0.5, max_repeats=1)
    assert natural.shares == {"promo": 100, "ad": 10}  # R = 1: the natural mix
    # Where the ratio repeats the scarce rows less than the cap, nothing changes.
    assert plan_sampling(spec, {"ad": 900, "promo": 1000}, 100, 0.5, max_repeats=2) == plan_sampling(
        spec, {"ad": 900, "promo": 1000}, 100, 0.5
    )
    with pytest.raises(DataError, match="max_source_repeats: expected a number >= 1"):
        plan_sampling(spec, {"ad": 100, "promo": 1000}, 100, 0.5, max_repeats=0.5)


def test_a_source_restricted_to_its_last_days_is_drawn_and_counted_only_there(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    days = table.days[:-1]
    allowed = {"ad": (days[-1].isoformat(),)}
    uids = {}
    for day in days:
        t = pa.concat_tables([pq.read_table(p, columns=["uid", "source"]) for p in table.files[day]])
        for src in ("ad", "promo"):
            rows = np.asarray(t.column("source").to_pylist()) == src
            uids[(day, src)] = set(np.asarray(t.column("uid"))[rows].tolist())
    stats = fit_statistics(spec, table, days, source_days=allowed)
    assert stats.rows == sum(len(uids[(d, "promo")]) for d in days) + len(uids[(days[-1], "ad")])
    encoder = Encoder(spec, stats)
    rows = {"promo": stats.rows - len(uids[(days[-1], "ad")]), "ad": len(uids[(days[-1], "ad")])}
    plan = plan_sampling(spec, rows, 400, 0.5, days=allowed)
    batches = list(BatchStream(table, table.units(days), encoder, plan, {}, seed=3, epoch=0, pool_rows=2048))
    ids = _uids(batches, encoder)
    src = np.concatenate([b.source.numpy() for b in batches])
    drawn_ads = set(ids[src == encoder.source_index["ad"]].tolist())
    assert drawn_ads and drawn_ads <= uids[(days[-1], "ad")]
    # Promotions of every day, each once (they pace the epoch).
    promo_ids = ids[src == encoder.source_index["promo"]]
    assert sorted(promo_ids.tolist()) == sorted(set().union(*(uids[(d, "promo")] for d in days)))


def test_sampling_plan_errors(podcast_toy):
    spec = load_spec(podcast_toy[1])
    with pytest.raises(DataError, match="expected a number in"):
        plan_sampling(spec, {"ad": 10, "promo": 10}, 100, 1.5)
    with pytest.raises(DataError, match="no training rows"):
        plan_sampling(spec, {"ad": 0, "promo": 0}, 100, 0.5)
    assert plan_sampling(spec, {"ad": 0, "promo": 50}, 10, 0.5).shares is None  # one source: nothing to balance


def test_catalog_counts(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    catalog = label_catalog(spec, table, table.days[:1])
    entry = catalog[table.days[0].isoformat()]
    assert sum(entry["rows"].values()) == 3000
    assert json.loads(json.dumps(catalog)) == catalog


def test_task_priors_are_the_training_positive_rates_as_batches_mix_the_sources(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    days = table.days  # the last day is immature: its labels must not count
    catalog = label_catalog(spec, table, days)
    immature = immature_labels(spec, catalog)
    assert any(immature.values())
    data = pa.concat_tables(table.read(u, spec.columns) for u in table.units(days))
    day_of = np.repeat([d.isoformat() for d in days], [sum(catalog[d.isoformat()]["rows"].values()) for d in days])
    source = np.array(data.column(spec.source_column).to_pylist())

    def rate(label: str, s: str) -> float:
        y = np.array([np.nan if v is None else v for v in data.column(label).to_pylist()], float)
        mature = np.array([[label, s] not in map(list, immature[d]) for d in day_of])
        keep = (source == s) & mature & ~np.isnan(y)
        return float((y[keep] > 0).mean())

    shares = {"ad": 300, "promo": 100}
    priors = task_priors(spec, catalog, days, shares)
    for task in spec.tasks:
        trained_by = [s for s in spec.sources if spec.trains_row(s, task.name)]
        expected = np.average([rate(task.label, s) for s in trained_by], weights=[shares[s] for s in trained_by])
        assert priors[task.name] == pytest.approx(expected), task.name
    # Only the rows' own source counts for a task that one source trains.
    only_promo = [t.name for t in spec.tasks if [s for s in spec.sources if spec.trains_row(s, t.name)] == ["promo"]]
    assert only_promo and all(priors[t] == pytest.approx(rate(spec.task(t).label, "promo")) for t in only_promo)


def test_features_that_share_rows_look_values_up_in_one_block(tmp_path):
    """A user's recent shows and the impression's show: one id, one embedding row, whichever column holds it; a
    show counts towards min_count from both columns."""
    spec = Spec.from_dict(
        {
            "groups": {
                "user": {"multi_categorical": {"recent": {"share": "podcast_id"}}},
                "content": {"categorical": {"podcast_id": {"buckets": 64, "min_count": 2}, "tier": 8}},
            },
            "tasks": [{"name": "PromotionStream", "label": "label_stream", "source": "promo"}],
        }
    )
    (tmp_path / "dt=2026-03-02").mkdir()
    table = pa.table(
        {
            "source": ["promo"] * 3,
            "label_stream": pa.array([1, 0, 0], pa.int8()),
            "podcast_id": pa.array([7, 8, 9], pa.int64()),
            "recent": pa.array([[7, 9], [], [11]], pa.list_(pa.int64())),
            "tier": pa.array([1, 2, 3], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "dt=2026-03-02" / "part-00000.parquet")
    (tmp_path / "dt=2026-03-02" / "_SUCCESS.json").write_text("{}")
    examples = ExampleTable.open(str(tmp_path))
    stats = fit_statistics(spec, examples, examples.days)
    assert set(stats.known) == {"podcast_id", "tier"}  # one entry per block of rows
    encoder = Encoder(spec, stats)
    assert encoder.offsets["recent"] == encoder.offsets["podcast_id"] and encoder.table_rows == 64 + 8
    block = encoder.encode_rows(table)
    show = {f.name: j for j, f in enumerate(encoder.single)}["podcast_id"]
    # 7 and 9 are seen twice across both columns (known), 8 and 11 once (the block's cold-start row).
    assert block.bag_val.tolist()[:2] == [block.cat[0, show], block.cat[2, show]]
    assert block.cat[1, show] == encoder.offsets["podcast_id"] and block.bag_val[2] == encoder.offsets["podcast_id"]
    assert encoder.settings()["features"]["recent"]["shares"] == "podcast_id"


def test_a_table_without_a_source_column_is_one_source(tabular_toy):
    examples, spec_path, days = tabular_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    catalog = label_catalog(spec, table, table.days)
    assert [catalog[d]["rows"] for d in sorted(catalog)] == [{"all": 6000}, {"all": 2000}, {"all": 2000}]
    positives = catalog[days["train"][0]]["labels"]["click"]["all"]["positives"]
    clicks = pq.read_table(f"{examples}/dt={days['train'][0]}", columns=["click"]).column("click").to_numpy()
    assert positives == int(clicks.sum())
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:1]))
    block = encoder.encode_rows(table.read(table.units(table.days[:1])[0], encoder.columns))
    assert (block.source == 0).all() and block.obs.all()
    plan = plan_sampling(spec, {"all": 6000}, 256, source_ratio=0.5, max_repeats=2.0)
    assert plan.shares is None and plan.expected_batches == 6000 // 256  # nothing to balance


def test_floats_hash_as_the_integers_they_hold():
    floats = hash_buckets(pa.array([3.0, None, float("nan"), -0.0, 2.5, 1e300], pa.float64()), 1024)
    ints = hash_buckets(pa.array([3, None, None, 0], pa.int64()), 1024)
    assert floats[:4].tolist() == ints.tolist() and floats[1] == floats[2] == 0
    assert 0 not in floats[4:] and floats[4] != floats[5]
    assert hash_buckets(pa.array([2.5], pa.float32()), 1024).tolist() == [floats[4]]


def _numeric_table(tmp_path, values: np.ndarray) -> ExampleTable:
    day = tmp_path / "dt=2026-03-02"
    day.mkdir()
    data = pa.table(
        {
            "x": pa.array(values, mask=np.isnan(values)),
            "region": pa.array(np.where(np.arange(values.size) % 7 == 0, np.nan, np.arange(values.size) % 5 * 1.0)),
            "click": pa.array((np.arange(values.size) % 3 == 0).astype(np.int8)),
        }
    )
    pq.write_table(data, day / "part-00000.parquet")
    return ExampleTable.open(str(tmp_path))


def test_bucketed_numerics_get_quantile_edges_of_the_training_split_and_encode_exactly(tmp_path):
    values = np.arange(1000, dtype=np.float64)
    values[::10] = np.nan
    table = _numeric_table(tmp_path, values)
    spec = Spec.from_dict(
        {
            "groups": {
                "row": {
                    "numeric": {"x": {"buckets": 4, "clip": [0, 800], "missing": True}},
                    "categorical": {"region": {"buckets": 16, "floats": True}},
                }
            },
            "tasks": [{"name": "Click", "label": "click"}],
        }
    )
    stats = fit_statistics(spec, table, table.days)
    seen = np.clip(values[~np.isnan(values)], 0, 800)
    assert stats.numeric["x"]["edges"] == np.quantile(seen, [0.25, 0.5, 0.75], method="inverted_cdf").tolist()
    assert stats.numeric["x"]["mean"] == pytest.approx(seen.mean())  # the z-score sees clipped values too
    assert FeatureStats.from_json(json.loads(json.dumps(stats.to_json()))).numeric == stats.numeric
    encoder = Encoder(spec, stats)
    names = [f.name for f in encoder.single]
    assert names == ["region", "x"] and encoder.table_rows == 16 + 5  # four buckets and the null row
    edges = stats.numeric["x"]["edges"]
    rows = pa.table(
        {
            "x": pa.array([None, -5.0, edges[0], np.nextafter(edges[0], 1e9), 5000.0, float("inf")]),
            "region": pa.array([3.0, 3.0, None, 1.0, 1.0, 1.0]),
        }
    )
    block = encoder.encode_rows(rows)
    bucket = block.cat[:, 1] - encoder.offsets["x"]
    # null; below every edge; at the first edge; just above it; clipped to 800 (infinity too)
    assert bucket.tolist() == [0, 1, 1, 2, 4, 4]
    assert block.num[:, 1].tolist() == [1, 0, 0, 0, 0, 0]  # the missing indicator
    assert block.num[4, 0] == pytest.approx((800 - stats.numeric["x"]["mean"]) / stats.numeric["x"]["std"])
    region = block.cat[:, 0] - encoder.offsets["region"]
    assert region[0] == region[1] == hash_buckets(pa.array([3], pa.int64()), 16)[0] and region[2] == 0
    del stats.numeric["x"]["edges"]
    with pytest.raises(DataError, match="statistics lack the bucket edges of feature 'x'"):
        Encoder(spec, stats)


def test_a_value_that_fills_several_quantiles_is_one_bucket(tmp_path):
    values = np.array([0.0] * 700 + [1.0] * 200 + [2.0] * 100)
    table = _numeric_table(tmp_path, values)
    spec = Spec.from_dict(
        {"groups": {"row": {"numeric": {"x": {"buckets": 10}}}}, "tasks": [{"name": "Click", "label": "click"}]}
    )
    stats = fit_statistics(spec, table, table.days)
    assert stats.numeric["x"]["edges"] == [0.0, 1.0]  # of ten buckets asked for, three hold values
    block = Encoder(spec, stats).encode_rows(pa.table({"x": [0.0, 1.0, 2.0]}))
    assert block.cat[:, 0].tolist() == [1, 2, 3]


def test_the_implicit_source_can_be_restricted_to_its_last_days(tabular_toy):
    examples, spec_path, days = tabular_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    two = table.days[:2]
    assert fit_statistics(spec, table, two).rows == 8000
    assert fit_statistics(spec, table, two, source_days={"all": (days["valid"][0],)}).rows == 2000

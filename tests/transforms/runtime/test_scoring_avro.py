"""Avro files encoded from Arrow columns: the bytes fastavro would encode, the registry's header, any block size."""

import io

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from podtarget.schemas import load_schema
from podtarget.schemas.derived import AUDIENCES, USER_RANKINGS, derived_avro_schema
from podtarget.transforms.runtime import columnar_avro
from podtarget.transforms.runtime.columnar_avro import encode_records, supports, write_avro_table
from podtarget.transforms.runtime.storage import arrow_schema


def _table(schema: pa.Schema, n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {}
    for field in schema:
        if pa.types.is_int64(field.type):
            edge = np.array([0, -1, 1, 63, 64, -64, -65, 2**62, -(2**63), 2**63 - 1], np.int64)
            columns[field.name] = pa.array(np.concatenate([edge, rng.integers(-(2**40), 2**40, n - len(edge))]))
        elif pa.types.is_int32(field.type):
            edge = np.array([0, -1, 2**31 - 1, -(2**31), 127, 128], np.int32)
            values = rng.integers(-(2**20), 2**20, n - len(edge)).astype(np.int32)
            columns[field.name] = pa.array(np.concatenate([edge, values]))
        elif pa.types.is_float32(field.type):
            edge = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], np.float32)
            columns[field.name] = pa.array(np.concatenate([edge, rng.random(n - len(edge)).astype(np.float32)]))
        else:
            words = ["", "ad", "promo", "ünïcødé ✓", "x" * 300]
            columns[field.name] = pa.array(rng.choice(words, n).tolist(), pa.string())
    return pa.table(columns, schema=schema)


@pytest.mark.parametrize(("name", "schema"), [("audience", AUDIENCES), ("user_ranking", USER_RANKINGS)])
def test_records_are_encoded_exactly_as_fastavro_encodes_them(name, schema):
    avro = derived_avro_schema(name)
    table = _table(schema, 3000)
    expected = io.BytesIO()
    for record in table.to_pylist():
        fastavro.schemaless_writer(expected, avro.parsed, record)
    assert encode_records(avro, table) == expected.getvalue()


def test_files_read_back_with_the_registry_header_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar_avro, "ROWS_PER_BLOCK", 700)  # several blocks, the last one short
    avro = derived_avro_schema("audience")
    table = _table(AUDIENCES, 2000, seed=1)
    path = tmp_path / "part.avro"
    write_avro_table(str(path), avro, table, sync_marker=b"0123456789abcdef")
    reference = io.BytesIO()
    avro.write(reference, [], sync_marker=b"0123456789abcdef")
    data = path.read_bytes()
    assert data.startswith(reference.getvalue())  # the registry's header: schema, codec, fingerprint, marker
    reader = fastavro.reader(io.BytesIO(data))
    assert list(reader) == table.to_pylist()
    assert reader.metadata["podtarget.fingerprint"] == avro.fingerprint and reader.codec == "deflate"
    empty = tmp_path / "empty.avro"
    write_avro_table(str(empty), avro, table.slice(0, 0), sync_marker=b"0123456789abcdef")
    assert empty.read_bytes() == reference.getvalue()


def test_other_schemas_go_through_the_registry_writer(tmp_path):
    campaign = load_schema("campaign")  # unions, arrays and dates
    assert not supports(campaign) and supports(derived_avro_schema("user_ranking"))
    rows = pa.Table.from_pylist(
        [
            {
                "campaign_id": 1,
                "channel": "ad",
                "podcast_id": 2,
                "objective": "stream",
                "start_date": None,
                "end_date": None,
                "budget_micros": None,
                "cpm_micros": 5,
                "target_countries": ["SE"],
                "target_age_buckets": [],
                "target_account_types": [],
                "advertiser": None,
            }
        ],
        schema=arrow_schema("campaign"),
    ).drop_columns(["start_date", "end_date"])
    rows = rows.append_column("start_date", pa.array([0], pa.int32())).append_column(
        "end_date", pa.array([3], pa.int32())
    )
    path = tmp_path / "c.avro"
    write_avro_table(str(path), campaign, rows.select(list(campaign.field_names)), sync_marker=b"s" * 16)
    (record,) = list(fastavro.reader(io.BytesIO(path.read_bytes())))
    assert record["cpm_micros"] == 5 and record["target_countries"] == ["SE"] and record["end_date"].day == 4


def test_nulls_in_a_non_null_field_are_refused():
    table = _table(USER_RANKINGS, 10).set_column(0, "user_id", pa.array([None] * 10, pa.int64()))
    with pytest.raises(ValueError, match="has nulls"):
        encode_records(derived_avro_schema("user_ranking"), table)


@pytest.mark.parametrize(("name", "schema"), [("audience", AUDIENCES), ("user_ranking", USER_RANKINGS)])
def test_avro_schemas_match_their_arrow_contracts(name, schema):
    avro = derived_avro_schema(name)
    assert avro.raw["namespace"] == "podtarget.derived" and avro.raw["doc"] == schema.metadata[b"doc"].decode()
    types = {pa.int64(): "long", pa.int32(): "int", pa.float32(): "float", pa.string(): "string"}
    fields = [(f["name"], f["type"], f["doc"]) for f in avro.raw["fields"]]
    assert fields == [(f.name, types[f.type], f.metadata[b"doc"].decode()) for f in schema]
    assert all(not f.nullable for f in schema)
    assert avro.vocabulary("channel") == ("ad", "promo")

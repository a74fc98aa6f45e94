import copy
import datetime
import io

import fastavro
import pytest

from podtarget.schemas import LOG_TABLES, RAW_TABLES, SNAPSHOT_TABLES, SchemaError, load_schema, parse_schema

UTC = datetime.UTC


@pytest.mark.parametrize("table", RAW_TABLES)
def test_every_schema_is_documented_namespaced_and_fingerprinted(table):
    schema = load_schema(table)
    assert schema.raw["namespace"] == "podtarget.raw"
    assert schema.raw["doc"]
    assert all(f["doc"] for f in schema.raw["fields"])
    assert len(schema.fingerprint) == 16 and int(schema.fingerprint, 16) >= 0
    assert schema.version >= 1


def test_fingerprints_differ_between_tables_and_are_stable():
    prints = {t: load_schema(t).fingerprint for t in RAW_TABLES}
    assert len(set(prints.values())) == len(RAW_TABLES)
    load_schema.cache_clear()
    assert {t: load_schema(t).fingerprint for t in RAW_TABLES} == prints


@pytest.mark.parametrize("table", LOG_TABLES)
def test_log_tables_have_required_nullable_ids_and_a_timestamp(table):
    schema = load_schema(table)
    assert "event_ts" in schema.field_names
    assert "user_id" in schema.required_fields
    ts = next(f for f in schema.raw["fields"] if f["name"] == "event_ts")
    assert ts["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_campaign_and_ad_impression_fields_follow_the_contract():
    assert load_schema("ad_impression").vocabulary("ad_format") == ("audio", "video", "display")
    assert load_schema("campaign").vocabulary("channel") == ("ad", "promo")
    assert load_schema("campaign").vocabulary("objective") == ("stream", "click", "follow")
    assert set(SNAPSHOT_TABLES) == {"user", "podcast", "campaign", "creative"}


def _roundtrip(table, records):
    schema = load_schema(table)
    buffer = io.BytesIO()
    schema.write(buffer, records)
    buffer.seek(0)
    return list(schema.read(buffer))


def test_round_trip_with_nulls_arrays_dates_and_timestamps():
    campaign = {
        "campaign_id": 7,
        "channel": "promo",
        "podcast_id": 3,
        "objective": "follow",
        "start_date": datetime.date(2026, 3, 1),
        "end_date": datetime.date(2026, 3, 9),
        "budget_micros": None,
        "cpm_micros": None,
        "target_countries": ["SE", "US"],
        "target_age_buckets": [],
        "target_account_types": ["free"],
        "advertiser": None,
    }
    assert _roundtrip("campaign", [campaign]) == [campaign]
    ts = datetime.datetime(2026, 3, 1, 12, 30, 5, 123000, tzinfo=UTC)
    click = {"event_id": "e1", "event_ts": ts, "impression_id": None, "user_id": 9}
    assert _roundtrip("click", [click]) == [click]


def test_problems_name_each_defect():
    schema = load_schema("ad_impression")
    good = {
        "impression_id": "i",
        "event_ts": 1,
        "user_id": 1,
        "podcast_id": 2,
        "campaign_id": 3,
        "creative_id": 4,
        "ad_format": "audio",
        "slot": "midroll",
        "surface": "now_playing",
        "device": "ios",
        "country": "SE",
        "cost_micros": 5000,
    }
    assert schema.problems(good) == []
    bad = {**good, "user_id": None, "ad_format": "hologram"}
    assert schema.problems(bad) == [
        "user_id: required field is null",
        "ad_format: 'hologram' is not one of ['audio', 'display', 'video']",
    ]
    assert schema.problems({**good, "cost_micros": "free"}) == [
        "record does not match Avro schema podtarget.raw.AdImpression"
    ]


def test_reader_accepts_older_files_when_an_optional_field_is_added():
    """Avro schema resolution: a file written before a field existed reads back with the field's default."""
    current = load_schema("campaign")
    older_raw = copy.deepcopy(dict(current.raw))
    older_raw["fields"] = [f for f in older_raw["fields"] if f["name"] != "advertiser"]
    older = parse_schema(older_raw)
    row = {
        "campaign_id": 1,
        "channel": "ad",
        "podcast_id": 2,
        "objective": "stream",
        "start_date": datetime.date(2026, 3, 1),
        "end_date": datetime.date(2026, 3, 2),
        "budget_micros": 10,
        "cpm_micros": 5,
        "target_countries": [],
        "target_age_buckets": [],
        "target_account_types": ["free"],
    }
    buffer = io.BytesIO()
    older.write(buffer, [row])
    buffer.seek(0)
    assert list(current.read(buffer)) == [{**row, "advertiser": None}]

    # And the next evolution of a log table: a new optional field on today's files.
    newer_raw = copy.deepcopy(dict(load_schema("stream").raw))
    newer_raw["fields"].append(
        {
            "name": "episode_position_ms",
            "type": ["null", "long"],
            "default": None,
            "doc": "Where in the episode playback started.",
        }
    )
    buffer = io.BytesIO()
    stream = {
        "event_id": "s",
        "event_ts": datetime.datetime(2026, 3, 1, tzinfo=UTC),
        "user_id": 1,
        "podcast_id": 2,
        "episode_id": 3,
        "ms_played": 61000,
        "surface": "home",
    }
    load_schema("stream").write(buffer, [stream])
    buffer.seek(0)
    assert list(parse_schema(newer_raw).read(buffer)) == [{**stream, "episode_position_ms": None}]


def test_files_carry_the_fingerprint_in_their_metadata():
    buffer = io.BytesIO()
    load_schema("like").write(buffer, [])
    buffer.seek(0)
    metadata = fastavro.reader(buffer).metadata
    assert metadata["podtarget.fingerprint"] == load_schema("like").fingerprint


def test_schema_errors_say_what_is_wrong():
    with pytest.raises(SchemaError, match="unknown table 'impressions'; expected one of ad_impression"):
        load_schema("impressions")
    raw = copy.deepcopy(dict(load_schema("follow").raw))
    raw["fields"][2] = {**raw["fields"][2], "doc": ""}
    with pytest.raises(SchemaError, match="field 'user_id' has no 'doc'"):
        parse_schema(raw)
    raw = copy.deepcopy(dict(load_schema("follow").raw))
    raw["fields"][2] = {**raw["fields"][2], "type": "long"}
    with pytest.raises(SchemaError, match="marked podtarget.required but its type 'long' is not"):
        parse_schema(raw)
    with pytest.raises(SchemaError, match="declares no podtarget.allowed values"):
        load_schema("follow").vocabulary("user_id")

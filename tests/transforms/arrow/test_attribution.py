"""Last-touch attribution: hand-made scenarios with exact labels, and a property test against a slow reference."""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pytest
from apache_beam.internal.cloudpickle import cloudpickle

from podtarget.schemas.units import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE
from podtarget.transforms.arrow.attribution import (
    LABEL_COLUMNS,
    OUTCOMES,
    AttributionConfig,
    label_impressions,
)
from podtarget.transforms.arrow.example_assembly import IMPRESSIONS

T0 = 1_772_409_600_000  # 2026-03-02T00:00Z, the start of day D
FAR_FUTURE = T0 + 365 * MS_PER_DAY  # a horizon past every window: all labels observed

# The impression columns attribution reads, typed as in the unified impressions contract, in the order the rows
# below are written.
IMPRESSION_SCHEMA = pa.schema(
    [IMPRESSIONS.field(name) for name in ("impression_id", "source", "user_id", "podcast_id", "event_ts")]
)
STREAM_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("podcast_id", pa.int64()), ("event_ts", pa.int64()), ("ms_played", pa.int64())]
)
ENGAGEMENT_SCHEMA = pa.schema([("user_id", pa.int64()), ("podcast_id", pa.int64()), ("event_ts", pa.int64())])
CLICK_SCHEMA = pa.schema([("impression_id", pa.string()), ("event_ts", pa.int64())])


def table(schema: pa.Schema, rows: Sequence[tuple]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, row, strict=True)) for row in rows], schema=schema)


def labels(
    target: Sequence[tuple],
    competitors: Sequence[tuple] = (),
    streams: Sequence[tuple] = (),
    follows: Sequence[tuple] = (),
    likes: Sequence[tuple] = (),
    clicks: Sequence[tuple] = (),
    horizon_end_ms: int = FAR_FUTURE,
    config: AttributionConfig | None = None,
) -> dict[str, list]:
    """Run label_impressions on rows given as tuples; returns the output as columns."""
    outcomes = {
        "stream": table(STREAM_SCHEMA, streams),
        "follow": table(ENGAGEMENT_SCHEMA, follows),
        "like": table(ENGAGEMENT_SCHEMA, likes),
    }
    result = label_impressions(
        table(IMPRESSION_SCHEMA, target),
        table(IMPRESSION_SCHEMA, competitors),
        outcomes,
        table(CLICK_SCHEMA, clicks),
        horizon_end_ms,
        config or AttributionConfig(),
    )
    return result.to_pydict()


def stream(user: int, podcast: int, ts: int, ms_played: int = 5 * MS_PER_MINUTE) -> tuple:
    return (user, podcast, ts, ms_played)


# -- last touch for streams -----------------------------------------------------------------------------------------
def test_a_stream_before_the_impression_is_not_credited():
    result = labels(
        [("i1", "ad", 1, 7, T0 + MS_PER_HOUR)], streams=[stream(1, 7, T0 + MS_PER_HOUR - 1), stream(1, 7, T0)]
    )
    assert result["label_stream"] == [0]


def test_a_stream_at_the_same_ms_as_the_impression_is_not_credited():
    assert labels([("i1", "ad", 1, 7, T0)], streams=[stream(1, 7, T0)])["label_stream"] == [0]


def test_a_stream_exactly_at_the_window_edge_is_credited_one_ms_later_is_not():
    target = [("at-edge", "ad", 1, 7, T0), ("past-edge", "ad", 2, 7, T0)]
    streams = [stream(1, 7, T0 + 72 * MS_PER_HOUR), stream(2, 7, T0 + 72 * MS_PER_HOUR + 1)]
    assert labels(target, streams=streams)["label_stream"] == [1, 0]


def test_the_later_of_two_impressions_of_the_same_show_takes_the_stream():
    target = [("first", "ad", 1, 7, T0), ("second", "ad", 1, 7, T0 + MS_PER_HOUR)]
    assert labels(target, streams=[stream(1, 7, T0 + 2 * MS_PER_HOUR)])["label_stream"] == [0, 1]


def test_a_promotion_after_an_ad_of_the_same_show_takes_the_stream():
    target = [("ad", "ad", 1, 7, T0), ("promo", "promo", 1, 7, T0 + MS_PER_HOUR)]
    assert labels(target, streams=[stream(1, 7, T0 + 2 * MS_PER_HOUR)])["label_stream"] == [0, 1]


def test_a_competitor_served_the_next_day_steals_the_credit():
    target = [("day-d", "ad", 1, 7, T0 + 20 * MS_PER_HOUR)]
    competitors = [("day-d-plus-1", "promo", 1, 7, T0 + 30 * MS_PER_HOUR)]
    streams = [stream(1, 7, T0 + 31 * MS_PER_HOUR)]
    assert labels(target, competitors, streams=streams)["label_stream"] == [0]
    # Without the competitor the same stream is the target's, and a competitor after the stream changes nothing.
    assert labels(target, streams=streams)["label_stream"] == [1]
    assert labels(target, competitors, streams=[stream(1, 7, T0 + 25 * MS_PER_HOUR)])["label_stream"] == [1]


def test_a_competitor_without_an_impression_id_still_takes_the_credit():
    target = [("day-d", "ad", 1, 7, T0)]
    competitors = pa.table(
        {"source": ["ad"], "user_id": [1], "podcast_id": [7], "event_ts": [T0 + MS_PER_HOUR]},
        schema=IMPRESSION_SCHEMA.remove(0),
    )
    result = label_impressions(
        table(IMPRESSION_SCHEMA, target),
        competitors,
        {"stream": table(STREAM_SCHEMA, [stream(1, 7, T0 + 2 * MS_PER_HOUR)])},
        table(CLICK_SCHEMA, []),
        FAR_FUTURE,
    )
    assert result.column("label_stream").to_pylist() == [0]


def test_a_stream_of_another_show_or_by_another_user_is_not_credited():
    target = [("i1", "ad", 1, 7, T0)]
    assert labels(target, streams=[stream(1, 8, T0 + MS_PER_HOUR), stream(2, 7, T0 + MS_PER_HOUR)])["label_stream"] == [
        0
    ]


@pytest.mark.parametrize(("ms_played", "expected"), [(59_999, 0), (60_000, 1)])
def test_only_streams_of_at_least_min_stream_ms_count(ms_played, expected):
    result = labels([("i1", "ad", 1, 7, T0)], streams=[stream(1, 7, T0 + MS_PER_HOUR, ms_played)])
    assert result["label_stream"] == [expected]


def test_a_short_stream_does_not_take_the_credit_from_an_earlier_impression_either():
    target = [("earlier", "ad", 1, 7, T0), ("later", "ad", 1, 7, T0 + MS_PER_HOUR)]
    streams = [stream(1, 7, T0 + 30 * MS_PER_MINUTE), stream(1, 7, T0 + 2 * MS_PER_HOUR, ms_played=1_000)]
    assert labels(target, streams=streams)["label_stream"] == [1, 0]


def test_one_stream_credits_one_impression_two_streams_credit_two():
    target = [("first", "ad", 1, 7, T0), ("second", "promo", 1, 7, T0 + MS_PER_HOUR)]
    after_both = stream(1, 7, T0 + 2 * MS_PER_HOUR)
    between = stream(1, 7, T0 + 30 * MS_PER_MINUTE)
    assert labels(target, streams=[after_both])["label_stream"] == [0, 1]
    assert labels(target, streams=[after_both, between])["label_stream"] == [1, 1]


def test_the_latest_impression_whose_own_window_covers_the_stream_wins():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 24 * MS_PER_HOUR})
    target = [("ad", "ad", 1, 7, T0), ("promo", "promo", 1, 7, T0 + 10 * MS_PER_HOUR)]
    # At 40 h the promotion (30 h ago) is past its 24 h window, the earlier ad (40 h ago) is inside its 72 h.
    assert labels(target, streams=[stream(1, 7, T0 + 40 * MS_PER_HOUR)], config=config)["label_stream"] == [1, 0]
    # At 20 h both windows cover the stream and the later promotion wins.
    assert labels(target, streams=[stream(1, 7, T0 + 20 * MS_PER_HOUR)], config=config)["label_stream"] == [0, 1]
    # At 80 h neither window covers it.
    assert labels(target, streams=[stream(1, 7, T0 + 80 * MS_PER_HOUR)], config=config)["label_stream"] == [0, 0]


def test_an_earlier_impression_of_the_same_channel_never_wins_past_a_later_one_that_is_out_of_its_window():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 24 * MS_PER_HOUR})
    target = [("old-promo", "promo", 1, 7, T0), ("promo", "promo", 1, 7, T0 + 10 * MS_PER_HOUR)]
    assert labels(target, streams=[stream(1, 7, T0 + 40 * MS_PER_HOUR)], config=config)["label_stream"] == [0, 0]


def test_a_competitor_out_of_its_window_leaves_the_credit_to_an_earlier_target_in_its_window():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 1 * MS_PER_HOUR})
    target = [("day-d-ad", "ad", 1, 7, T0 + 20 * MS_PER_HOUR)]
    competitors = [("next-day-promo", "promo", 1, 7, T0 + 30 * MS_PER_HOUR)]
    streams = [stream(1, 7, T0 + 40 * MS_PER_HOUR)]
    assert labels(target, competitors, streams=streams, config=config)["label_stream"] == [1]


# -- follows and likes ----------------------------------------------------------------------------------------------
def test_follow_and_like_use_their_own_windows():
    config = AttributionConfig(
        follow_window_ms={"ad": 48 * MS_PER_HOUR, "promo": 48 * MS_PER_HOUR},
        like_window_ms={"ad": 12 * MS_PER_HOUR, "promo": 12 * MS_PER_HOUR},
    )
    target = [("i1", "ad", 1, 7, T0)]
    engagement = [(1, 7, T0 + 30 * MS_PER_HOUR)]
    result = labels(target, follows=engagement, likes=engagement, config=config)
    assert (result["label_follow"], result["label_like"], result["label_stream"]) == ([1], [0], [0])


def test_follows_and_likes_are_credited_by_last_touch_too():
    target = [("ad", "ad", 1, 7, T0), ("promo", "promo", 1, 7, T0 + MS_PER_HOUR), ("other-show", "ad", 1, 8, T0)]
    result = labels(target, follows=[(1, 7, T0 + 2 * MS_PER_HOUR)], likes=[(1, 7, T0 + 30 * MS_PER_MINUTE)])
    assert result["label_follow"] == [0, 1, 0]
    assert result["label_like"] == [1, 0, 0]


# -- ties -----------------------------------------------------------------------------------------------------------
def test_of_impressions_at_the_same_ms_the_greater_impression_id_wins():
    target = [("b", "ad", 1, 7, T0), ("a", "promo", 1, 7, T0), ("B", "ad", 1, 7, T0)]
    assert labels(target, streams=[stream(1, 7, T0 + MS_PER_HOUR)])["label_stream"] == [1, 0, 0]


def test_ties_with_competitors_by_impression_id_and_missing_ids_lose():
    target = [("m", "ad", 1, 7, T0)]
    streams = [stream(1, 7, T0 + MS_PER_HOUR)]
    assert labels(target, [("z", "ad", 1, 7, T0)], streams=streams)["label_stream"] == [0]
    assert labels(target, [("a", "ad", 1, 7, T0)], streams=streams)["label_stream"] == [1]
    assert labels(target, [(None, "ad", 1, 7, T0)], streams=streams)["label_stream"] == [1]
    # The same impression listed again among the competitors is not a rival.
    assert labels(target, [("m", "ad", 1, 7, T0)], streams=streams)["label_stream"] == [1]


def test_a_tied_impression_out_of_its_window_leaves_the_credit_to_the_other():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 24 * MS_PER_HOUR})
    target = [("z-promo", "promo", 1, 7, T0), ("a-ad", "ad", 1, 7, T0)]
    assert labels(target, streams=[stream(1, 7, T0 + 30 * MS_PER_HOUR)], config=config)["label_stream"] == [0, 1]


# -- clicks ---------------------------------------------------------------------------------------------------------
def test_clicks_join_by_impression_id_inside_the_click_window():
    target = [
        ("soon", "ad", 1, 7, T0),
        ("at-edge", "ad", 1, 7, T0 + 1),
        ("too-late", "promo", 2, 7, T0),
        ("before", "ad", 3, 7, T0 + MS_PER_HOUR),
        ("never", "ad", 4, 7, T0),
    ]
    clicks = [
        ("soon", T0 + MS_PER_MINUTE),
        ("at-edge", T0 + 1 + MS_PER_DAY),
        ("too-late", T0 + MS_PER_DAY + 1),
        ("before", T0 + MS_PER_HOUR - 1),
        ("unknown-impression", T0 + MS_PER_MINUTE),
    ]
    assert labels(target, clicks=clicks)["label_click"] == [1, 1, 0, 0, 0]


def test_any_click_in_the_window_counts_and_clicks_do_not_go_by_last_touch():
    target = [("first", "ad", 1, 7, T0), ("second", "ad", 1, 7, T0 + MS_PER_HOUR)]
    clicks = [("first", T0 - 1), ("first", T0 + 2 * MS_PER_HOUR), ("second", T0 + 2 * MS_PER_DAY)]
    assert labels(target, clicks=clicks)["label_click"] == [1, 0]


# -- maturity -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("horizon_end_ms", "expected_stream", "expected_click"),
    [
        (T0 + 72 * MS_PER_HOUR, None, 0),  # the last ms of the stream window is not logged yet
        (T0 + 72 * MS_PER_HOUR + 1, 0, 0),
        (T0 + MS_PER_DAY, None, None),
        (T0 + MS_PER_DAY + 1, None, 0),
    ],
)
def test_labels_are_null_exactly_while_the_window_reaches_past_the_horizon(
    horizon_end_ms, expected_stream, expected_click
):
    result = labels([("i1", "ad", 1, 7, T0)], horizon_end_ms=horizon_end_ms)
    assert (result["label_stream"], result["label_click"]) == ([expected_stream], [expected_click])
    assert result["label_follow"] == result["label_like"] == [None]  # 7-day windows


def test_credited_labels_stay_1_before_their_window_is_fully_logged():
    result = labels(
        [("i1", "ad", 1, 7, T0), ("i2", "ad", 2, 7, T0)],
        streams=[stream(1, 7, T0 + MS_PER_HOUR)],
        follows=[(1, 7, T0 + MS_PER_HOUR)],
        likes=[(1, 7, T0 + MS_PER_HOUR)],
        clicks=[("i1", T0 + MS_PER_MINUTE)],
        horizon_end_ms=T0 + 2 * MS_PER_HOUR,
    )
    assert [result[column] for column in LABEL_COLUMNS] == [[1, None]] * 4


def test_the_windows_of_each_channel_decide_maturity():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 24 * MS_PER_HOUR})
    result = labels(
        [("ad", "ad", 1, 7, T0), ("promo", "promo", 1, 8, T0)], horizon_end_ms=T0 + 48 * MS_PER_HOUR, config=config
    )
    assert result["label_stream"] == [None, 0]


# -- shapes and edge cases ------------------------------------------------------------------------------------------
def test_output_rows_follow_the_target_order_with_int8_labels():
    target = [
        ("i3", "promo", 3, 7, T0 + 3 * MS_PER_HOUR),
        ("i1", "ad", 1, 7, T0 + 5 * MS_PER_HOUR),
        ("i2", "ad", 2, 9, T0),
        ("i0", "promo", 1, 7, T0 + MS_PER_HOUR),
    ]
    result = label_impressions(
        table(IMPRESSION_SCHEMA, target),
        table(IMPRESSION_SCHEMA, []),
        {"stream": table(STREAM_SCHEMA, [stream(2, 9, T0 + MS_PER_HOUR), stream(3, 7, T0 + 4 * MS_PER_HOUR)])},
        table(CLICK_SCHEMA, [("i0", T0 + MS_PER_HOUR)]),
        FAR_FUTURE,
    )
    assert result.column_names == ["impression_id", *LABEL_COLUMNS]
    assert all(result.schema.field(column).type == pa.int8() for column in LABEL_COLUMNS)
    assert result.column("impression_id").to_pylist() == ["i3", "i1", "i2", "i0"]
    assert result.column("label_stream").to_pylist() == [1, 0, 1, 0]
    assert result.column("label_click").to_pylist() == [0, 0, 0, 1]


def test_no_outcomes_no_competitors_and_missing_outcome_keys_give_all_zero_labels():
    target = table(IMPRESSION_SCHEMA, [("i1", "ad", 1, 7, T0), ("i2", "promo", 2, 8, T0)])
    no_columns = pa.table({})
    result = label_impressions(target, no_columns, {}, table(CLICK_SCHEMA, []), FAR_FUTURE)
    assert result.to_pydict() == {"impression_id": ["i1", "i2"], **{column: [0, 0] for column in LABEL_COLUMNS}}
    only_follows = {"follow": table(ENGAGEMENT_SCHEMA, [(1, 7, T0 + MS_PER_HOUR)])}
    result = label_impressions(target, table(IMPRESSION_SCHEMA, []), only_follows, table(CLICK_SCHEMA, []), FAR_FUTURE)
    assert result.column("label_follow").to_pylist() == [1, 0]
    assert result.column("label_stream").to_pylist() == [0, 0]


def test_an_empty_target_gives_an_empty_table():
    result = label_impressions(
        table(IMPRESSION_SCHEMA, []),
        table(IMPRESSION_SCHEMA, [("c1", "ad", 1, 7, T0)]),
        {"stream": table(STREAM_SCHEMA, [stream(1, 7, T0 + MS_PER_HOUR)])},
        table(CLICK_SCHEMA, [("c1", T0 + 1)]),
        FAR_FUTURE,
    )
    assert result.num_rows == 0
    assert result.schema == pa.schema([("impression_id", pa.string()), *((c, pa.int8()) for c in LABEL_COLUMNS)])


def test_events_far_outside_any_window_are_ignored():
    target = [("i1", "ad", 1, 7, T0)]
    streams = [stream(1, 7, T0 - 30 * MS_PER_DAY), stream(1, 7, T0 + 30 * MS_PER_DAY), stream(1, 7, 0)]
    assert labels(target, streams=streams)["label_stream"] == [0]


def test_an_unknown_source_is_an_error():
    with pytest.raises(ValueError, match=r"target.source needs values in \('ad', 'promo'\), got \['email'\]"):
        labels([("i1", "email", 1, 7, T0)])
    with pytest.raises(ValueError, match=r"competitors.source needs values in .*, got \[None\]"):
        labels([("i1", "ad", 1, 7, T0)], competitors=[("c1", None, 1, 7, T0)])


def test_a_time_range_too_wide_for_the_int64_sort_keys_is_an_error():
    target = [("i1", "ad", 1, 7, 0), ("i2", "ad", 2, 7, 2**62)]
    with pytest.raises(ValueError, match="label fewer days per call"):
        labels(target)


# -- config -----------------------------------------------------------------------------------------------------------
def test_config_defaults_and_window_lookup():
    config = AttributionConfig(stream_window_ms={"ad": 72 * MS_PER_HOUR, "promo": 24 * MS_PER_HOUR})
    assert config.window_ms("stream", "promo") == 24 * MS_PER_HOUR
    assert config.window_ms("follow", "ad") == config.window_ms("like", "promo") == 7 * MS_PER_DAY
    assert config.window_ms("click", "promo") == MS_PER_DAY
    assert config.max_window_ms() == 7 * MS_PER_DAY
    assert AttributionConfig().min_stream_ms == 60_000
    with pytest.raises(ValueError, match="needs an outcome in"):
        config.window_ms("share", "ad")
    with pytest.raises(ValueError, match="needs a source in"):
        config.window_ms("stream", "email")


def test_config_is_comparable_picklable_and_not_changed_by_the_callers_dict():
    windows = {"ad": MS_PER_HOUR, "promo": 2 * MS_PER_HOUR}
    config = AttributionConfig(stream_window_ms=windows, min_stream_ms=0)
    windows["ad"] = 5
    assert config.window_ms("stream", "ad") == MS_PER_HOUR
    assert config == AttributionConfig(stream_window_ms={"ad": MS_PER_HOUR, "promo": 2 * MS_PER_HOUR}, min_stream_ms=0)
    assert config != AttributionConfig()
    assert pickle.loads(pickle.dumps(config)) == config
    assert cloudpickle.loads(cloudpickle.dumps(config)) == config
    with pytest.raises(TypeError):
        config.stream_window_ms["ad"] = 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"stream_window_ms": {"ad": MS_PER_HOUR}},
            "The 'stream_window_ms' parameter of AttributionConfig must be a mapping with keys {'ad', 'promo'}. "
            "Got {'ad': 3600000} instead.",
        ),
        (
            {"follow_window_ms": {"ad": MS_PER_HOUR, "promo": MS_PER_HOUR, "email": MS_PER_HOUR}},
            "The 'follow_window_ms' parameter of AttributionConfig must be a mapping with keys {'ad', 'promo'}. "
            "Got {'ad': 3600000, 'promo': 3600000, 'email': 3600000} instead.",
        ),
        (
            {"like_window_ms": 5},
            "The 'like_window_ms' parameter of AttributionConfig must be a mapping with keys {'ad', 'promo'}. "
            "Got 5 instead.",
        ),
        (
            {"stream_window_ms": {"ad": 0, "promo": MS_PER_HOUR}},
            """The 'stream_window_ms["ad"]' parameter of AttributionConfig must be an int in the range """
            "[1, 3153600000000]. Got 0 instead.",
        ),
        (
            {"stream_window_ms": {"ad": MS_PER_HOUR, "promo": 1.5}},
            """The 'stream_window_ms["promo"]' parameter of AttributionConfig must be an int in the range """
            "[1, 3153600000000]. Got 1.5 instead.",
        ),
        (
            {"stream_window_ms": {"ad": True, "promo": MS_PER_HOUR}},
            """The 'stream_window_ms["ad"]' parameter of AttributionConfig must be an int in the range """
            "[1, 3153600000000]. Got True instead.",
        ),
        (
            {"like_window_ms": {"ad": MS_PER_HOUR, "promo": 200 * 365 * MS_PER_DAY}},
            """The 'like_window_ms["promo"]' parameter of AttributionConfig must be an int in the range """
            "[1, 3153600000000]. Got 6307200000000 instead.",
        ),
        (
            {"click_window_ms": -1},
            "The 'click_window_ms' parameter of AttributionConfig must be an int in the range [1, 3153600000000]. "
            "Got -1 instead.",
        ),
        (
            {"min_stream_ms": -1},
            "The 'min_stream_ms' parameter of AttributionConfig must be an int in the range [0, inf). Got -1 instead.",
        ),
        (
            {"min_stream_ms": "60s"},
            "The 'min_stream_ms' parameter of AttributionConfig must be an int in the range [0, inf). "
            "Got '60s' instead.",
        ),
    ],
)
def test_config_validation_names_the_parameter_the_value_and_what_was_expected(kwargs, message):
    with pytest.raises(ValueError) as raised:
        AttributionConfig(**kwargs)
    assert str(raised.value) == message


# -- property test against a slow reference -------------------------------------------------------------------------
def reference_labels(
    target: list[tuple],
    competitors: list[tuple],
    events: Mapping[str, list[tuple]],
    clicks: list[tuple],
    horizon_end_ms: int,
    config: AttributionConfig,
) -> dict[str, list]:
    """label_impressions written the obvious way: every event scans every candidate."""
    candidates = [(row, True) for row in target] + [(row, False) for row in competitors]

    def later_first(candidate: tuple) -> tuple:
        (impression_id, _, _, _, ts), is_target = candidate
        return (ts, impression_id is not None, impression_id or "", is_target)

    result: dict[str, list] = {"impression_id": [row[0] for row in target]}
    for outcome in OUTCOMES:
        credited = set()
        if outcome == "click":
            target_ts = {row[0]: row[4] for row in target}
            for impression_id, click_ts in clicks:
                if impression_id in target_ts and 0 <= click_ts - target_ts[impression_id] <= config.click_window_ms:
                    credited.add(impression_id)
        for user, podcast, event_ts, *ms_played in events.get(outcome, []):
            if ms_played and ms_played[0] < config.min_stream_ms:
                continue
            covering = [
                (row, is_target)
                for row, is_target in candidates
                if (row[2], row[3]) == (user, podcast)
                and row[4] < event_ts
                and event_ts - row[4] <= config.window_ms(outcome, row[1])
            ]
            if covering:
                (winner, _, _, _, _), winner_is_target = max(covering, key=later_first)
                if winner_is_target:
                    credited.add(winner)
        result[f"label_{outcome}"] = [
            1
            if impression_id in credited
            else (None if ts + config.window_ms(outcome, source) >= horizon_end_ms else 0)
            for impression_id, source, _, _, ts in target
        ]
    return result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_match_a_slow_reference_on_random_worlds(seed):
    rng = random.Random(seed)
    config = AttributionConfig(
        stream_window_ms={"ad": 40, "promo": 15},
        follow_window_ms={"ad": 10, "promo": 60},
        like_window_ms={"ad": 25, "promo": 25},
        click_window_ms=20,
        min_stream_ms=5,
    )
    # Few users, shows and timestamps, so that pairs repeat, timestamps tie and windows cut between candidates.
    # Ids are numbers as strings ("9" > "10"); competitors may lack ids and may be older than every target.
    id_numbers = rng.sample(range(2_000), 600)
    sources = ("ad", "promo")
    target = [
        (str(number), rng.choice(sources), rng.randrange(5), rng.randrange(5), rng.randrange(100, 160))
        for number in id_numbers[:300]
    ]
    competitors = [
        (
            None if rng.random() < 0.2 else str(number),
            rng.choice(sources),
            rng.randrange(5),
            rng.randrange(5),
            rng.randrange(80, 260),
        )
        for number in id_numbers[300:]
    ]
    streams = [(rng.randrange(6), rng.randrange(6), rng.randrange(50, 320), rng.randrange(10)) for _ in range(300)]
    events = {
        "stream": streams,
        "follow": [(rng.randrange(5), rng.randrange(5), rng.randrange(50, 320)) for _ in range(150)],
        "like": [(rng.randrange(5), rng.randrange(5), rng.randrange(50, 320)) for _ in range(150)],
    }
    clicks = [(row[0], row[4] + rng.randrange(-5, 30)) for row in rng.sample(target, 100)] + [
        (f"unknown-{n}", 130) for n in range(10)
    ]
    horizon_end_ms = rng.randrange(150, 250)

    result = labels(
        target, competitors, events["stream"], events["follow"], events["like"], clicks, horizon_end_ms, config
    )

    expected = reference_labels(target, competitors, events, clicks, horizon_end_ms, config)
    assert result == expected
    assert all(sum(value == 1 for value in expected[column]) > 10 for column in LABEL_COLUMNS)  # not vacuous

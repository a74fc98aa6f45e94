"""Point-in-time user and podcast features: exact values on hand-made logs, and no leakage on simulated ones.

Schemas are compared with ``check_metadata=True``: the outputs must carry the contracts' field docs and
nullability, not just names and types.
"""

from __future__ import annotations

import collections
import datetime
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from podtarget.schemas.derived import PODCAST_FEATURES, POPULARITY_TIERS, USER_FEATURES
from podtarget.schemas.units import MS_PER_DAY, MS_PER_HOUR
from podtarget.transforms.arrow.features import (
    LISTENING,
    FeatureConfig,
    history_window_ms,
    merge_listening,
    podcast_features,
    podcast_listening_ms,
    popularity_tiers,
    user_features,
)
from podtarget.transforms.runtime.storage import arrow_schema

D = datetime.date(2026, 3, 30)
START, END = history_window_ms(D, 28)  # the user window [D - 28 days, D)
LONG = 30 * 60_000  # a comfortably qualifying play
EVENT_TABLES = ("stream", "follow", "ad_impression", "promo_impression", "click")


def table(name: str, rows: list[dict]) -> pa.Table:
    """Rows of raw table ``name`` in its Arrow schema; columns a row leaves out are null."""
    return pa.Table.from_pylist(rows, schema=arrow_schema(name))


def user(user_id: int | None, **fields: object) -> dict:
    row = dict(
        user_id=user_id,
        country="SE",
        age_bucket="25-34",
        account_type="free",
        signup_date=datetime.date(2026, 1, 1),
        primary_device="ios",
        language="sv",
    )
    return {**row, **fields}


def show(podcast_id: int | None, genres: Sequence[str] = (), topics: Sequence[str] = (), **fields: object) -> dict:
    row = dict(
        podcast_id=podcast_id,
        publisher="pub",
        genres=list(genres),
        topics=list(topics),
        language="en",
        is_original=False,
        created_date=datetime.date(2026, 3, 1),
        explicit=False,
        episode_count=3,
    )
    return {**row, **fields}


def stream(user_id: int | None, podcast_id: int | None, ts: int = END - MS_PER_HOUR, ms: int = LONG) -> dict:
    return dict(event_id="s", event_ts=ts, user_id=user_id, podcast_id=podcast_id, episode_id=1, ms_played=ms)


def features(
    users: list[dict], podcasts: Sequence[dict] = (), config: FeatureConfig | None = None, **events: list[dict]
) -> dict[int, dict]:
    """``user_features`` of D as ``{user_id: row}``, after checking the table's schema and order."""
    result = user_features(
        D,
        table("user", users),
        table("podcast", list(podcasts)),
        *(table(name, events.get(name, [])) for name in EVENT_TABLES),
        config=config or FeatureConfig(),
    )
    assert result.schema.equals(USER_FEATURES, check_metadata=True)
    rows = result.to_pylist()
    assert [r["user_id"] for r in rows] == sorted(r["user_id"] for r in rows)
    return {r["user_id"]: r for r in rows}


# -- windows -------------------------------------------------------------------------------------------------------
def test_history_window_is_the_whole_utc_days_before_d():
    start, end = history_window_ms(datetime.date(1970, 1, 3), 2)
    assert (start, end) == (0, 2 * MS_PER_DAY)
    assert END - START == 28 * MS_PER_DAY


BOUNDARY_TIMES = {END - 1: True, START: True, END: False, END + 5 * MS_PER_HOUR: False, START - 1: False}


def test_user_features_see_only_events_in_the_window_before_d():
    events = collections.defaultdict(list)
    for n, ts in enumerate(BOUNDARY_TIMES):
        events["stream"].append(stream(1, 10 + n, ts=ts))
        events["follow"].append(dict(event_id="f", event_ts=ts, user_id=1, podcast_id=10 + n))
        events["ad_impression"].append(dict(impression_id=f"a{n}", event_ts=ts, user_id=1, podcast_id=10 + n))
        events["promo_impression"].append(dict(impression_id=f"p{n}", event_ts=ts, user_id=1, podcast_id=10 + n))
        events["click"] += [dict(event_id="c", event_ts=ts, impression_id=f"{kind}{n}", user_id=1) for kind in "ap"]
    podcasts = [show(10 + n, genres=[f"g{n}"], topics=[f"t{n}"]) for n in range(len(BOUNDARY_TIMES))]
    row = features([user(1)], podcasts, **events)[1]
    assert row["user_streams_28d"] == row["user_follows_28d"] == row["user_distinct_podcasts_28d"] == 2
    assert row["user_listen_hours_28d"] == pytest.approx(2 * LONG / MS_PER_HOUR)
    assert sorted(row["user_recent_podcasts_28d"]) == [10, 11]  # streamed at END - 1 and START
    assert row["user_followed_podcasts_28d"] == [10, 11]  # START is older than END - 1
    assert row["user_top_genres_28d"] == ["g0", "g1"]
    assert row["user_top_topics_28d"] == ["t0", "t1"]
    counts = ("user_ad_impressions_28d", "user_promo_impressions_28d", "user_ad_clicks_28d", "user_promo_clicks_28d")
    assert [row[c] for c in counts] == [2, 2, 2, 2]


def test_podcast_listening_sees_only_qualifying_streams_in_its_window_before_d():
    start, end = history_window_ms(D, 30)
    rows = [
        stream(1, 7, ts=end - 1, ms=100_000),
        stream(1, 7, ts=start, ms=60_000),  # first counted ms, and exactly 60 s counts
        stream(1, 7, ts=end, ms=1_000_000),
        stream(1, 7, ts=end + MS_PER_DAY, ms=1_000_000),
        stream(1, 7, ts=start - 1, ms=1_000_000),
        stream(1, 7, ms=59_999),
        stream(None, 7, ms=1_000_000),  # defective rows
        stream(1, None, ms=1_000_000),
        stream(2, 8, ts=start - 1, ms=1_000_000),
    ]
    listening = podcast_listening_ms(table("stream", rows), D)
    assert listening.schema.equals(LISTENING)
    assert listening.to_pylist() == [{"podcast_id": 7, "listen_ms": 160_000}]
    result = podcast_features(D, table("podcast", [show(8), show(7)]), listening)
    assert result.column("podcast_listen_hours_30d").to_pylist() == pytest.approx([160_000 / MS_PER_HOUR, 0.0])


def test_short_streams_do_not_count_but_exactly_sixty_seconds_does():
    podcasts = [show(1, genres=["short"], topics=["short"]), show(2, genres=["long"], topics=["long"])]
    streams = [stream(1, 1, ms=59_999), stream(1, 1, ms=0), stream(1, 2, ms=60_000)]
    row = features([user(1)], podcasts, stream=streams)[1]
    assert row["user_streams_28d"] == 1
    assert row["user_listen_hours_28d"] == pytest.approx(60_000 / MS_PER_HOUR)
    assert row["user_distinct_podcasts_28d"] == 1
    assert row["user_recent_podcasts_28d"] == [2]
    assert row["user_top_genres_28d"] == ["long"]
    assert row["user_top_topics_28d"] == ["long"]


# -- ranked lists --------------------------------------------------------------------------------------------------
def test_top_genres_and_topics_rank_by_streams_then_name_and_truncate():
    podcasts = [
        show(1, genres=["news", "comedy"], topics=["t-b", "t-a"]),
        show(2, genres=["true_crime"], topics=["t-c"]),
        show(3, genres=["sports"], topics=["t-a"]),
    ]
    # Streams per show: 1 -> 2, 2 -> 2, 3 -> 1; so news = comedy = true_crime = 2 (ties by name), sports = 1;
    # topics: t-a = 2 + 1 = 3, t-b = t-c = 2.
    streams = [stream(1, 1), stream(1, 1), stream(1, 2), stream(1, 2), stream(1, 3)]
    row = features([user(1)], podcasts, stream=streams)[1]
    assert row["user_top_genres_28d"] == ["comedy", "news", "true_crime", "sports"]
    assert row["user_top_topics_28d"] == ["t-a", "t-b", "t-c"]
    short = FeatureConfig(top_genres=2, top_topics=1)
    row = features([user(1)], podcasts, config=short, stream=streams)[1]
    assert row["user_top_genres_28d"] == ["comedy", "news"]
    assert row["user_top_topics_28d"] == ["t-a"]


def test_shows_missing_from_the_snapshot_count_as_streams_but_add_no_tastes():
    row = features([user(1)], [show(1, genres=["news"])], stream=[stream(1, 99), stream(1, 99), stream(1, 1)])[1]
    assert row["user_streams_28d"] == 3
    assert row["user_recent_podcasts_28d"] == [99, 1]
    assert row["user_top_genres_28d"] == ["news"]


def test_recent_podcasts_rank_by_streams_then_smaller_id_and_truncate():
    counts = {30: 1, 5: 3, 20: 2, 10: 2, 40: 1}
    streams = [stream(1, pid) for pid, n in counts.items() for _ in range(n)]
    assert features([user(1)], stream=streams)[1]["user_recent_podcasts_28d"] == [5, 10, 20, 30, 40]
    row = features([user(1)], config=FeatureConfig(recent_podcasts=3), stream=streams)[1]
    assert row["user_recent_podcasts_28d"] == [5, 10, 20]
    assert row["user_distinct_podcasts_28d"] == 5


def test_followed_podcasts_are_distinct_most_recent_first_and_truncated():
    def follow(podcast_id: int, hours_before_d: int) -> dict:
        return dict(event_id="f", event_ts=END - hours_before_d * MS_PER_HOUR, user_id=1, podcast_id=podcast_id)

    # Show 7 is followed twice: it takes the place of its latest follow. Shows 3 and 4 tie: smaller id first.
    follows = [follow(7, 50), follow(3, 10), follow(4, 10), follow(9, 5), follow(7, 1), follow(8, 30)]
    row = features([user(1)], follow=follows)[1]
    assert row["user_followed_podcasts_28d"] == [7, 9, 3, 4, 8]
    assert row["user_follows_28d"] == 6  # follow events, not distinct shows
    row = features([user(1)], config=FeatureConfig(followed_podcasts=2), follow=follows)[1]
    assert row["user_followed_podcasts_28d"] == [7, 9]


# -- clicks, users, profile ----------------------------------------------------------------------------------------
def test_clicks_are_classified_by_the_impression_they_reference():
    long_ago = START - 3 * MS_PER_DAY  # an impression older than the window still classifies its click
    ads = [
        dict(impression_id=i, event_ts=ts, user_id=1) for i, ts in (("ad-1", END - MS_PER_HOUR), ("ad-old", long_ago))
    ]
    promos = [dict(impression_id="promo-1", event_ts=END - MS_PER_HOUR, user_id=1)]
    clicks = [
        dict(event_id="c", event_ts=END - 10, impression_id=impression, user_id=1)
        for impression in ("ad-1", "ad-old", "ad-1", "promo-1", "unknown")
    ] + [
        dict(event_id="c", event_ts=END, impression_id="promo-1", user_id=1),  # at D: not yet
        dict(event_id="c", event_ts=END - 10, impression_id=None, user_id=1),
        dict(event_id="c", event_ts=END - 10, impression_id="ad-1", user_id=None),
    ]
    row = features([user(1)], ad_impression=ads, promo_impression=promos, click=clicks)[1]
    assert row["user_ad_clicks_28d"] == 3
    assert row["user_promo_clicks_28d"] == 1
    assert row["user_ad_impressions_28d"] == 1
    assert row["user_promo_impressions_28d"] == 1


def test_users_are_the_snapshot_sorted_and_those_without_history_get_zeros_not_nulls():
    users = [user(3, country="DE", signup_date=datetime.date(2026, 3, 29)), user(1), user(None), user(3)]
    events = dict(
        stream=[stream(1, 1), stream(2, 1)],  # user 2 is not in the snapshot
        follow=[dict(event_id="f", event_ts=END - 1, user_id=2, podcast_id=1)],
        ad_impression=[dict(impression_id="a", event_ts=END - 1, user_id=2)],
    )
    rows = features(users, [show(1, genres=["news"])], **events)
    assert list(rows) == [1, 3]
    assert rows[1]["user_streams_28d"] == 1
    assert rows[3] == {
        "user_id": 3,
        "user_country": "DE",  # a duplicated user keeps its first row
        "user_age_bucket": "25-34",
        "user_account_type": "free",
        "user_primary_device": "ios",
        "user_language": "sv",
        "user_tenure_days": 1,
        **{f.name: 0 for f in USER_FEATURES if f.type in (pa.int32(), pa.float32()) and "28d" in f.name},
        **{f.name: [] for f in USER_FEATURES if pa.types.is_list(f.type)},
    }


def test_empty_inputs_give_empty_tables_of_the_contracts():
    assert features([]) == {}
    result = podcast_features(D, table("podcast", []), merge_listening([]))
    assert result.num_rows == 0
    assert result.schema.equals(PODCAST_FEATURES, check_metadata=True)


# -- listening and tiers -------------------------------------------------------------------------------------------
def listening(pairs: dict[int, int]) -> pa.Table:
    return pa.table({"podcast_id": list(pairs), "listen_ms": list(pairs.values())}, schema=LISTENING)


def test_merge_listening_sums_per_show_and_is_associative():
    a, b, c = listening({1: 10, 2: 5}), listening({2: 7, 3: 1}), listening({3: 2, 1: 1})
    expected = [
        {"podcast_id": 1, "listen_ms": 11},
        {"podcast_id": 2, "listen_ms": 12},
        {"podcast_id": 3, "listen_ms": 3},
    ]
    assert merge_listening([a, b, c]).to_pylist() == expected
    assert merge_listening([merge_listening([a, b]), c]).equals(merge_listening([a, merge_listening([b, c])]))
    assert merge_listening([merge_listening([]), a]).equals(merge_listening([a]))
    assert merge_listening(iter([a, b, c])).to_pylist() == expected  # e.g. what Beam's CombineGlobally passes
    empty = merge_listening(iter([]))
    assert empty.schema.equals(LISTENING) and empty.num_rows == 0


def tier_counts(tiers: np.ndarray) -> list[int]:
    return np.bincount(tiers, minlength=8).tolist()


def test_popularity_tiers_fill_their_shares_of_all_shows():
    hours = np.arange(200, 0, -1, dtype=float)  # distinct, all listened
    tiers = popularity_tiers(hours)
    assert tiers.dtype == np.int8
    assert tier_counts(tiers) == [2, 4, 8, 16, 30, 40, 100, 0]
    assert (np.diff(tiers) >= 0).all()  # most hours, lowest tier
    shuffled = np.random.default_rng(0).permutation(200)
    assert (popularity_tiers(hours[shuffled]) == tiers[shuffled]).all()


def test_shows_without_listening_are_tier_7_and_quotas_count_every_show():
    hours = np.concatenate([np.arange(150, 0, -1), np.zeros(50)])
    assert tier_counts(popularity_tiers(hours)) == [2, 4, 8, 16, 30, 40, 50, 50]
    hours = np.zeros(200)
    hours[[5, 17, 100]] = [1.0, 3.0, 2.0]  # three listened shows: quotas of 200 shows are never filled
    tiers = popularity_tiers(hours)
    assert tiers[[17, 100, 5]].tolist() == [0, 0, 1]
    assert tier_counts(tiers) == [2, 1, 0, 0, 0, 0, 0, 197]


def test_popularity_tiers_edge_cases():
    assert popularity_tiers(np.array([5.0, 5.0, 5.0, 1.0])).tolist() == [0, 1, 2, 3]  # ties: by position
    assert popularity_tiers(np.zeros(10)).tolist() == [7] * 10
    assert popularity_tiers(np.array([0.5])).tolist() == [0]
    assert popularity_tiers(np.array([0.0])).tolist() == [7]
    assert popularity_tiers(np.array([])).dtype == np.int8
    custom = FeatureConfig(tier_shares=(0.1, 0.1, 0.1, 0.1, 0.1, 0.1))
    assert tier_counts(popularity_tiers(np.arange(20, 0, -1), custom)) == [2, 2, 2, 2, 2, 2, 8, 0]
    for bad in (np.array([1.0, -1.0]), np.array([np.nan]), np.ones((2, 2))):
        with pytest.raises(ValueError, match="listen_hours"):
            popularity_tiers(bad)


def test_podcast_features_cover_every_show_of_the_snapshot():
    podcasts = [
        show(
            3,
            genres=["news"],
            topics=["t"],
            created_date=datetime.date(2026, 3, 20),
            episode_count=9,
            publisher="acme",
            is_original=True,
            explicit=True,
            language="de",
        ),
        show(1),
        show(None),  # defective
        show(2),
    ]
    result = podcast_features(D, table("podcast", podcasts), listening({1: 2 * MS_PER_HOUR, 99: 10 * MS_PER_HOUR}))
    assert result.schema.equals(PODCAST_FEATURES, check_metadata=True)
    rows = result.to_pylist()
    assert [r["podcast_id"] for r in rows] == [1, 2, 3]
    assert [r["podcast_listen_hours_30d"] for r in rows] == [2.0, 0.0, 0.0]  # show 99 is not in the snapshot
    assert [r["podcast_popularity_tier"] for r in rows] == [0, 7, 7]
    assert rows[2] == {
        "podcast_id": 3,
        "podcast_listen_hours_30d": 0.0,
        "podcast_popularity_tier": 7,
        "podcast_age_days": 10,
        "podcast_genres": ["news"],
        "podcast_topics": ["t"],
        "podcast_language": "de",
        "podcast_publisher": "acme",
        "podcast_is_original": True,
        "podcast_explicit": True,
        "podcast_episode_count": 9,
    }


# -- configuration -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_history_days", 0),
        ("podcast_history_days", 2.5),
        ("top_genres", True),
        ("recent_podcasts", -1),
        ("followed_podcasts", None),
        ("min_stream_ms", -1),
        ("tier_shares", (0.01, 0.02)),
        ("tier_shares", (0.1, 0.2, 0.2, 0.2, 0.2, 0.2)),
        ("tier_shares", (0.0, 0.02, 0.04, 0.08, 0.15, 0.20)),
        ("tier_shares", [0.01, 0.02, 0.04, 0.08, 0.15, 0.20]),
    ],
)
def test_config_rejects_bad_values_naming_field_and_value(field, value):
    expected = rf"^The '{field}' parameter of FeatureConfig must be .*\. Got {re.escape(repr(value))} instead\.$"
    with pytest.raises(ValueError, match=expected):
        FeatureConfig(**{field: value})


# -- simulated world -----------------------------------------------------------------------------------------------
def test_no_leakage_on_a_simulated_world():
    """Features of day index 3 are the same whether or not the events of days 3.. are passed in too."""
    from podtarget.simulator import World, WorldConfig
    from podtarget.simulator.behaviour import ShardSimulator

    world = World.generate(WorldConfig.preset("tiny"))
    day = world.config.days[3]
    day_ms = history_window_ms(day, 0)[1]
    logged = collections.defaultdict(list)  # table -> one Arrow table per logged day
    for _, records in ShardSimulator(world, 0).run():
        for name, rows in records.items():
            logged[name].append(table(name, rows))
    users = logged["user"][3]  # the snapshot of day index 3
    podcasts = table("podcast", world.podcast_rows(day))
    everything = {name: pa.concat_tables(logged[name]) for name in EVENT_TABLES}
    before = {name: t.filter(pc.less(t.column("event_ts"), day_ms)) for name, t in everything.items()}
    assert all(before[name].num_rows < everything[name].num_rows for name in EVENT_TABLES)

    def compute(events: dict[str, pa.Table], stream_chunks: list[pa.Table]) -> tuple[pa.Table, pa.Table]:
        user_table = user_features(day, users, podcasts, *(events[name] for name in EVENT_TABLES))
        listening = merge_listening([podcast_listening_ms(chunk, day) for chunk in stream_chunks])
        return user_table, podcast_features(day, podcasts, listening)

    # With every event, listening is merged from per-day chunks, as the pipeline merges per-file partials.
    users_before, podcasts_before = compute(before, [before["stream"]])
    users_all, podcasts_all = compute(everything, logged["stream"])
    assert users_before.equals(users_all, check_metadata=True)
    assert podcasts_before.equals(podcasts_all, check_metadata=True)
    # Not vacuous: the features were computed from real history.
    assert users_before.num_rows == users.num_rows
    for column in (
        "user_streams_28d",
        "user_follows_28d",
        "user_ad_clicks_28d",
        "user_promo_clicks_28d",
        "user_ad_conversions_28d",
        "user_promo_conversions_28d",
    ):
        assert pc.sum(users_before.column(column)).as_py() > 0, column
    assert _brute_force_conversions(day, before, "ad_impression", 48) == {
        r["user_id"]: r["user_ad_conversions_28d"] for r in users_before.to_pylist() if r["user_ad_conversions_28d"]
    }
    assert pc.sum(pc.less(podcasts_before.column("podcast_popularity_tier"), 7)).as_py() > 10


def test_podcast_features_on_a_day_without_any_history():
    """The first simulated day has no listening at all: every show gets 0 hours and the lowest tier."""
    import datetime

    from podtarget.transforms.runtime.storage import arrow_schema

    day = datetime.date(2026, 3, 2)
    podcasts = pa.Table.from_pylist(
        [
            {
                "podcast_id": p,
                "publisher": "pub",
                "genres": ["comedy"],
                "topics": [],
                "language": "sv",
                "is_original": False,
                "created_date": datetime.date(2025, 1, 1),
                "explicit": False,
                "episode_count": 3,
            }
            for p in (1, 2)
        ],
        schema=arrow_schema("podcast"),
    )
    empty = merge_listening([podcast_listening_ms(arrow_schema("stream").empty_table(), day)])
    table = podcast_features(day, podcasts, empty)
    assert table.column("podcast_listen_hours_30d").to_pylist() == [0.0, 0.0]
    assert table.column("podcast_popularity_tier").to_pylist() == [POPULARITY_TIERS - 1] * 2


# -- conversions ---------------------------------------------------------------------------------------------------
def test_conversions_count_impressions_followed_by_a_stream_of_their_show_within_the_window():
    t = END - 10 * MS_PER_DAY
    hour = MS_PER_HOUR
    cases = [  # (impression time, stream of the same show (time, ms played) or None, other events) -> converts?
        (t, (t + 47 * hour, LONG), True),  # within 48 h
        (t, (t, LONG), True),  # the same millisecond counts
        (t, (t + 49 * hour, LONG), False),  # too late for an ad, in time for a promotion
        (t, (t - 1, LONG), False),  # the stream came first
        (t, (t + hour, 30_000), False),  # not a qualifying stream
        (END - hour, (END + hour, LONG), False),  # after D: not seen yet
        (t, None, False),
    ]
    events = collections.defaultdict(list)
    for n, (at, played, _) in enumerate(cases):
        show_id = 100 + n
        for kind in ("ad", "promo"):
            events[f"{kind}_impression"].append(
                dict(impression_id=f"{kind}{n}", event_ts=at, user_id=1, podcast_id=show_id)
            )
        if played is not None:
            events["stream"].append(stream(1, show_id, ts=played[0], ms=played[1]))
    # Noise that converts nothing: another show's stream, another user's stream of a shown show.
    events["stream"] += [stream(1, 999, ts=t + hour), stream(2, 100, ts=t + hour)]
    # Two impressions of one show before one stream both convert.
    events["ad_impression"] += [
        dict(impression_id=f"x{k}", event_ts=t + k * hour, user_id=3, podcast_id=50) for k in range(2)
    ]
    events["stream"].append(stream(3, 50, ts=t + 5 * hour))
    rows = features([user(1), user(2), user(3)], **events)
    ad = sum(converts for *_, converts in cases)
    assert rows[1]["user_ad_conversions_28d"] == ad == 2
    assert rows[1]["user_promo_conversions_28d"] == ad + 1  # the 49 h stream is within 72 h
    assert rows[2]["user_ad_conversions_28d"] == rows[2]["user_promo_conversions_28d"] == 0
    assert rows[3]["user_ad_conversions_28d"] == 2
    short = features([user(1)], config=FeatureConfig(ad_conversion_hours=1, promo_conversion_hours=1), **events)[1]
    assert (short["user_ad_conversions_28d"], short["user_promo_conversions_28d"]) == (1, 1)  # the same-ms stream


def _brute_force_conversions(day, events: dict[str, pa.Table], impressions: str, hours: int) -> dict[int, int]:
    """Per user, impressions in the window followed by a qualifying stream of their show within ``hours``, before D:
    one impression at a time against every stream."""
    start, end = history_window_ms(day, 28)
    plays: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for s in events["stream"].to_pylist():
        ts = s["event_ts"].timestamp() * 1000 if hasattr(s["event_ts"], "timestamp") else s["event_ts"]
        if None not in (s["user_id"], s["podcast_id"]) and s["ms_played"] >= 60_000 and start <= ts < end:
            plays[(s["user_id"], s["podcast_id"])].append(ts)
    out: dict[int, int] = collections.Counter()
    for i in events[impressions].to_pylist():
        ts = i["event_ts"].timestamp() * 1000 if hasattr(i["event_ts"], "timestamp") else i["event_ts"]
        if None in (i["user_id"], i["podcast_id"]) or not start <= ts < end:
            continue
        if any(ts <= p < ts + hours * MS_PER_HOUR for p in plays[(i["user_id"], i["podcast_id"])]):
            out[i["user_id"]] += 1
    return dict(out)

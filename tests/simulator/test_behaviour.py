import collections
import datetime

import numpy as np
import pytest

from podtarget.schemas import LOG_TABLES, load_schema
from podtarget.simulator import World, WorldConfig
from podtarget.simulator.behaviour import ShardSimulator
from podtarget.simulator.summary import summarize


@pytest.fixture(scope="module")
def simulated():
    """All shards of a clean tiny world, run in-process: (world, {table: records}, merged stats)."""
    from podtarget.transforms.arrow.counting import merge_counts

    world = World.generate(WorldConfig.preset("tiny"))
    tables = collections.defaultdict(list)
    stats = []
    for shard in range(world.config.n_shards):
        sim = ShardSimulator(world, shard)
        for _, day_tables in sim.run():
            for table, records in day_tables.items():
                tables[table].extend(records)
        stats.append(sim.stats.to_dict())
    return world, tables, merge_counts(stats)


def test_records_satisfy_their_contracts(simulated):
    _, tables, _ = simulated
    for table in (*LOG_TABLES, "user"):
        schema = load_schema(table)
        assert tables[table], table
        for record in tables[table][:2000]:
            assert schema.problems(record) == [], (table, record)


def test_premium_users_never_see_ads(simulated):
    world, tables, _ = simulated
    users = np.array([r["user_id"] for r in tables["ad_impression"]]) - 1
    assert not world.users.premium[users].any()
    promo_users = np.array([r["user_id"] for r in tables["promo_impression"]]) - 1
    assert world.users.premium[promo_users].any()


def test_clicks_reference_served_impressions_and_ids_are_unique(simulated):
    _, tables, _ = simulated
    served = {r["impression_id"] for t in ("ad_impression", "promo_impression") for r in tables[t]}
    assert len(served) == len(tables["ad_impression"]) + len(tables["promo_impression"])
    assert all(r["impression_id"] in served for r in tables["click"])
    events = [r["event_id"] for t in ("click", "stream", "follow", "like") for r in tables[t]]
    assert len(set(events)) == len(events)


def test_nothing_happens_to_a_show_before_it_launches(simulated):
    world, tables, _ = simulated
    first_day_ms = (world.config.start_date - datetime.date(1970, 1, 1)).days * 86_400_000
    for table in ("stream", "ad_impression", "promo_impression", "follow", "like"):
        for r in tables[table]:
            day_offset = (r["event_ts"] - first_day_ms) // 86_400_000
            assert day_offset >= world.podcasts.created_day[r["podcast_id"] - 1], (table, r)


def test_rates_land_in_their_configured_ranges_and_short_plays_exist(simulated):
    world, tables, stats = simulated
    summary = summarize(stats, world.config)
    assert summary["rates_out_of_range"] == {}
    short = sum(r["ms_played"] < 60_000 for r in tables["stream"])
    assert 0.1 < short / len(tables["stream"]) < 0.5


def test_popularity_is_heavy_tailed(simulated):
    world, _, stats = simulated
    pop = summarize(stats, world.config)["popularity"]
    assert pop["top_10pct_share"] > 0.5
    mean = pop["organic_qualifying_streams"] / world.config.n_podcasts
    assert pop["median_streams_per_podcast"] < 0.5 * mean  # most shows get far fewer streams than the average


def test_outcomes_are_delayed_and_some_arrive_on_later_days(simulated):
    world, tables, _ = simulated
    impressions = {r["impression_id"]: r["event_ts"] for r in tables["ad_impression"] + tables["promo_impression"]}
    delays = [r["event_ts"] - impressions[r["impression_id"]] for r in tables["click"]]
    assert min(delays) > 0
    streams_after_midnight = sum(1 for r in tables["stream"] if (r["event_ts"] // 3_600_000) % 24 < 5)
    assert streams_after_midnight > 0


def test_memory_is_bounded_by_the_outcome_window_not_the_number_of_days():
    world = World.generate(WorldConfig.preset("tiny", n_days=10, n_users=500, users_per_shard=500))
    sim = ShardSimulator(world, 0)
    for d, _ in enumerate(sim.run()):
        assert all(day > d for day in sim._pending), "a finished day is still buffered"
        assert len(sim._pending) <= 12  # outcome delays span a few days at most

import hashlib
import pathlib

import pytest

from podtarget.schemas import LOG_TABLES, RAW_TABLES, layout, load_schema
from podtarget.simulator import World, WorldConfig
from podtarget.simulator.config import DIRT_KINDS
from podtarget.simulator.summary import format_summary
from tests.conftest import simulate

TINY = WorldConfig.preset("tiny")


def _read_table_counts(root: str) -> tuple[dict, list[str]]:
    """Rows per (table, day) read back from the part files, and the files that could not be read."""
    counts, unreadable = {}, []
    for table in RAW_TABLES:
        for day in TINY.days:
            for path in sorted(pathlib.Path(layout.raw_partition(root, table, day)).glob("part-*.avro")):
                try:
                    with open(path, "rb") as handle:
                        n = sum(1 for _ in load_schema(table).read(handle))
                except Exception:  # a truncated Avro file fails in fastavro's block decoder
                    unreadable.append(str(path))
                    continue
                counts.setdefault(table, {}).setdefault(day.isoformat(), 0)
                counts[table][day.isoformat()] += n
    return counts, unreadable


def test_every_table_has_a_partition_per_day_and_rows_reconcile(clean_tiny_world):
    root, summary = clean_tiny_world
    counts, unreadable = _read_table_counts(root)
    assert unreadable == []
    assert counts == summary["rows"]
    for table in RAW_TABLES:
        for day in TINY.days:
            parts = list(pathlib.Path(layout.raw_partition(root, table, day)).glob("part-*.avro"))
            assert parts, (table, day)
    assert not list(pathlib.Path(root).rglob(".tmp-*")), "temporary files left behind"
    world = World.load(layout.world_dir(root))
    assert world.config == TINY
    assert summary["rates_out_of_range"] == {}
    assert summary["dirt_totals"] == dict.fromkeys(DIRT_KINDS, 0)
    # Without dirt, the impressions of the base rates are the logged rows plus those served after the last day, and
    # the printed summary says so.
    beyond = summary["not_logged_past_horizon"]
    for channel, table in (("ad", "ad_impression"), ("promo", "promo_impression")):
        assert summary["impressions"][channel] == sum(summary["rows"][table].values()) + beyond.get(table, 0)
    if any(beyond.values()):
        assert "Served after the last day, so in the rates but in no log: " in format_summary(summary)


def test_every_dirt_kind_is_planted_and_counted(dirty_tiny_world):
    root, summary = dirty_tiny_world
    totals = summary["dirt_totals"]
    assert set(totals) == set(DIRT_KINDS)
    assert all(totals[kind] > 0 for kind in DIRT_KINDS), totals
    assert set(summary["dirt"]) == set(LOG_TABLES)
    # The truncated file is really unreadable, and it is the one the summary names.
    _, unreadable = _read_table_counts(root)
    assert [pathlib.Path(p).resolve() for p in unreadable] == [
        pathlib.Path(t["path"]).resolve() for t in summary["truncated_files"]
    ]
    # Planted defects are where the summary says they are.
    nulls = unknown = bad_ts = 0
    for table in LOG_TABLES:
        schema = load_schema(table)
        for path in pathlib.Path(layout.raw_table(root, table)).rglob("part-*.avro"):
            if str(path) in unreadable:
                continue
            with open(path, "rb") as handle:
                for r in schema.read(handle):
                    nulls += any(r[f] is None for f in schema.required_fields)
                    unknown += any(r.get(f) is not None and r[f] >= 1_000_000_000 for f in ("user_id", "podcast_id"))
                    bad_ts += r["event_ts"].year in (1970, 2100)
    truncated_rows = summary["truncated_files"][0]["rows_in_file"]
    # Each count can only fall short by rows inside the truncated file.
    assert totals["null_id"] - truncated_rows <= nulls <= totals["null_id"]
    assert totals["unknown_id"] - truncated_rows <= unknown <= totals["unknown_id"]
    assert totals["bad_timestamp"] - truncated_rows <= bad_ts <= totals["bad_timestamp"]


def _digest(root: str) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(pathlib.Path(root, "raw").rglob("*.avro"))
    }


def test_same_seed_gives_byte_identical_logs(clean_tiny_world, tmp_path):
    root, _ = clean_tiny_world
    again = str(tmp_path / "again")
    simulate(again)
    assert _digest(again) == _digest(root)
    other = str(tmp_path / "other")
    simulate(other, "--seed=8")
    assert _digest(other) != _digest(root)


def test_refuses_to_mix_worlds_unless_told_to_overwrite(tmp_path):
    root = str(tmp_path / "data")
    simulate(root, "--n_days=2", "--n_users=300")
    with pytest.raises(FileExistsError, match="already holds simulated data .* pass --overwrite"):
        simulate(root, "--n_days=2", "--n_users=300")
    summary = simulate(root, "--n_days=3", "--n_users=300", "--overwrite")
    days = sorted(p.name for p in pathlib.Path(root, "raw", "stream").iterdir())
    assert len(days) == 3 and summary["world"]["end_date"] == "2026-03-04"


@pytest.mark.slow
def test_multi_processing_workers_give_the_same_logs(clean_tiny_world, tmp_path):
    root, _ = clean_tiny_world
    parallel = str(tmp_path / "parallel")
    from podtarget.pipelines.simulate_world import run

    run(
        [
            f"--data_root={parallel}",
            "--world=tiny",
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        ]
    )
    assert _digest(parallel) == _digest(root)


def test_unsafe_multi_threading_is_refused(tmp_path):
    with pytest.raises(ValueError, match="multi_threading with more than one worker corrupts data"):
        simulate(str(tmp_path / "x"), "--direct_running_mode=multi_threading", "--direct_num_workers=2")


def test_the_responsiveness_correlation_flag_sets_the_world_parameter():
    from podtarget.pipelines.simulate_world import SimulateWorldOptions, build_config

    config = build_config(SimulateWorldOptions(["--world=tiny", "--responsiveness_correlation=0.7", "--seed=3"]))
    assert config.ground_truth.ad_promo_responsiveness_correlation == 0.7 and config.seed == 3
    assert build_config(SimulateWorldOptions(["--world=tiny"])) == TINY
    with pytest.raises(ValueError, match="ad_promo_responsiveness_correlation"):
        build_config(SimulateWorldOptions(["--world=tiny", "--responsiveness_correlation=2"]))

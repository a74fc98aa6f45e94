import datetime

import pytest

from podtarget.simulator import GroundTruth, WorldConfig


def test_presets_and_overrides():
    demo = WorldConfig.preset("demo")
    assert (demo.n_users, demo.n_podcasts, demo.n_days) == (20_000, 2_000, 14)
    assert demo.n_ad_campaigns + demo.n_promo_campaigns >= 100
    assert WorldConfig.preset("tiny", seed=3).seed == 3
    bench = WorldConfig.preset("bench")
    assert bench.n_users >= 400_000


def test_json_round_trip():
    cfg = WorldConfig.preset("tiny", dirty_rate=0.01, start_date=datetime.date(2026, 1, 1))
    assert WorldConfig.from_json(cfg.to_json()) == cfg


def test_shards_cover_users_exactly_once():
    cfg = WorldConfig(n_users=1234, users_per_shard=500)
    assert cfg.n_shards == 3
    covered = [u for s in range(cfg.n_shards) for u in cfg.shard_users(s)]
    assert covered == list(range(1234))
    with pytest.raises(
        ValueError, match=r"'shard' parameter of WorldConfig.shard_users .* range \[0, 2\]\. Got 3 instead"
    ):
        cfg.shard_users(3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n_users": 0},
            r"^The 'n_users' parameter of WorldConfig must be an int in the range \[1, inf\)\. Got 0 instead",
        ),
        (
            {"dirty_rate": 0.5},
            r"The 'dirty_rate' parameter of WorldConfig must be a float in the range \[0, 0.1\]\. Got 0.5",
        ),
        (
            {"premium_share": 1.0},
            r"The 'premium_share' parameter of WorldConfig must be a float in the range \[0, 1\)\. Got 1.0",
        ),
        (
            {"sessions_per_user_day": 0},
            r"'sessions_per_user_day' parameter of WorldConfig .* range \(0, inf\)\. Got 0 instead",
        ),
        (
            {"n_podcasts": 5, "n_ad_campaigns": 3, "n_promo_campaigns": 3},
            r"'n_podcasts' parameter of WorldConfig must be at least 10 or at least one per campaign .*= 6\)\. Got 5 ",
        ),
        (
            {"ground_truth": GroundTruth(ad_format_effect=(0.0,))},
            r"^The 'ad_format_effect' parameter of GroundTruth must be a tuple of one value per category \(3\)\. "
            r"Got \(0.0,\) instead\.$",
        ),
        (
            {"ground_truth": GroundTruth(short_play_rate=-0.1)},
            r"'short_play_rate' parameter of GroundTruth .* \[0, inf\)",
        ),
    ],
)
def test_validation_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_unknown_preset_or_field():
    with pytest.raises(ValueError, match="unknown world preset 'huge'; expected one of tiny, demo, bench"):
        WorldConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown WorldConfig field\(s\) \['n_user'\]"):
        WorldConfig.preset("tiny", n_user=5)


def test_the_eval_preset_has_mature_test_days_and_held_out_days_after_them():
    """30 days: with 7-day like and follow windows and 2 days of logging lateness, the examples of days 1-21 are
    mature, which leaves training, two validation and three test days, and 7 held-out A/B days after them."""
    cfg = WorldConfig.preset("eval")
    assert cfg.n_users >= 60_000 and cfg.n_days == 30 and cfg.new_podcast_share > 0.15
    demo = WorldConfig.preset("demo")
    assert cfg.ground_truth == demo.ground_truth  # behaviour and ground truth are the demo's
    assert (cfg.sessions_per_user_day, cfg.ads_per_session) == (demo.sessions_per_user_day, demo.ads_per_session)
    mature_days = cfg.n_days - (7 + 2)
    assert mature_days - 5 >= 14  # at least two weeks of training days

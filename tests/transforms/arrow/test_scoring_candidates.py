"""Scoring candidates: the configuration and its errors, head selection, the campaign plan and serving context,
eligibility rules and the pair columns, checked against brute force on small hand-made tables."""

import datetime
import itertools
import json

import numpy as np
import pyarrow as pa
import pytest

from podtarget.schemas.derived import PODCAST_FEATURES, USER_FEATURES
from podtarget.transforms.arrow.candidates import (
    CAMPAIGN_COLUMNS,
    PAIR_COLUMNS,
    PAIR_KINDS,
    USER_COLUMNS,
    find_candidates,
    pair_kinds,
    plan_campaigns,
    user_side,
)
from podtarget.transforms.arrow.example_assembly import _list_contains, list_membership
from podtarget.transforms.arrow.scoring_config import ScoringConfig
from podtarget.transforms.runtime.storage import arrow_schema
from tests.pipelines.scoring_world import DAY, campaign, creative, podcast, user


def _campaigns(rows):
    return pa.Table.from_pylist(rows, schema=arrow_schema("campaign"))


def _creatives(rows):
    return pa.Table.from_pylist(rows, schema=arrow_schema("creative"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"audience_size": 0}, r"'audience_size' parameter of ScoringConfig must be an int in the range \[1, inf\)"),
        ({"top_n": 2.5}, r"'top_n' parameter .* Got 2.5 instead"),
        ({"audience_cut": "all"}, r"'audience_cut' parameter .* a str among \['budget', 'top_k'\]"),
        ({"impressions_per_user": 0}, r"'impressions_per_user' parameter .* in the range \(0, inf\)"),
        ({"hour": -1}, r"'hour' parameter .* \[0, 23\]"),
        ({"device": "tv"}, r"'device' parameter .* among \['primary', 'ios'"),
        ({"promo_layout": "grid"}, r"'promo_layout' parameter .* among \['card', 'carousel', 'banner', 'list'\]"),
        ({"heads": "ad:stream"}, r"'heads' parameter .* channel:objective=Head .* Got 'ad:stream' instead"),
        ({"heads": "tv:stream=AdStream"}, r"'heads' parameter"),
        ({"heads": " , "}, r"at least one channel:objective=Head entry"),
        ({"transfers": "ad:follow"}, r"^The 'transfers' parameter of ScoringConfig .* Got 'ad:follow' instead\.$"),
    ],
)
def test_config_errors_name_the_parameter_and_what_it_accepts(changes, message):
    with pytest.raises(ValueError, match=message):
        ScoringConfig(**changes)


def test_head_mapping_exact_then_any_channel_then_any_objective():
    config = ScoringConfig(heads="ad:stream=AdStream,*:stream=PromotionStream,promo:*=Follow,*:click=Click")
    assert config.head_for("ad", "stream") == "AdStream"
    assert config.head_for("promo", "stream") == "PromotionStream"
    assert config.head_for("promo", "follow") == "Follow"
    assert config.head_for("ad", "click") == "Click"
    assert config.head_for("ad", "follow") is None
    default = ScoringConfig()
    assert [default.head_for(c, o) for c, o in itertools.product(("ad", "promo"), ("stream", "click", "follow"))] == [
        "AdStream",
        "Click",
        "Follow",
        "PromotionStream",
        "Click",
        "Follow",
    ]


def test_budget_cut_formula_and_block_size():
    config = ScoringConfig(audience_cut="budget", impressions_per_user=2, audience_size=50)
    # 300 units over 10 days at CPM 15: 2,000 impressions a day, 1,000 users at 2 impressions each.
    assert config.cut_for("ad", 300_000_000, 15_000_000, 10) == (1000, "budget")
    assert config.cut_for("ad", 1_000, 15_000_000, 10) == (0, "budget")  # cannot buy one user's impressions
    assert config.cut_for("promo", None, None, 10) == (50, "top_k")
    assert config.cut_for("ad", None, 15_000_000, 10) == (50, "top_k")
    assert ScoringConfig(audience_size=50).cut_for("ad", 300_000_000, 15_000_000, 10) == (50, "top_k")
    small = ScoringConfig(users_per_block=4096, max_pairs_per_block=1_000_000)
    assert small.block_users(100) == 4096 and small.block_users(1000) == 1000 and small.block_users(10**7) == 1


def test_list_membership_is_list_contains_for_every_pair():
    lists = pa.array([[1, 2], [], None, [3, 3, 5], [7], [2, 7]], pa.list_(pa.int64()))
    candidates = np.array([3, 1, 9, 3, 7, 2])
    matrix = list_membership(lists, candidates)
    for j, value in enumerate(candidates):
        assert (matrix[:, j] == _list_contains(lists, np.full(len(lists), value))).all()


PODCASTS = pa.Table.from_pylist([podcast(1), podcast(2, "en"), podcast(3, language=None)], schema=PODCAST_FEATURES)


def _plan(campaigns, creatives, config=None):
    return plan_campaigns(
        _campaigns(campaigns), _creatives(creatives), PODCASTS, DAY, config or ScoringConfig(), "raw/campaign"
    )


def test_plan_fills_the_serving_context_per_channel():
    campaigns = [
        campaign(1, "ad", "stream", 1),
        campaign(2, "ad", "click", 2),
        campaign(3, "promo", "follow", 3, start_date=DAY),
    ]
    creatives = [creative(12, 1, "video"), creative(11, 1, "display"), creative(20, 2, "audio")]
    plan = _plan(campaigns, creatives, ScoringConfig(hour=8, promo_slot="search_card", promo_surface="search"))
    side = plan.side.table.to_pylist()
    assert plan.side.table.column_names == list(CAMPAIGN_COLUMNS)
    assert [(r["creative_id"], r["ad_format"], r["ad_slot"], r["surface"]) for r in side] == [
        (11, "display", "home_banner", "home"),  # the lowest creative id, in the slot its format serves in
        (20, "audio", "midroll", "now_playing"),
        (None, None, None, "search"),
    ]
    assert {(r["hour"], r["weekday"]) for r in side} == {(8, DAY.weekday())}
    assert side[2]["promo_slot"] == "search_card" and side[2]["promo_position"] == 0
    assert [r["campaign_age_days"] for r in side] == [2, 2, 0]
    assert plan.side.heads == ("AdStream", "Click", "Follow")
    assert plan.side.head_of_campaign.tolist() == [0, 1, 2]
    fixed = _plan(campaigns, creatives, ScoringConfig(ad_slot="preroll", ad_surface="library")).side.table
    assert set(fixed.column("ad_slot").drop_null().to_pylist()) == {"preroll"}
    assert fixed.column("surface").to_pylist()[:2] == ["library", "library"]


def test_user_side_uses_the_users_device_and_market():
    plan = _plan([campaign(1, "ad", "stream", 1)], [creative(1, 1)])
    users = pa.Table.from_pylist([user(5, user_primary_device="web", user_country="US"), user(6)], schema=USER_FEATURES)
    rows = user_side(users, plan, DAY, ScoringConfig()).to_pylist()
    assert [(r["user_id"], r["device"], r["country"]) for r in rows] == [(5, "web", "US"), (6, "ios", "SE")]
    assert list(rows[0]) == list(USER_COLUMNS)
    fixed = user_side(users, plan, DAY, ScoringConfig(device="desktop")).column("device").to_pylist()
    assert fixed == ["desktop", "desktop"]


def test_eligibility_rules_match_brute_force_and_add_up():
    rng = np.random.default_rng(2)
    countries, ages, accounts = ["SE", "US", None], ["18-24", "25-34"], ["free", "premium", None]
    users = [
        user(
            i,
            user_country=rng.choice(countries),
            user_age_bucket=str(rng.choice(ages)),
            user_account_type=rng.choice(accounts),
            user_followed_podcasts_28d=[int(p) for p in rng.choice([1, 2, 3], rng.integers(0, 3), replace=False)],
            user_recent_podcasts_28d=[int(p) for p in rng.choice([1, 2, 3], rng.integers(0, 3), replace=False)],
            user_language=rng.choice(["sv", "en", None]),
        )
        for i in range(1, 41)
    ]
    campaigns = [
        campaign(10, "ad", "stream", 1, target_countries=["SE"], target_account_types=[]),
        campaign(11, "ad", "click", 2, target_age_buckets=["25-34"]),
        campaign(12, "promo", "stream", 3),
        campaign(13, "promo", "follow", 2, target_countries=["US", "SE"], target_account_types=["premium"]),
    ]
    plan = _plan(campaigns, [creative(100, 10), creative(110, 11)])
    table = pa.Table.from_pylist(users, schema=USER_FEATURES)
    found = find_candidates(table, plan)

    def eligible(u, c):
        if c["target_countries"] and u["user_country"] not in c["target_countries"]:
            return "target_country"
        if c["target_age_buckets"] and u["user_age_bucket"] not in c["target_age_buckets"]:
            return "target_age_bucket"
        if c["target_account_types"] and u["user_account_type"] not in c["target_account_types"]:
            return "target_account_type"
        if c["channel"] == "ad" and u["user_account_type"] != "free":
            return "ads_free_users_only"
        if c["podcast_id"] in u["user_followed_podcasts_28d"]:
            return "follows_show"
        return None

    verdicts = [[eligible(u, c) for c in campaigns] for u in users]
    expected_pairs = [(ci, ui) for ci in range(4) for ui in range(40) if verdicts[ui][ci] is None]
    assert list(zip(found.pair_campaign.tolist(), found.pair_user.tolist(), strict=True)) == expected_pairs
    flat = [v for row in verdicts for v in row if v is not None]
    assert found.ineligible == {rule: flat.count(rule) for rule in found.ineligible}
    assert found.considered == 160 == found.eligible + sum(found.ineligible.values())
    assert found.ineligible["ads_free_users_only"] > 0 and found.ineligible["follows_show"] > 0

    kinds = PAIR_KINDS.to_pylist()
    podcast_language = {1: "sv", 2: "en", 3: None}
    for ci, ui, kind in zip(found.pair_campaign, found.pair_user, found.pair_kind, strict=True):
        u, c = users[ui], campaigns[ci]
        language = podcast_language[c["podcast_id"]]
        match = None if u["user_language"] is None or language is None else u["user_language"] == language
        assert kinds[kind] == {
            "user_listened_podcast_28d": c["podcast_id"] in u["user_recent_podcasts_28d"],
            "user_follows_podcast": False,  # followers are not eligible
            "language_match": match,
        }
    assert pair_kinds(table, plan).shape == (40, 4)
    assert PAIR_KINDS.column_names == list(PAIR_COLUMNS)


def test_unscorable_campaigns_are_dead_letters_with_their_reason():
    campaigns = [
        campaign(1, "ad", "stream", 1),
        campaign(2, "ad", "stream", 1),  # no creative
        campaign(3, "promo", "stream", 42),  # show without features
        campaign(4, "promo", "like", 1),  # not mapped
        campaign(5, "promo", "stream", 1, start_date=DAY + datetime.timedelta(days=1)),  # not started
    ]
    plan = _plan(campaigns, [creative(1, 1)], ScoringConfig(heads="*:stream=AdStream"))
    assert plan.campaigns.column("campaign_id").to_pylist() == [1]
    reasons = {
        json.loads(r["record_json"])["campaign_id"]: (r["reason"], r["pipeline"], r["table"])
        for r in plan.dead_letters.to_pylist()
    }
    assert reasons == {
        2: ("no_creative", "score", "campaign"),
        3: ("unknown_podcast", "score", "campaign"),
        4: ("unknown_objective", "score", "campaign"),
    }
    assert plan.counts["campaigns"] == {
        "snapshot": 5,
        "active": 4,
        "scorable": 1,
        "dead_letter": {"unknown_objective": 1, "no_creative": 1, "unknown_podcast": 1},
    }

"""Configuration of a simulated podcast world: sizes, behaviour and the ground-truth coefficients.

Everything that shapes the simulated data lives here, validated, and is saved with the world (``world/config.json``)
so that every report can record the exact configuration it was measured on::

    >>> cfg = WorldConfig.preset("demo", seed=3)
    >>> cfg.n_users, cfg.n_days
    (20000, 14)
    >>> WorldConfig(n_users=0)
    Traceback (most recent call last):
    ...
    ValueError: The 'n_users' parameter of WorldConfig must be an int in the range [1, inf). Got 0 instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from ..common.checks import check_int, check_number, invalid
from ..schemas import load_schema

# Category vocabularies come from the data contracts, so codes used by the simulator and by every later stage
# agree by construction: code i means vocabulary[i].
AD_FORMATS = load_schema("ad_impression").vocabulary("ad_format")
AD_SLOTS = load_schema("ad_impression").vocabulary("slot")
PROMO_SLOTS = load_schema("promo_impression").vocabulary("slot")
PROMO_LAYOUTS = load_schema("promo_impression").vocabulary("layout")
SURFACES = load_schema("stream").vocabulary("surface")
DEVICES = load_schema("user").vocabulary("primary_device")
AGE_BUCKETS = load_schema("user").vocabulary("age_bucket")
ACCOUNT_TYPES = load_schema("user").vocabulary("account_type")
OBJECTIVES = load_schema("campaign").vocabulary("objective")

COUNTRIES = ("SE", "US", "GB", "DE", "BR", "MX", "IN", "JP")
COUNTRY_WEIGHTS = (0.08, 0.30, 0.12, 0.10, 0.14, 0.10, 0.10, 0.06)
COUNTRY_LANGUAGE = {"SE": "sv", "US": "en", "GB": "en", "DE": "de", "BR": "pt", "MX": "es", "IN": "en", "JP": "ja"}
GENRES = (
    "comedy",
    "news",
    "true_crime",
    "sports",
    "business",
    "technology",
    "health",
    "society",
    "history",
    "science",
    "education",
    "arts",
    "music",
    "kids",
    "religion",
    "fiction",
    "tv_film",
    "leisure",
    "politics",
    "self_improvement",
)
N_TOPICS = 120
DIRT_KINDS = ("duplicate", "late", "null_id", "unknown_id", "bad_timestamp", "orphan_click", "truncated_file")


# GroundTruth parameters that config.json carries only when they differ from these values (see WorldConfig.to_json).
OMITTED_AT_DEFAULT = {"ad_promo_responsiveness_correlation": 0.0}


@dataclass(frozen=True)
class GroundTruth:
    """Coefficients of the true outcome model (logits). See :mod:`podtarget.simulator.world` for how they combine.

    The same user-podcast affinity (``affinity_*``) drives streams after ads and after promotions alike; the rest
    are channel-specific effects and user propensities.
    """

    # Intercepts per channel, chosen so that base rates land in realistic ranges (see expected ranges below).
    stream_intercept_ad: float = -5.0
    stream_intercept_promo: float = -3.7
    click_intercept_ad: float = -5.1
    click_intercept_promo: float = -4.9
    follow_given_stream_intercept: float = -3.1
    like_given_stream_intercept: float = -3.0
    # Shared user-podcast affinity (dot product of latent taste vectors, unit variance) and show appeal.
    affinity_stream: float = 1.1
    affinity_click: float = 0.7
    affinity_follow: float = 0.6
    appeal_stream: float = 0.25
    language_mismatch: float = 1.5  # penalty when the show's language is not the user's
    stream_after_click: float = 2.0
    # Ad-only effects.
    ad_format_effect: tuple[float, ...] = (0.0, 0.3, -0.6)  # audio, video, display
    ad_slot_effect: tuple[float, ...] = (0.1, 0.25, -0.35, 0.0)  # preroll, midroll, postroll, home_banner
    creative_quality_sd: float = 0.5
    ad_responsiveness_sd: float = 0.7
    user_format_preference_sd: float = 0.5
    ad_fatigue_per_repeat: float = 0.35
    # Promotion-only effects.
    promo_slot_effect: tuple[float, ...] = (0.0, 0.45, 0.3, 0.1)  # home_shelf, hero_banner, search_card, episode_end
    promo_layout_effect: tuple[float, ...] = (0.0, -0.1, 0.2, -0.3)  # card, carousel, banner, list
    promo_position_decay: float = 0.18
    promo_responsiveness_sd: float = 0.4
    # How strongly a user's ad responsiveness follows their promotion responsiveness: the correlation of the two
    # user traits (ad responsiveness keeps its spread, ``ad_responsiveness_sd``). 0, the default, draws them
    # independently, so promotion rows cannot teach how responsive a user is to ads; at 1 the two are one trait.
    # Worlds saved before it existed are the ones it gives at 0 (byte for byte), so it is written to
    # ``config.json`` only when set (``WorldConfig.to_json``).
    ad_promo_responsiveness_correlation: float = 0.0
    # Context shared by both channels.
    surface_effect: tuple[float, ...] = (0.1, 0.2, 0.0, -0.1, 0.05)
    device_effect: tuple[float, ...] = (0.05, 0.0, 0.1, -0.05, -0.2)
    evening_effect: float = 0.3  # peak at 20:00 local, trough at 08:00
    short_play_rate: float = 0.5  # short (< 60 s) plays per qualifying stream, drawn on top of them

    def validate(self) -> None:
        sizes = {
            "ad_format_effect": len(AD_FORMATS),
            "ad_slot_effect": len(AD_SLOTS),
            "promo_slot_effect": len(PROMO_SLOTS),
            "promo_layout_effect": len(PROMO_LAYOUTS),
            "surface_effect": len(SURFACES),
            "device_effect": len(DEVICES),
        }
        for name, size in sizes.items():
            value = getattr(self, name)
            if len(value) != size:
                raise invalid("GroundTruth", name, f"a tuple of one value per category ({size})", value)
        for name in (
            "creative_quality_sd",
            "ad_responsiveness_sd",
            "user_format_preference_sd",
            "promo_responsiveness_sd",
            "short_play_rate",
        ):
            check_number("GroundTruth", name, getattr(self, name), low=0)
        correlation = self.ad_promo_responsiveness_correlation
        check_number("GroundTruth", "ad_promo_responsiveness_correlation", correlation, low=-1, high=1)


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and behaviour of a simulated world. Deterministic for a given ``seed``."""

    n_users: int = 20_000
    n_podcasts: int = 2_000
    n_ad_campaigns: int = 90
    n_promo_campaigns: int = 40
    start_date: datetime.date = datetime.date(2026, 3, 2)
    n_days: int = 14
    seed: int = 7
    latent_dim: int = 16
    users_per_shard: int = 5_000
    # Behaviour.
    sessions_per_user_day: float = 0.6
    promos_per_session: float = 1.6
    ads_per_session: float = 1.3  # for free users only; premium users never see ads
    organic_streams_per_session: float = 1.2
    premium_share: float = 0.3
    new_user_share: float = 0.05  # users who sign up during the period
    new_podcast_share: float = 0.15  # shows that launch during the period (cold start)
    popularity_sigma: float = 1.7  # log-normal spread of show appeal: a heavy tail of streams
    exploration: float = 0.1  # share of the incumbent logging policy's choices made uniformly at random
    incumbent_noise: float = 1.0  # how far the incumbent's taste estimate is from the truth
    frequency_cap_per_day: int = 3  # impressions of one campaign to one user per day
    dirty_rate: float = 0.0
    ground_truth: GroundTruth = field(default_factory=GroundTruth)
    # Ranges the run summary checks the simulated base rates against (per impression).
    expected_rates: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "ad.stream": (0.01, 0.03),
            "promo.stream": (0.03, 0.08),
            "ad.click": (0.005, 0.02),
            "promo.click": (0.005, 0.02),
            "ad.follow": (0.0002, 0.008),
            "promo.follow": (0.0002, 0.008),
            "ad.like": (0.0002, 0.008),
            "promo.like": (0.0002, 0.008),
        }
    )

    def __post_init__(self) -> None:
        counts = ("n_users", "n_podcasts", "n_ad_campaigns", "n_promo_campaigns", "n_days", "latent_dim")
        for name in (*counts, "users_per_shard", "frequency_cap_per_day"):
            check_int("WorldConfig", name, getattr(self, name), low=1)
        campaigns = self.n_ad_campaigns + self.n_promo_campaigns
        if self.n_podcasts < min(campaigns, 10):
            expected = f"at least 10 or at least one per campaign (n_ad_campaigns + n_promo_campaigns = {campaigns})"
            raise invalid("WorldConfig", "n_podcasts", expected, self.n_podcasts)
        for name in ("premium_share", "new_user_share", "new_podcast_share", "exploration"):
            check_number("WorldConfig", name, getattr(self, name), low=0, below=1)
        check_number("WorldConfig", "dirty_rate", self.dirty_rate, low=0, high=0.1)
        for name in (
            "sessions_per_user_day",
            "promos_per_session",
            "ads_per_session",
            "organic_streams_per_session",
            "popularity_sigma",
            "incumbent_noise",
        ):
            check_number("WorldConfig", name, getattr(self, name), above=0)
        check_int("WorldConfig", "seed", self.seed, low=0)
        self.ground_truth.validate()

    # -- derived ---------------------------------------------------------------------------------------------
    @property
    def days(self) -> list[datetime.date]:
        return [self.start_date + datetime.timedelta(days=i) for i in range(self.n_days)]

    @property
    def end_date(self) -> datetime.date:
        return self.start_date + datetime.timedelta(days=self.n_days - 1)

    @property
    def n_shards(self) -> int:
        return -(-self.n_users // self.users_per_shard)

    def shard_users(self, shard: int) -> range:
        """User indices owned by ``shard`` (contiguous ranges: shards are independent of each other)."""
        check_int("WorldConfig.shard_users", "shard", shard, low=0, high=self.n_shards - 1)
        lo = shard * self.users_per_shard
        return range(lo, min(lo + self.users_per_shard, self.n_users))

    # -- presets and (de)serialisation -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> WorldConfig:
        """A named world: ``tiny`` (tests), ``demo`` (about 20k users, 14 days), ``bench`` (millions of
        impressions a day) or ``eval`` (the evaluation's: 60k users, 30 days). Keyword arguments override single
        fields."""
        presets: dict[str, dict[str, Any]] = {
            "tiny": dict(
                n_users=1_500,
                n_podcasts=200,
                n_ad_campaigns=24,
                n_promo_campaigns=12,
                n_days=6,
                users_per_shard=500,
                sessions_per_user_day=0.9,
            ),
            "demo": {},
            "bench": dict(
                n_users=400_000,
                n_podcasts=20_000,
                n_ad_campaigns=500,
                n_promo_campaigns=200,
                n_days=4,
                users_per_shard=25_000,
                sessions_per_user_day=2.0,
                promos_per_session=2.0,
            ),
            # The evaluation's world (``make evaluate WORLD=eval``): enough users and test days for intervals that
            # can tell the paper's effects from noise on 2 cores, 30 days so that several test days have mature
            # like and follow labels (7-day windows plus 2 days of lateness) with held-out A/B days after them, and
            # a quarter of the shows launching during the period (their campaigns start at launch or later), so
            # cold start runs through the test days. Behaviour and ground truth are the demo's, fixed before any
            # evaluation ran: nothing here was tuned to the paper's figures.
            "eval": dict(
                n_users=60_000,
                n_podcasts=5_000,
                n_ad_campaigns=240,
                n_promo_campaigns=100,
                n_days=30,
                users_per_shard=10_000,
                new_podcast_share=0.25,
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown world preset {name!r}; expected one of {', '.join(presets)}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown WorldConfig field(s) {sorted(unknown)}")
        return cls(**{**presets[name], **overrides})

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["start_date"] = self.start_date.isoformat()
        # Parameters added after worlds were first saved appear only when set: a world that does not use them is
        # the world saved before they existed, and keeps its config.json (whose hash identifies reports).
        for name, default in OMITTED_AT_DEFAULT.items():
            if data["ground_truth"][name] == default:
                del data["ground_truth"][name]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorldConfig:
        data = json.loads(text)
        data["start_date"] = datetime.date.fromisoformat(data["start_date"])
        gt: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("ground_truth").items()}
        data["expected_rates"] = {k: tuple(v) for k, v in data["expected_rates"].items()}
        return cls(ground_truth=GroundTruth(**gt), **data)

"""The simulated podcast world: its entities, their hidden traits, and the true outcome model.

A :class:`World` is drawn once from a :class:`~podtarget.simulator.config.WorldConfig` (small: users, shows, campaigns
and creatives with their latent traits), saved under ``world/`` and loaded by every worker, so the whole ground truth is
known to later stages (the simulated A/B test draws outcomes from :meth:`World.outcome_probabilities`)::

    >>> world = World.generate(WorldConfig.preset("tiny"))
    >>> p = world.outcome_probabilities(
    ...     np.array([0]), np.array([5]), "promo", surface=np.array([0]), device=np.array([0]), hour=np.array([20]),
    ...     promo_slot=np.array([0]), layout=np.array([0]), position=np.array([0]))
    >>> bool(0 < p.stream[0] < 1)
    True

The true model, per impression of show c to user u in context x (all logits):

- affinity ``a(u, c) = <theta_u, phi_c> / sqrt(d)``: one latent preference, shared by both channels;
- click  = click_intercept[channel] + affinity_click * a + channel effects;
- stream = stream_intercept[channel] + affinity_stream * a + appeal_stream * appeal_c + channel effects
  (+ stream_after_click when the user clicked);
- follow and like happen only after a qualifying stream, driven by the same affinity.

Ad effects: format, slot, creative quality, the user's ad responsiveness and format preference, and fatigue from
repeats. Promotion effects: slot, layout, position decay, the user's promotion responsiveness. Shared context:
surface, device, hour of day. Users' ids are ``index + 1``; so are shows', campaigns' and creatives'.
"""

from __future__ import annotations

import datetime
import functools
import io
from dataclasses import dataclass, fields

import numpy as np
from apache_beam.io.filesystems import FileSystems

from ..schemas import layout
from .config import (
    ACCOUNT_TYPES,
    AD_FORMATS,
    AGE_BUCKETS,
    COUNTRIES,
    COUNTRY_LANGUAGE,
    COUNTRY_WEIGHTS,
    DEVICES,
    GENRES,
    N_TOPICS,
    OBJECTIVES,
    WorldConfig,
)

CHANNELS = ("ad", "promo")
# Streams after an ad or promotion need a device that plays audio; display ads are shown on the home surface.
LANGUAGES = tuple(sorted(set(COUNTRY_LANGUAGE.values())))
_PUBLISHERS = 60


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent, reproducible random stream for ``(seed, *stream)`` (e.g. seed, shard, day, purpose)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def correlated(own: np.ndarray, other: np.ndarray, correlation: float, own_sd: float, other_sd: float) -> np.ndarray:
    """``own`` (independent normal draws of spread ``own_sd``) turned into draws of the same spread that correlate
    with ``other`` (spread ``other_sd``) by ``correlation``: ``own_sd * (rho * other / other_sd + sqrt(1 - rho^2) *
    own / own_sd)``. At 0 it returns ``own`` itself (the worlds drawn before the option existed).

        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(0, 0.7, 100_000), rng.normal(0, 0.4, 100_000)
        >>> c = correlated(a, b, 0.6, 0.7, 0.4)
        >>> round(float(np.corrcoef(c, b)[0, 1]), 2), round(float(c.std()), 2)
        (0.6, 0.7)
    """
    if correlation == 0:
        return own
    z_own = own / own_sd if own_sd > 0 else np.zeros_like(own)
    z_other = other / other_sd if other_sd > 0 else np.zeros_like(other)
    return own_sd * (correlation * z_other + np.sqrt(1.0 - correlation**2) * z_own)


@dataclass
class Users:
    country: np.ndarray  # code into COUNTRIES
    age: np.ndarray  # code into AGE_BUCKETS
    premium: np.ndarray  # bool
    signup_day: np.ndarray  # days relative to start_date (negative: before the period)
    device: np.ndarray  # primary device code
    theta: np.ndarray  # (n, d) latent taste
    activity: np.ndarray  # expected sessions per day
    ad_responsiveness: np.ndarray
    promo_responsiveness: np.ndarray
    format_preference: np.ndarray  # (n, n_formats)
    genre_profile: np.ndarray  # (n, n_genres): the incumbent's noisy estimate of taste, not the truth


@dataclass
class Podcasts:
    genres: np.ndarray  # (n, 2) genre codes, second may be -1
    topics: np.ndarray  # (n, 4) topic codes, -1 padded
    language: np.ndarray  # code into LANGUAGES
    is_original: np.ndarray
    created_day: np.ndarray  # relative to start_date
    explicit: np.ndarray
    episode_count: np.ndarray
    publisher: np.ndarray
    phi: np.ndarray  # (n, d) latent content vector
    log_appeal: np.ndarray  # heavy-tailed intrinsic appeal (standard-normal scale times popularity_sigma)


@dataclass
class Campaigns:
    channel: np.ndarray  # 0 = ad, 1 = promo
    podcast: np.ndarray  # podcast index
    objective: np.ndarray  # code into OBJECTIVES
    start_day: np.ndarray
    end_day: np.ndarray
    budget_micros: np.ndarray  # 0 for promotions
    cpm_micros: np.ndarray  # 0 for promotions
    target_countries: np.ndarray  # (n, n_countries) bool; all True = untargeted
    target_ages: np.ndarray  # (n, n_ages) bool
    target_accounts: np.ndarray  # (n, 2) bool
    advertiser: np.ndarray  # -1 for promotions


@dataclass
class Creatives:
    campaign: np.ndarray  # campaign index (ad campaigns only)
    format: np.ndarray  # code into AD_FORMATS
    duration_s: np.ndarray
    quality: np.ndarray  # hidden creative quality (logit effect)
    has_cta: np.ndarray


@dataclass
class OutcomeProbabilities:
    """True per-impression probabilities. ``stream`` is the marginal probability of a qualifying stream."""

    click: np.ndarray
    stream_if_click: np.ndarray
    stream_if_no_click: np.ndarray
    follow_if_stream: np.ndarray
    like_if_stream: np.ndarray

    @property
    def stream(self) -> np.ndarray:
        return self.click * self.stream_if_click + (1 - self.click) * self.stream_if_no_click

    @property
    def follow(self) -> np.ndarray:
        return self.stream * self.follow_if_stream

    @property
    def like(self) -> np.ndarray:
        return self.stream * self.like_if_stream


_TABLES = {"users": Users, "podcasts": Podcasts, "campaigns": Campaigns, "creatives": Creatives}


@dataclass
class World:
    config: WorldConfig
    users: Users
    podcasts: Podcasts
    campaigns: Campaigns
    creatives: Creatives

    # -- generation -------------------------------------------------------------------------------------------
    @classmethod
    def generate(cls, config: WorldConfig) -> World:
        """Draw every entity and hidden trait. Deterministic for ``config.seed``."""
        rng = rng_for(config.seed, 0)
        d = config.latent_dim
        n_genres = len(GENRES)
        # Genres and topics own directions in the latent space, so observable metadata carries real signal.
        genre_dirs = rng.normal(size=(n_genres, d))
        topic_dirs = rng.normal(size=(N_TOPICS, d))
        topic_genre = rng.integers(0, n_genres, size=N_TOPICS)

        users = cls._draw_users(config, rng, genre_dirs)
        podcasts = cls._draw_podcasts(config, rng, genre_dirs, topic_dirs, topic_genre)
        campaigns, creatives = cls._draw_campaigns(config, rng, podcasts)
        return cls(config, users, podcasts, campaigns, creatives)

    @staticmethod
    def _draw_users(config: WorldConfig, rng: np.random.Generator, genre_dirs: np.ndarray) -> Users:
        n, d, gt = config.n_users, config.latent_dim, config.ground_truth
        # Each user leans towards two genres, plus idiosyncratic taste.
        fav = rng.integers(0, len(GENRES), size=(n, 2))
        theta = 0.45 * (genre_dirs[fav[:, 0]] + 0.6 * genre_dirs[fav[:, 1]]) + 0.8 * rng.normal(size=(n, d))
        theta /= np.linalg.norm(theta, axis=1, keepdims=True) / np.sqrt(d)
        new = rng.random(n) < config.new_user_share
        signup = np.where(new, rng.integers(0, config.n_days, size=n), -rng.integers(1, 2000, size=n))
        true_genre_affinity = theta @ genre_dirs.T / np.sqrt(d)
        profile = true_genre_affinity + config.incumbent_noise * rng.normal(size=true_genre_affinity.shape)
        device_probs = np.array([0.38, 0.37, 0.12, 0.08, 0.05])
        # Drawn in this order (the order of every world saved so far): the same seed gives the same world.
        country = rng.choice(len(COUNTRIES), size=n, p=np.array(COUNTRY_WEIGHTS) / sum(COUNTRY_WEIGHTS))
        age = rng.choice(len(AGE_BUCKETS), size=n, p=[0.24, 0.31, 0.21, 0.14, 0.10])
        premium = rng.random(n) < config.premium_share
        device = rng.choice(len(DEVICES), size=n, p=device_probs / device_probs.sum())
        activity = config.sessions_per_user_day * rng.lognormal(-0.5, 1.0, size=n)
        ad_responsiveness = rng.normal(0, gt.ad_responsiveness_sd, size=n)
        promo_responsiveness = rng.normal(0, gt.promo_responsiveness_sd, size=n)
        return Users(
            country=country,
            age=age,
            premium=premium,
            signup_day=signup.astype(np.int32),
            device=device,
            theta=theta.astype(np.float32),
            activity=activity.astype(np.float32),
            ad_responsiveness=correlated(
                ad_responsiveness,
                promo_responsiveness,
                gt.ad_promo_responsiveness_correlation,
                gt.ad_responsiveness_sd,
                gt.promo_responsiveness_sd,
            ).astype(np.float32),
            promo_responsiveness=promo_responsiveness.astype(np.float32),
            format_preference=rng.normal(0, gt.user_format_preference_sd, size=(n, len(AD_FORMATS))).astype(np.float32),
            genre_profile=profile.astype(np.float32),
        )

    @staticmethod
    def _draw_podcasts(
        config: WorldConfig,
        rng: np.random.Generator,
        genre_dirs: np.ndarray,
        topic_dirs: np.ndarray,
        topic_genre: np.ndarray,
    ) -> Podcasts:
        n, d = config.n_podcasts, config.latent_dim
        g1 = rng.integers(0, len(GENRES), size=n)
        g2 = np.where(rng.random(n) < 0.4, rng.integers(0, len(GENRES), size=n), -1)
        g2 = np.where(g2 == g1, -1, g2)
        n_topics = rng.integers(2, 5, size=n)
        topics = np.full((n, 4), -1, dtype=np.int32)
        for k in range(4):
            # Topics mostly belong to the show's main genre.
            same = rng.random(n) < 0.7
            in_genre = np.array(
                [rng.choice(np.flatnonzero(topic_genre == g)) if (topic_genre == g).any() else 0 for g in g1]
            )
            pick = np.where(same, in_genre, rng.integers(0, N_TOPICS, size=n))
            topics[:, k] = np.where(k < n_topics, pick, -1)
        phi = 0.6 * genre_dirs[g1] + 0.3 * np.where((g2 >= 0)[:, None], genre_dirs[np.maximum(g2, 0)], 0)
        for k in range(4):
            valid = (topics[:, k] >= 0)[:, None]
            phi = phi + 0.25 * np.where(valid, topic_dirs[np.maximum(topics[:, k], 0)], 0)
        phi = phi + 0.7 * rng.normal(size=(n, d))
        phi /= np.linalg.norm(phi, axis=1, keepdims=True) / np.sqrt(d)
        new = rng.random(n) < config.new_podcast_share
        created = np.where(new, rng.integers(0, config.n_days, size=n), -rng.integers(30, 3000, size=n))
        is_original = rng.random(n) < 0.06
        # Originals get production budgets: higher appeal on average.
        log_appeal = config.popularity_sigma * rng.normal(size=n) + 0.8 * is_original
        language = rng.choice(len(LANGUAGES), size=n, p=_language_weights())
        return Podcasts(
            genres=np.stack([g1, g2], axis=1).astype(np.int32),
            topics=topics,
            language=language.astype(np.int32),
            is_original=is_original,
            created_day=created.astype(np.int32),
            explicit=rng.random(n) < 0.2,
            episode_count=np.where(new, rng.integers(1, 4, size=n), rng.integers(5, 400, size=n)).astype(np.int32),
            publisher=rng.integers(0, _PUBLISHERS, size=n).astype(np.int32),
            phi=phi.astype(np.float32),
            log_appeal=log_appeal.astype(np.float32),
        )

    @staticmethod
    def _draw_campaigns(
        config: WorldConfig, rng: np.random.Generator, podcasts: Podcasts
    ) -> tuple[Campaigns, Creatives]:
        n_ad, n_promo = config.n_ad_campaigns, config.n_promo_campaigns
        n = n_ad + n_promo
        channel = np.r_[np.zeros(n_ad, np.int8), np.ones(n_promo, np.int8)]
        # Advertisers skew towards smaller and newer shows that need growth; promotions favour Originals and
        # launches. Either way many campaigned shows have little history: the cold-start problem.
        created = podcasts.created_day
        weight_ad = np.exp(-0.3 * podcasts.log_appeal) * np.where(created >= 0, 3.0, 1.0)
        weight_promo = np.where(podcasts.is_original, 8.0, 1.0) * np.where(created >= 0, 4.0, 1.0)
        podcast = np.r_[
            rng.choice(config.n_podcasts, size=n_ad, p=weight_ad / weight_ad.sum()),
            rng.choice(config.n_podcasts, size=n_promo, p=weight_promo / weight_promo.sum()),
        ]
        # Campaigns start no earlier than their show launches and run 3 days to the whole period.
        earliest = np.maximum(created[podcast], 0)
        latest_start = config.n_days - 1
        start = np.where(
            rng.random(n) < 0.5, earliest, earliest + rng.integers(0, max(config.n_days // 2, 1), size=n)
        ).clip(max=latest_start)
        length = rng.integers(3, config.n_days + 8, size=n)
        end = start + length - 1
        objective = np.where(
            channel == 0,
            rng.choice(len(OBJECTIVES), size=n, p=[0.6, 0.25, 0.15]),
            rng.choice(len(OBJECTIVES), size=n, p=[0.8, 0.0, 0.2]),
        )
        cpm = np.where(channel == 0, rng.integers(6, 25, size=n) * 1_000_000, 0).astype(np.int64)
        budget = np.where(channel == 0, (rng.lognormal(np.log(400), 0.8, size=n) * 1_000_000).astype(np.int64), 0)
        n_c, n_a = len(COUNTRIES), len(AGE_BUCKETS)
        target_countries = np.ones((n, n_c), bool)
        narrow = rng.random(n) < 0.5
        for i in np.flatnonzero(narrow):
            k = rng.integers(1, 4)
            target_countries[i] = False
            target_countries[i, rng.choice(n_c, size=k, replace=False)] = True
        target_ages = np.ones((n, n_a), bool)
        for i in np.flatnonzero(rng.random(n) < 0.3):
            lo = rng.integers(0, n_a - 1)
            target_ages[i] = False
            target_ages[i, lo : lo + rng.integers(2, 4)] = True
        target_accounts = np.ones((n, len(ACCOUNT_TYPES)), bool)
        target_accounts[channel == 0, ACCOUNT_TYPES.index("premium")] = False  # premium users never see ads
        campaigns = Campaigns(
            channel=channel,
            podcast=podcast.astype(np.int32),
            objective=objective.astype(np.int8),
            start_day=start.astype(np.int32),
            end_day=end.astype(np.int32),
            budget_micros=budget,
            cpm_micros=cpm,
            target_countries=target_countries,
            target_ages=target_ages,
            target_accounts=target_accounts,
            advertiser=np.where(channel == 0, rng.integers(0, 40, size=n), -1).astype(np.int32),
        )
        per_campaign = rng.integers(1, 4, size=n_ad)
        cr_campaign = np.repeat(np.arange(n_ad), per_campaign)
        fmt = rng.choice(len(AD_FORMATS), size=len(cr_campaign), p=[0.55, 0.25, 0.20])
        duration = np.where(fmt == AD_FORMATS.index("display"), 0, rng.choice([15, 30, 60], size=len(cr_campaign)))
        gt = config.ground_truth
        creatives = Creatives(
            campaign=cr_campaign.astype(np.int32),
            format=fmt.astype(np.int8),
            duration_s=duration.astype(np.int32),
            quality=rng.normal(0, gt.creative_quality_sd, size=len(cr_campaign)).astype(np.float32),
            has_cta=rng.random(len(cr_campaign)) < 0.6,
        )
        return campaigns, creatives

    # -- the ground truth ---------------------------------------------------------------------------------------
    @functools.cached_property
    def user_language(self) -> np.ndarray:
        """Language code (into the podcasts' language vocabulary) of each user, from their country."""
        codes = np.array([LANGUAGES.index(COUNTRY_LANGUAGE[c]) for c in COUNTRIES], dtype=np.int32)
        return codes[self.users.country]

    def affinity(self, user: np.ndarray, podcast: np.ndarray) -> np.ndarray:
        """The shared latent user-show preference, about unit variance, for paired index arrays."""
        d = self.config.latent_dim
        return np.einsum("ij,ij->i", self.users.theta[user], self.podcasts.phi[podcast]) / np.sqrt(d)

    def appeal(self, podcast: np.ndarray) -> np.ndarray:
        """Show appeal on a standard-normal scale (the log-popularity without its spread)."""
        return self.podcasts.log_appeal[podcast] / self.config.popularity_sigma

    def outcome_probabilities(
        self,
        user: np.ndarray,
        podcast: np.ndarray,
        channel: str,
        *,
        surface: np.ndarray,
        device: np.ndarray,
        hour: np.ndarray,
        creative: np.ndarray | None = None,
        ad_slot: np.ndarray | None = None,
        prior_exposures: np.ndarray | None = None,
        promo_slot: np.ndarray | None = None,
        layout: np.ndarray | None = None,
        position: np.ndarray | None = None,
    ) -> OutcomeProbabilities:
        """True outcome probabilities for impressions of shows ``podcast`` to users ``user`` (index arrays).

        Args:
            channel: ``"ad"`` (needs ``creative`` and ``ad_slot``) or ``"promo"`` (needs ``promo_slot``,
                ``layout`` and ``position``).
            surface, device, hour: context codes (``SURFACES``, ``DEVICES``) and the local hour 0-23.
            prior_exposures: impressions of the same ad campaign the user already saw today (fatigue).
        """
        gt = self.config.ground_truth
        a = self.affinity(user, podcast)
        context = (
            np.asarray(gt.surface_effect)[surface]
            + np.asarray(gt.device_effect)[device]
            + gt.evening_effect * np.cos((np.asarray(hour) - 20) * (2 * np.pi / 24))
        )
        if channel == "ad":
            if creative is None or ad_slot is None:
                raise ValueError("channel='ad' needs creative and ad_slot")
            fmt = self.creatives.format[creative]
            channel_effect = (
                np.asarray(gt.ad_format_effect)[fmt]
                + np.asarray(gt.ad_slot_effect)[ad_slot]
                + self.creatives.quality[creative]
                + self.users.ad_responsiveness[user]
                + self.users.format_preference[user, fmt]
            )
            if prior_exposures is not None:
                channel_effect = channel_effect - gt.ad_fatigue_per_repeat * prior_exposures
            stream_b, click_b = gt.stream_intercept_ad, gt.click_intercept_ad
        elif channel == "promo":
            if promo_slot is None or layout is None or position is None:
                raise ValueError("channel='promo' needs promo_slot, layout and position")
            channel_effect = (
                np.asarray(gt.promo_slot_effect)[promo_slot]
                + np.asarray(gt.promo_layout_effect)[layout]
                - gt.promo_position_decay * np.asarray(position)
                + self.users.promo_responsiveness[user]
            )
            stream_b, click_b = gt.stream_intercept_promo, gt.click_intercept_promo
        else:
            raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
        mismatch = gt.language_mismatch * (self.user_language[user] != self.podcasts.language[podcast])
        stream_logit = stream_b + gt.affinity_stream * a + gt.appeal_stream * self.appeal(podcast) + context
        stream_logit = stream_logit - mismatch
        stream_logit = stream_logit + channel_effect
        click_logit = click_b + gt.affinity_click * a + context + 0.6 * channel_effect
        follow_logit = gt.follow_given_stream_intercept + gt.affinity_follow * a
        like_logit = gt.like_given_stream_intercept + gt.affinity_follow * a + 0.2 * self.appeal(podcast)
        return OutcomeProbabilities(
            click=_sigmoid(click_logit),
            stream_if_click=_sigmoid(stream_logit + gt.stream_after_click),
            stream_if_no_click=_sigmoid(stream_logit),
            follow_if_stream=_sigmoid(follow_logit),
            like_if_stream=_sigmoid(like_logit),
        )

    # -- dimension rows -----------------------------------------------------------------------------------------
    def day_offset(self, day: datetime.date) -> int:
        return (day - self.config.start_date).days

    def _date(self, offset: int) -> datetime.date:
        return self.config.start_date + datetime.timedelta(days=int(offset))

    def user_rows(self, user_indices: np.ndarray) -> list[dict]:
        u = self.users
        return [
            {
                "user_id": int(i) + 1,
                "country": COUNTRIES[u.country[i]],
                "age_bucket": AGE_BUCKETS[u.age[i]],
                "account_type": "premium" if u.premium[i] else "free",
                "signup_date": self._date(u.signup_day[i]),
                "primary_device": DEVICES[u.device[i]],
                "language": COUNTRY_LANGUAGE[COUNTRIES[u.country[i]]],
            }
            for i in user_indices
        ]

    def podcast_rows(self, day: datetime.date) -> list[dict]:
        p, off = self.podcasts, self.day_offset(day)
        rows = []
        for i in np.flatnonzero(p.created_day <= off):
            age_days = off - int(p.created_day[i])
            rows.append(
                {
                    "podcast_id": int(i) + 1,
                    "publisher": f"publisher-{int(p.publisher[i]):03d}",
                    "genres": [GENRES[g] for g in p.genres[i] if g >= 0],
                    "topics": [f"topic-{int(t):03d}" for t in p.topics[i] if t >= 0],
                    "language": LANGUAGES[p.language[i]],
                    "is_original": bool(p.is_original[i]),
                    "created_date": self._date(p.created_day[i]),
                    "explicit": bool(p.explicit[i]),
                    "episode_count": int(p.episode_count[i]) + (age_days // 7 if p.created_day[i] >= 0 else 0),
                }
            )
        return rows

    def campaign_rows(self, day: datetime.date) -> list[dict]:
        c, off = self.campaigns, self.day_offset(day)
        rows = []
        for i in np.flatnonzero(c.start_day <= off):
            is_ad = c.channel[i] == 0
            rows.append(
                {
                    "campaign_id": int(i) + 1,
                    "channel": "ad" if is_ad else "promo",
                    "podcast_id": int(c.podcast[i]) + 1,
                    "objective": OBJECTIVES[c.objective[i]],
                    "start_date": self._date(c.start_day[i]),
                    "end_date": self._date(c.end_day[i]),
                    "budget_micros": int(c.budget_micros[i]) if is_ad else None,
                    "cpm_micros": int(c.cpm_micros[i]) if is_ad else None,
                    "target_countries": []
                    if c.target_countries[i].all()
                    else [COUNTRIES[k] for k in np.flatnonzero(c.target_countries[i])],
                    "target_age_buckets": []
                    if c.target_ages[i].all()
                    else [AGE_BUCKETS[k] for k in np.flatnonzero(c.target_ages[i])],
                    "target_account_types": []
                    if c.target_accounts[i].all()
                    else [ACCOUNT_TYPES[k] for k in np.flatnonzero(c.target_accounts[i])],
                    "advertiser": f"advertiser-{int(c.advertiser[i]):03d}" if is_ad else None,
                }
            )
        return rows

    def creative_rows(self, day: datetime.date) -> list[dict]:
        cr, off = self.creatives, self.day_offset(day)
        known = self.campaigns.start_day[cr.campaign] <= off
        podcast_language = self.podcasts.language[self.campaigns.podcast[cr.campaign]]
        return [
            {
                "creative_id": int(k) + 1,
                "campaign_id": int(cr.campaign[k]) + 1,
                "format": AD_FORMATS[cr.format[k]],
                "duration_s": int(cr.duration_s[k]),
                "language": LANGUAGES[podcast_language[k]],
                "has_call_to_action": bool(cr.has_cta[k]),
            }
            for k in np.flatnonzero(known)
        ]

    # -- persistence --------------------------------------------------------------------------------------------
    def save(self, world_dir: str) -> None:
        """Write ``config.json`` and ``ground_truth.npz`` (every hidden trait) under ``world_dir``."""
        arrays = {
            f"{table}.{f.name}": getattr(getattr(self, table), f.name)
            for table, cls in _TABLES.items()
            for f in fields(cls)
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        _write_bytes(layout.join(world_dir, "ground_truth.npz"), buffer.getvalue())
        _write_bytes(layout.join(world_dir, "config.json"), self.config.to_json().encode())

    @classmethod
    def load(cls, world_dir: str) -> World:
        """Load a world saved by :meth:`save` (local or ``gs://``), with a clear error if it is incomplete."""
        config_path = layout.join(world_dir, "config.json")
        truth_path = layout.join(world_dir, "ground_truth.npz")
        for path in (config_path, truth_path):
            if not FileSystems.exists(path):
                raise FileNotFoundError(f"{path} not found: {world_dir} does not hold a saved world (run `make data`)")
        config = WorldConfig.from_json(_read_bytes(config_path).decode())
        try:
            with np.load(io.BytesIO(_read_bytes(truth_path)), allow_pickle=False) as npz:
                tables = {
                    table: klass(**{f.name: npz[f"{table}.{f.name}"] for f in fields(klass)})
                    for table, klass in _TABLES.items()
                }
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{truth_path} is corrupt or from another version: {exc}") from exc
        return cls(config=config, **tables)


def _language_weights() -> list[float]:
    weights = {lang: 0.0 for lang in LANGUAGES}
    for country, w in zip(COUNTRIES, COUNTRY_WEIGHTS, strict=True):
        weights[COUNTRY_LANGUAGE[country]] += w
    total = sum(weights.values())
    return [weights[lang] / total for lang in LANGUAGES]


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as handle:
        handle.write(data)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()

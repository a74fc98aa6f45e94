"""Day-by-day behaviour of one shard of users: sessions (from the world's session model,
:mod:`podtarget.simulator.sessions`), impressions from a biased logging policy, and outcomes.

A :class:`ShardSimulator` owns a contiguous range of users and walks the days in order. Shards never talk to each
other (campaign budgets are split between shards in proportion to their users), which is what lets the Beam
pipeline run them on any number of workers. Memory is bounded by the shard's users and the longest outcome delay,
not by the number of days: events wait in per-day buffers only until their day is complete::

    >>> from podtarget.simulator.config import WorldConfig
    >>> from podtarget.simulator.world import World
    >>> world = World.generate(WorldConfig.preset("tiny"))
    >>> sim = ShardSimulator(world, shard=0)
    >>> day, tables = next(sim.run())
    >>> sorted(tables)[:3]
    ['ad_impression', 'click', 'follow']

The logging policy is an incumbent targeting model (a noisy genre-match score, popularity and price) with a share
of uniform exploration; so the logged data carries the selection bias real logs have.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..schemas import LOG_TABLES
from ..schemas.units import MS_PER_DAY, MS_PER_HOUR
from .config import AD_FORMATS, AD_SLOTS, DEVICES, GENRES, PROMO_LAYOUTS, PROMO_SLOTS, SURFACES
from .dirt import DirtPlanter
from .sessions import MAX_ADS_PER_SESSION, day_sessions
from .world import World, rng_for

Columns = dict[str, np.ndarray]

QUALIFYING_MS = 60_000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_CAMPAIGN_CANDIDATES = 4  # promotion positions per placement at most
_ORGANIC_CANDIDATES = 24
_FORMAT = {name: i for i, name in enumerate(AD_FORMATS)}
_SMART_SPEAKER = DEVICES.index("smart_speaker")
# Promotion slot -> (surface, possible layouts); slot mix of the app.
_PROMO_SLOT_P = np.array([0.5, 0.15, 0.2, 0.15])
_PROMO_SLOT_SURFACE = np.array([SURFACES.index(s) for s in ("home", "home", "search", "now_playing")])
# Layout probabilities per promotion slot (rows: PROMO_SLOTS, columns: PROMO_LAYOUTS), as cumulative sums for
# vectorised sampling.
_PROMO_LAYOUT_CDF = np.cumsum(
    np.array(
        [
            [0.35, 0.45, 0.0, 0.20],  # home_shelf: card, carousel, list
            [0.0, 0.0, 1.0, 0.0],  # hero_banner: banner
            [0.6, 0.0, 0.0, 0.4],  # search_card: card, list
            [1.0, 0.0, 0.0, 0.0],  # episode_end: card
        ]
    ),
    axis=1,
)
assert PROMO_LAYOUTS == ("card", "carousel", "banner", "list")
_IN_STREAM_SLOTS = np.array([AD_SLOTS.index(s) for s in ("preroll", "midroll", "postroll")])
_IN_STREAM_SLOT_P = np.array([0.3, 0.5, 0.2])
_HOME_BANNER = AD_SLOTS.index("home_banner")
_NOW_PLAYING = SURFACES.index("now_playing")
_HOME = SURFACES.index("home")


def hex_ids(values: np.ndarray) -> list[str]:
    """Fixed-width hex strings for unsigned 64-bit values (fast: one bytes.hex call for the whole array)."""
    h = values.astype(">u8").tobytes().hex()
    return [h[i : i + 16] for i in range(0, len(h), 16)]


def _concat(parts: list[Columns]) -> Columns:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(cols: Columns, mask: np.ndarray) -> Columns:
    return {k: v[mask] for k, v in cols.items()}


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return -np.log(-np.log(rng.random(shape) + 1e-12) + 1e-12)


@dataclass
class ShardStats:
    """What one shard produced; merged across shards into the run summary."""

    rows: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    outcomes: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    dirt: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    beyond_horizon: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    organic_streams_per_podcast: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {
            "rows": {t: dict(d) for t, d in self.rows.items()},
            "outcomes": {c: dict(d) for c, d in self.outcomes.items()},
            "dirt": {t: dict(d) for t, d in self.dirt.items()},
            "beyond_horizon": dict(self.beyond_horizon),
            "organic_streams_per_podcast": (
                [] if self.organic_streams_per_podcast is None else self.organic_streams_per_podcast.tolist()
            ),
        }


class ShardSimulator:
    """Simulates the users ``world.config.shard_users(shard)`` over every day of the world."""

    def __init__(self, world: World, shard: int) -> None:
        self.world = world
        self.cfg = world.config
        self.shard = shard
        user_range = self.cfg.shard_users(shard)
        self.users = np.arange(user_range.start, user_range.stop)
        self.user_share = len(self.users) / self.cfg.n_users
        self.stats = ShardStats(organic_streams_per_podcast=np.zeros(self.cfg.n_podcasts, np.int64))
        self._pending: dict[int, dict[str, list[Columns]]] = defaultdict(lambda: defaultdict(list))
        self._following: set[int] = set()
        self._dirt = DirtPlanter(self.cfg, shard, self._defer_late_rows)
        self._late: dict[int, dict[str, list[Columns]]] = defaultdict(lambda: defaultdict(list))
        self._prepare_campaigns()

    # -- public ---------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[tuple[datetime.date, dict[str, list[dict]]]]:
        """Yield ``(day, {table: records})`` for each day in order: every log table and the user snapshot."""
        for d, day in enumerate(self.cfg.days):
            self._simulate_day(d)
            tables = self._flush(d)
            active = self.users[self.world.users.signup_day[self.users] <= d]
            tables["user"] = self.world.user_rows(active)
            for table, records in tables.items():
                self.stats.rows[table][day.isoformat()] += len(records)
            yield day, tables

    # -- campaigns --------------------------------------------------------------------------------------------------
    def _prepare_campaigns(self) -> None:
        w, c = self.world, self.world.campaigns
        n_campaigns = len(c.channel)
        genre_hot = np.zeros((self.cfg.n_podcasts, len(GENRES)), np.float32)
        for k in range(2):
            g = w.podcasts.genres[:, k]
            genre_hot[np.flatnonzero(g >= 0), g[g >= 0]] = 1.0
        self._campaign_genres = genre_hot[c.podcast]
        # Popularity the incumbent can see (past streams), not the true appeal.
        self._campaign_popularity = 0.3 * w.appeal(c.podcast)
        # Each campaign's creatives by format, padded with -1, for vectorised creative choice.
        cr = w.creatives
        max_creatives = int(np.bincount(cr.campaign, minlength=n_campaigns).max()) if len(cr.campaign) else 1
        self._creatives = np.full((n_campaigns, max_creatives), -1, np.int64)
        fill = np.zeros(n_campaigns, np.int64)
        for k, camp in enumerate(cr.campaign):
            self._creatives[camp, fill[camp]] = k
            fill[camp] += 1
        has = np.zeros((n_campaigns, len(AD_FORMATS)), bool)
        has[cr.campaign, cr.format] = True
        self._has_format = has
        span = (c.end_day - c.start_day + 1).clip(min=1)
        self._daily_budget = np.where(c.channel == 0, c.budget_micros / span * self.user_share, 0.0)
        self._spent_total = np.zeros(n_campaigns)

    def _eligible(self, users: np.ndarray, campaigns: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(len(users), len(campaigns)) mask: targeting matches and the frequency cap is not reached."""
        u, c = self.world.users, self.world.campaigns
        mask = c.target_countries[campaigns][:, u.country[users]].T
        mask &= c.target_ages[campaigns][:, u.age[users]].T
        mask &= c.target_accounts[campaigns][:, u.premium[users].astype(np.int64)].T
        local = users - self.users[0]
        mask &= counts[local[:, None], campaigns[None, :]] < self.cfg.frequency_cap_per_day
        return mask

    def _incumbent_scores(
        self, rng: np.random.Generator, users: np.ndarray, campaigns: np.ndarray, price: np.ndarray | None
    ) -> np.ndarray:
        """The logging policy's noisy preference, plus Gumbel noise; exploring rows ignore the preference."""
        score = self.world.users.genre_profile[users] @ self._campaign_genres[campaigns].T
        score = score + self._campaign_popularity[campaigns][None, :]
        if price is not None:
            score = score + np.log(price)[None, :]
        explore = rng.random(len(users)) < self.cfg.exploration
        score[explore] = 0.0
        return score + _gumbel(rng, score.shape)

    # -- one day --------------------------------------------------------------------------------------------------
    def _simulate_day(self, d: int) -> None:
        rng = rng_for(self.cfg.seed, 1, self.shard, d)
        w = self.world
        day_start = int(
            (datetime.datetime.combine(self.cfg.days[d], datetime.time(), datetime.UTC) - _EPOCH).total_seconds() * 1000
        )
        sessions = day_sessions(w, self.users, d, day_start, rng)

        c = w.campaigns
        live = (c.start_day <= d) & (c.end_day >= d) & (w.podcasts.created_day[c.podcast] <= d)
        counts = np.zeros((len(self.users), len(c.channel)), np.int16)
        promo = self._promotions(rng, sessions, np.flatnonzero(live & (c.channel == 1)), counts)
        ads = self._ads(rng, sessions, np.flatnonzero(live & (c.channel == 0)), counts, d)
        self._outcomes(rng, "ad", ads, day_start)
        self._outcomes(rng, "promo", promo, day_start)
        self._organic(rng, sessions, d)

    def _promotions(self, rng: np.random.Generator, s: Columns, campaigns: np.ndarray, counts: np.ndarray) -> Columns:
        n = len(s["user"])
        k = np.minimum(rng.poisson(self.cfg.promos_per_session, size=n), _CAMPAIGN_CANDIDATES)
        slot = rng.choice(len(PROMO_SLOTS), size=n, p=_PROMO_SLOT_P)
        out: list[Columns] = []
        if len(campaigns) == 0:
            return {}
        for r in range(int(s["round"].max(initial=-1)) + 1):
            idx = np.flatnonzero((s["round"] == r) & (k > 0))
            if len(idx) == 0:
                continue
            users = s["user"][idx]
            mask = self._eligible(users, campaigns, counts)
            score = np.where(mask, self._incumbent_scores(rng, users, campaigns, None), -np.inf)
            top = min(_CAMPAIGN_CANDIDATES, len(campaigns))
            order = np.argsort(-score, axis=1)[:, :top]
            chosen_score = np.take_along_axis(score, order, axis=1)
            ok = np.isfinite(chosen_score) & (np.arange(top)[None, :] < k[idx, None])
            row, pos = np.nonzero(ok)
            sess = idx[row]
            camp = campaigns[order[row, pos]]
            counts[s["user"][sess] - self.users[0], camp] += 1
            cdf = _PROMO_LAYOUT_CDF[slot[sess]]
            layouts = np.minimum((rng.random(len(sess))[:, None] >= cdf).sum(axis=1), len(PROMO_LAYOUTS) - 1)
            out.append(
                {
                    "session": sess,
                    "user": s["user"][sess],
                    "campaign": camp,
                    "podcast": self.world.campaigns.podcast[camp].astype(np.int64),
                    "slot": slot[sess],
                    "layout": layouts,
                    "position": pos.astype(np.int64),
                    "surface": _PROMO_SLOT_SURFACE[slot[sess]],
                    "device": s["device"][sess],
                    "hour": s["hour"][sess],
                    "ts": s["ts"][sess] + pos * 1_000 + rng.integers(0, 60_000, len(sess)),
                }
            )
        return _concat(out)

    def _ads(self, rng: np.random.Generator, s: Columns, campaigns: np.ndarray, counts: np.ndarray, d: int) -> Columns:
        w = self.world
        n = len(s["user"])
        free = ~w.users.premium[s["user"]]
        n_ads = np.where(free, np.minimum(rng.poisson(self.cfg.ads_per_session, size=n), MAX_ADS_PER_SESSION), 0)
        if len(campaigns) == 0:
            return {}
        remaining = self._daily_budget[campaigns].copy()
        price = w.campaigns.cpm_micros[campaigns].astype(np.float64)
        out: list[Columns] = []
        for r in range(int(s["round"].max(initial=-1)) + 1):
            for j in range(MAX_ADS_PER_SESSION):
                idx = np.flatnonzero((s["round"] == r) & (n_ads > j))
                if len(idx) == 0:
                    continue
                users, device = s["user"][idx], s["device"][idx]
                display = (rng.random(len(idx)) < 0.25) & (device != _SMART_SPEAKER)
                # A campaign competes only with a creative the placement can play.
                can_audio = self._has_format[campaigns, _FORMAT["audio"]][None, :]
                can_video = self._has_format[campaigns, _FORMAT["video"]][None, :] & (device != _SMART_SPEAKER)[:, None]
                can_display = self._has_format[campaigns, _FORMAT["display"]][None, :]
                compatible = np.where(display[:, None], can_display, can_audio | can_video)
                mask = self._eligible(users, campaigns, counts) & compatible & (remaining > 0)[None, :]
                score = np.where(mask, self._incumbent_scores(rng, users, campaigns, price), -np.inf)
                best = np.argmax(score, axis=1)
                won = np.isfinite(score[np.arange(len(idx)), best])
                sess, pick = idx[won], best[won]
                # Second-price-like clearing below the CPM; stop serving once the day's budget is spent.
                cost = (price[pick] / 1000 * rng.uniform(0.7, 1.0, size=len(pick))).astype(np.int64)
                within = _within_budget(pick, cost, remaining)
                sess, pick, cost = sess[within], pick[within], cost[within]
                np.subtract.at(remaining, pick, cost)
                camp = campaigns[pick]
                local_user = s["user"][sess] - self.users[0]
                prior = counts[local_user, camp].astype(np.int64)
                counts[local_user, camp] += 1
                creative = self._choose_creative(rng, camp, display[won][within], s["device"][sess])
                is_display = display[won][within]
                slot = np.where(
                    is_display, _HOME_BANNER, rng.choice(_IN_STREAM_SLOTS, size=len(sess), p=_IN_STREAM_SLOT_P)
                )
                out.append(
                    {
                        "session": sess,
                        "user": s["user"][sess],
                        "campaign": camp,
                        "podcast": w.campaigns.podcast[camp].astype(np.int64),
                        "creative": creative,
                        "slot": slot,
                        "surface": np.where(is_display, _HOME, _NOW_PLAYING),
                        "device": s["device"][sess],
                        "hour": s["hour"][sess],
                        "prior": prior,
                        "cost": cost,
                        "ts": s["ts"][sess] + j * 300_000 + rng.integers(0, 120_000, len(sess)),
                    }
                )
        self._spent_total[campaigns] += self._daily_budget[campaigns] - remaining
        return _concat(out)

    def _choose_creative(
        self, rng: np.random.Generator, campaigns: np.ndarray, display: np.ndarray, device: np.ndarray
    ) -> np.ndarray:
        candidates = self._creatives[campaigns]
        fmt = np.where(candidates >= 0, self.world.creatives.format[np.maximum(candidates, 0)], -1)
        stream_ok = (fmt == _FORMAT["audio"]) | ((fmt == _FORMAT["video"]) & (device != _SMART_SPEAKER)[:, None])
        ok = np.where(display[:, None], fmt == _FORMAT["display"], stream_ok)
        pick = np.argmax(np.where(ok, _gumbel(rng, ok.shape), -np.inf), axis=1)
        return candidates[np.arange(len(campaigns)), pick]

    # -- outcomes ---------------------------------------------------------------------------------------------------
    def _outcomes(self, rng: np.random.Generator, channel: str, imp: Columns, day_start: int) -> None:
        n = len(imp.get("user", ()))
        stats = self.stats.outcomes[channel]
        stats["impressions"] += n
        if n == 0:
            return
        w = self.world
        channel_context = (
            {"creative": imp["creative"], "ad_slot": imp["slot"], "prior_exposures": imp["prior"]}
            if channel == "ad"
            else {"promo_slot": imp["slot"], "layout": imp["layout"], "position": imp["position"]}
        )
        p = w.outcome_probabilities(
            imp["user"],
            imp["podcast"],
            channel,
            surface=imp["surface"],
            device=imp["device"],
            hour=imp["hour"],
            **channel_context,
        )
        impression_ids = hex_ids(rng.integers(0, 2**63, size=n, dtype=np.int64))
        user_id, podcast_id = imp["user"] + 1, imp["podcast"] + 1
        # Columns both impression logs share, then each channel's own.
        row = {
            "impression_id": np.array(impression_ids, dtype=object),
            "event_ts": imp["ts"],
            "user_id": user_id,
            "podcast_id": podcast_id,
            "campaign_id": imp["campaign"] + 1,
            "surface": np.array(SURFACES, dtype=object)[imp["surface"]],
            "device": np.array(DEVICES, dtype=object)[imp["device"]],
            "country": self._countries(imp["user"]),
        }
        if channel == "ad":
            row |= {
                "creative_id": imp["creative"] + 1,
                "ad_format": np.array(AD_FORMATS, dtype=object)[w.creatives.format[imp["creative"]]],
                "slot": np.array(AD_SLOTS, dtype=object)[imp["slot"]],
                "cost_micros": imp["cost"],
            }
        else:
            row |= {
                "slot": np.array(PROMO_SLOTS, dtype=object)[imp["slot"]],
                "layout": np.array(PROMO_LAYOUTS, dtype=object)[imp["layout"]],
                "position": imp["position"],
            }
        self._emit(f"{channel}_impression", row)

        clicked = rng.random(n) < p.click
        streamed = rng.random(n) < np.where(clicked, p.stream_if_click, p.stream_if_no_click)
        stats["click"] += int(clicked.sum())
        stats["stream"] += int(streamed.sum())
        stats["expected_stream"] += float(p.stream.sum())
        click_ts = imp["ts"] + rng.exponential(20_000, n).astype(np.int64) + 1_000
        self._emit(
            "click",
            {
                "event_id": np.array(hex_ids(rng.integers(0, 2**63, size=int(clicked.sum()))), dtype=object),
                "event_ts": click_ts[clicked],
                "impression_id": np.array(impression_ids, dtype=object)[clicked],
                "user_id": user_id[clicked],
            },
        )
        # Streams come minutes to days later and carry no impression reference: attribution is downstream's job.
        component = rng.choice(3, size=n, p=[0.55, 0.3, 0.15])
        delay_drawn = rng.exponential(np.array([8 * 60_000, 5 * MS_PER_HOUR, 40 * MS_PER_HOUR])[component])
        delay = np.where(clicked, rng.exponential(120_000, n), delay_drawn).astype(np.int64) + 5_000
        # Short sampling plays (< 60 s) happen too and must not count as streams downstream.
        sampled = ~streamed & (rng.random(n) < self.cfg.ground_truth.short_play_rate * p.stream)
        stats["short_play"] += int(sampled.sum())
        play = streamed | sampled
        ms = np.where(
            streamed, QUALIFYING_MS + rng.lognormal(np.log(11 * 60_000), 0.9, n), rng.integers(1_000, QUALIFYING_MS, n)
        ).astype(np.int64)
        stream_ts = imp["ts"] + delay
        surface = np.where(clicked, SURFACES.index("podcast_page"), rng.choice([0, 1, 3], size=n))
        self._emit_streams(rng, imp["user"][play], imp["podcast"][play], stream_ts[play], ms[play], surface[play])
        self._engagement(
            rng,
            imp["user"][streamed],
            imp["podcast"][streamed],
            stream_ts[streamed],
            p.follow_if_stream[streamed],
            p.like_if_stream[streamed],
            stats,
        )

    def _engagement(
        self,
        rng: np.random.Generator,
        user: np.ndarray,
        podcast: np.ndarray,
        stream_ts: np.ndarray,
        p_follow: np.ndarray,
        p_like: np.ndarray,
        stats: dict[str, float] | None,
    ) -> None:
        """Follows and likes after qualifying streams; a user follows a show at most once."""
        n = len(user)
        key = user.astype(np.int64) * self.cfg.n_podcasts + podcast
        follow = rng.random(n) < p_follow
        for i in np.flatnonzero(follow):
            if key[i] in self._following:
                follow[i] = False
            else:
                self._following.add(int(key[i]))
        like = rng.random(n) < p_like
        if stats is not None:
            stats["follow"] += int(follow.sum())
            stats["like"] += int(like.sum())
        for table, chosen, mean_delay in (("follow", follow, 30 * 60_000), ("like", like, 45 * 60_000)):
            m = int(chosen.sum())
            self._emit(
                table,
                {
                    "event_id": np.array(hex_ids(rng.integers(0, 2**63, size=m)), dtype=object),
                    "event_ts": stream_ts[chosen] + rng.exponential(mean_delay, m).astype(np.int64) + 10_000,
                    "user_id": user[chosen] + 1,
                    "podcast_id": podcast[chosen] + 1,
                },
            )

    def _emit_streams(
        self,
        rng: np.random.Generator,
        user: np.ndarray,
        podcast: np.ndarray,
        ts: np.ndarray,
        ms_played: np.ndarray,
        surface: np.ndarray,
    ) -> None:
        m = len(user)
        episode = (podcast + 1) * 10_000 + np.maximum(
            self.world.podcasts.episode_count[podcast] - rng.integers(0, 5, m), 1
        )
        self._emit(
            "stream",
            {
                "event_id": np.array(hex_ids(rng.integers(0, 2**63, size=m)), dtype=object),
                "event_ts": ts,
                "user_id": user + 1,
                "podcast_id": podcast + 1,
                "episode_id": episode.astype(np.int64),
                "ms_played": ms_played,
                "surface": np.array(SURFACES, dtype=object)[surface],
            },
        )

    def _organic(self, rng: np.random.Generator, s: Columns, d: int) -> None:
        """Listening without any impression: popularity-driven candidates, chosen by the shared affinity."""
        w = self.world
        n_plays = rng.poisson(self.cfg.organic_streams_per_session, size=len(s["user"]))
        sess = np.repeat(np.arange(len(s["user"])), n_plays)
        if len(sess) == 0:
            return
        age = d - w.podcasts.created_day
        ramp = np.where(age < 0, 0.0, np.minimum(1.0, (age + 1) / 30.0))  # new shows are discovered slowly
        weight = np.exp(w.podcasts.log_appeal.astype(np.float64)) * ramp
        cdf = np.cumsum(weight)
        cand = np.searchsorted(cdf, rng.random((len(sess), _ORGANIC_CANDIDATES)) * cdf[-1], side="right")
        cand = np.minimum(cand, self.cfg.n_podcasts - 1)
        user = s["user"][sess]
        aff = np.einsum("kd,kcd->kc", w.users.theta[user], w.podcasts.phi[cand]) / np.sqrt(self.cfg.latent_dim)
        lang_ok = w.user_language[user][:, None] == w.podcasts.language[cand]
        utility = 1.5 * aff + np.where(lang_ok, 0.0, -self.cfg.ground_truth.language_mismatch * 2)
        choice = np.argmax(utility + _gumbel(rng, utility.shape), axis=1)
        podcast = cand[np.arange(len(sess)), choice].astype(np.int64)
        qualifying = rng.random(len(sess)) < 0.72
        ms = np.where(
            qualifying,
            QUALIFYING_MS + rng.lognormal(np.log(14 * 60_000), 1.0, len(sess)),
            rng.integers(1_000, QUALIFYING_MS, len(sess)),
        ).astype(np.int64)
        ts = s["ts"][sess] + rng.integers(0, 50 * 60_000, len(sess))
        surface = rng.choice(len(SURFACES), size=len(sess), p=[0.3, 0.15, 0.1, 0.35, 0.1])
        self._emit_streams(rng, user, podcast, ts, ms, surface)
        organic = self.stats.organic_streams_per_podcast
        assert organic is not None  # set by __init__; None only in statistics merged from JSON
        np.add.at(organic, podcast[qualifying], 1)
        a = aff[np.arange(len(sess)), choice]
        gt = self.cfg.ground_truth
        p_follow = 1 / (1 + np.exp(-(gt.follow_given_stream_intercept - 1.5 + gt.affinity_follow * a)))
        p_like = 1 / (1 + np.exp(-(gt.like_given_stream_intercept - 1.5 + gt.affinity_follow * a)))
        q = qualifying
        self._engagement(rng, user[q], podcast[q], ts[q], p_follow[q], p_like[q], None)

    # -- buffering by logging day ---------------------------------------------------------------------------------
    def _countries(self, users: np.ndarray) -> np.ndarray:
        from .config import COUNTRIES

        return np.array(COUNTRIES, dtype=object)[self.world.users.country[users]]

    def _day_of(self, ts: np.ndarray) -> np.ndarray:
        start = int(
            (datetime.datetime.combine(self.cfg.start_date, datetime.time(), datetime.UTC) - _EPOCH).total_seconds()
            * 1000
        )
        return (ts - start) // MS_PER_DAY

    def _emit(self, table: str, cols: Columns) -> None:
        """Buffer rows under the day they are logged; rows past the last simulated day are never logged."""
        if len(cols["event_ts"]) == 0:
            return
        day = self._day_of(cols["event_ts"])
        beyond = day >= self.cfg.n_days
        if beyond.any():
            self.stats.beyond_horizon[table] += int(beyond.sum())
        for d in np.unique(day[~beyond]):
            self._pending[int(d)][table].append(_take(cols, day == d))

    def _defer_late_rows(self, table: str, cols: Columns, day: int) -> bool:
        """Dirt hook: log ``cols`` in a later partition ``day``; False if that is past the horizon."""
        if day >= self.cfg.n_days:
            return False
        self._late[day][table].append(cols)
        return True

    def _flush(self, d: int) -> dict[str, list[dict]]:
        pending, late = self._pending.pop(d, {}), self._late.pop(d, {})
        tables: dict[str, list[dict]] = {}
        for table in LOG_TABLES:
            cols = _concat(pending.get(table, []))
            if cols:
                cols, counts = self._dirt.plant(table, cols, d)
                for kind, count in counts.items():
                    self.stats.dirt[table][kind] += count
            parts = [cols] if cols else []
            parts += late.get(table, [])
            merged = _concat(parts)
            tables[table] = _records(merged)
        return tables


def _within_budget(pick: np.ndarray, cost: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Mask of the impressions (in serving order) each campaign can still pay for from ``remaining``."""
    if len(pick) == 0:
        return np.zeros(0, bool)
    order = np.argsort(pick, kind="stable")
    sorted_pick, sorted_cost = pick[order], cost[order]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_pick)) + 1]
    csum = np.cumsum(sorted_cost)
    before_group = np.repeat(csum[group_start] - sorted_cost[group_start], np.diff(np.r_[group_start, len(pick)]))
    spent_so_far = np.empty(len(pick))
    spent_so_far[order] = csum - before_group
    return spent_so_far <= remaining[pick]


def _records(cols: Columns) -> list[dict]:
    if not cols:
        return []
    names = list(cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*(cols[k].tolist() for k in names), strict=True)]

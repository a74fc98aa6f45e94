"""Scoring candidates: which campaigns run on day D, who may see them, and the model inputs of each side.

Arrow and numpy cores of the scoring pipeline (no Beam here; ``transforms/beam/scoring.py`` wires them):

- :class:`~podtarget.transforms.arrow.scoring_config.ScoringConfig` (its own module): the head mapping, the audience
  cut and the serving context scoring assumes.
- :func:`plan_campaigns`: the campaigns active on D with their head and audience size, the dead letters of the
  ones that cannot be scored, and the campaign side of the model inputs (one row per campaign).
- :func:`user_side` and :func:`find_candidates`: for a block of users, their side of the model inputs and the
  eligible (user, campaign) pairs, with the pair columns, computed for the whole block against every campaign.

Every model input is built by ``podtarget.transforms.arrow.example_assembly.assemble_examples``, the function that
builds the training examples: the user side from one pseudo-impression per user, the campaign side from one per
campaign. Only the three pair columns are computed here, for all pairs at once, with the same rules (see the no-skew
test)::

    >>> config = ScoringConfig(audience_size=500)
    >>> plan = plan_campaigns(campaigns, creatives, podcast_features, day, config, source_path)  # doctest: +SKIP
    >>> users_side = user_side(user_block, plan, day, config)                                   # doctest: +SKIP
    >>> found = find_candidates(user_block, plan)                                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...schemas.derived import DEAD_LETTER, EXAMPLES, LABELS, PODCAST_FEATURES, USER_FEATURES
from ...schemas.units import MS_PER_HOUR
from .example_assembly import IMPRESSIONS, assemble_examples, list_membership
from .scoring_config import ScoringConfig
from .validation import day_start_ms, dead_letters

PIPELINE = "score"

# Which side of a pair each model input comes from. The serving device and market are the user's own.
USER_COLUMNS = (*USER_FEATURES.names, "device", "country")
PAIR_COLUMNS = ("user_listened_podcast_28d", "user_follows_podcast", "language_match")
CAMPAIGN_COLUMNS = tuple(
    n for n in EXAMPLES.names if n not in {*USER_COLUMNS, *PAIR_COLUMNS, *LABELS, "impression_id", "event_ts"}
)
# Eligibility rules in the order a pair is charged to the first one it fails (so the counts add up).
RULES = ("target_country", "target_age_bucket", "target_account_type", "ads_free_users_only", "follows_show")
# Ad creative format -> the slot it serves in (the logs' pattern: display in the home banner, audio and video in
# episode breaks), and slot -> the surface that slot lives on.
AD_SLOT_BY_FORMAT = {"audio": "midroll", "video": "midroll", "display": "home_banner"}
AD_SURFACE_BY_SLOT = {"home_banner": "home"}
DEFAULT_AD_SURFACE = "now_playing"


@dataclasses.dataclass(frozen=True)
class CampaignSide:
    """What scoring needs of the campaigns on every worker: their model inputs and heads, one row per campaign
    (sorted by ``campaign_id``). ``key`` identifies the content, so a worker encodes it once and caches it."""

    key: str
    table: pa.Table  # CAMPAIGN_COLUMNS
    heads: tuple[str, ...]  # distinct heads, sorted
    head_of_campaign: np.ndarray  # index into heads, per campaign


@dataclasses.dataclass(frozen=True)
class CampaignPlan:
    """The campaigns of day D: the scorable ones (``campaigns``, sorted by id, with ``head``, ``audience_limit``
    and ``cut``), their model inputs (``side``), the raw snapshot rows (for assembling the user side), the dead
    letters of the others, and counts."""

    day: datetime.date
    campaigns: pa.Table
    side: CampaignSide
    snapshot: pa.Table
    creatives: pa.Table
    dead_letters: pa.Table
    counts: dict

    @property
    def n(self) -> int:
        return self.campaigns.num_rows


def _day_number(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days


def _first_creatives(creatives: pa.Table, campaign_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per campaign: its creative with the lowest id (-1 if none), and that creative's format (None if none)."""
    first = np.full(len(campaign_ids), -1, np.int64)
    formats = np.full(len(campaign_ids), None, dtype=object)
    if creatives.num_rows == 0:
        return first, formats
    ids = creatives.column("creative_id").to_numpy()
    owners = creatives.column("campaign_id").to_numpy()
    kinds = np.array(creatives.column("format").to_pylist(), dtype=object)
    order = np.lexsort((ids, owners))  # by campaign, then creative id: each campaign's first row is its lowest id
    owners, ids, kinds = owners[order], ids[order], kinds[order]
    pos = np.searchsorted(owners, campaign_ids).clip(max=len(owners) - 1)
    found = owners[pos] == campaign_ids
    first[found] = ids[pos[found]]
    formats[found] = kinds[pos[found]]
    return first, formats


def plan_campaigns(
    campaigns: pa.Table,
    creatives: pa.Table,
    podcast_features: pa.Table,
    day: datetime.date,
    config: ScoringConfig,
    source_path: str,
    trained: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> CampaignPlan:
    """The campaigns active on ``day`` (``start_date <= day <= end_date``), each scorable or dead-lettered.

    Dead-letter reasons: ``unknown_objective`` (no head maps its channel and objective), ``untrained_head`` (the
    head it maps to was not trained for it and no transfer is declared; checked when ``trained``, the model's
    ``trained_for()``, is given), ``no_creative`` (an ad
    campaign without a creative cannot be served), ``unknown_podcast`` (its show has no features on ``day``).
    """
    d = pa.scalar(day, pa.date32())
    active = campaigns.filter(
        pc.and_(pc.less_equal(campaigns.column("start_date"), d), pc.greater_equal(campaigns.column("end_date"), d))
    ).sort_by("campaign_id")
    ids = active.column("campaign_id").to_numpy()
    channels = active.column("channel").to_pylist()
    objectives = active.column("objective").to_pylist()
    heads = [config.head_for(c, o) for c, o in zip(channels, objectives, strict=True)]
    creative_ids, formats = _first_creatives(creatives, ids)
    known_podcasts = np.sort(podcast_features.column("podcast_id").to_numpy())
    podcasts = active.column("podcast_id").to_numpy()
    pos = np.searchsorted(known_podcasts, podcasts).clip(max=max(len(known_podcasts) - 1, 0))
    has_podcast = known_podcasts[pos] == podcasts if len(known_podcasts) else np.zeros(len(ids), bool)

    reasons = np.full(len(ids), "", dtype=object)
    reasons[[h is None for h in heads]] = "unknown_objective"
    untrained: dict[str, list[int]] = {}
    if trained is not None:
        for i, (c, o, h) in enumerate(zip(channels, objectives, heads, strict=True)):
            why = None if h is None else config.untrained_use(c, o, h, trained)
            if why is not None:
                reasons[i] = "untrained_head"
                untrained.setdefault(why, []).append(i)
    no_creative = (np.array(channels, dtype=object) == "ad") & (creative_ids < 0)
    reasons[(reasons == "") & no_creative] = "no_creative"
    reasons[(reasons == "") & ~has_podcast] = "unknown_podcast"
    details = {
        "unknown_objective": f"no head maps the campaign's channel:objective (--heads={config.heads})",
        "no_creative": "an ad campaign without a creative in the creative snapshot cannot be served",
        "unknown_podcast": f"the campaign's show has no row in features/podcast of {day}",
    }
    groups = [(reason, reasons == reason, detail) for reason, detail in details.items()]
    for why, rows in untrained.items():
        groups.append(("untrained_head", np.isin(np.arange(len(ids)), rows), why))
    dead = [
        dead_letters(
            active.filter(pa.array(rows)),
            np.array([reason] * int(rows.sum())),
            pipeline=PIPELINE,
            table="campaign",
            source_path=source_path,
            detail=detail,
        )
        for reason, rows, detail in groups
        if rows.any()
    ]
    keep = reasons == ""
    scorable = active.filter(pa.array(keep))
    kept_heads = [h for h, k in zip(heads, keep, strict=True) if k and h is not None]  # kept rows have a head
    days = (
        pc.cast(scorable.column("end_date"), pa.int32()).to_numpy(zero_copy_only=False)
        - pc.cast(scorable.column("start_date"), pa.int32()).to_numpy(zero_copy_only=False)
        + 1
    )
    cuts = [
        config.cut_for(ch, budget, cpm, int(n))
        for ch, budget, cpm, n in zip(
            scorable.column("channel").to_pylist(),
            scorable.column("budget_micros").to_pylist(),
            scorable.column("cpm_micros").to_pylist(),
            days,
            strict=True,
        )
    ]
    table = scorable.select(["campaign_id", "channel", "objective", "podcast_id"]).append_column(
        "head", pa.array(kept_heads, pa.string())
    )
    table = table.append_column("creative_id", pa.array(np.where(creative_ids[keep] < 0, None, creative_ids[keep])))
    table = table.append_column("audience_limit", pa.array([c[0] for c in cuts], pa.int64()))
    table = table.append_column("cut", pa.array([c[1] for c in cuts], pa.string()))
    for name in ("target_countries", "target_age_buckets", "target_account_types"):
        table = table.append_column(name, scorable.column(name))
    side_table = _campaign_inputs(table, formats[keep], campaigns, creatives, podcast_features, day, config)
    distinct = tuple(sorted(set(kept_heads)))
    side = CampaignSide(
        key=_content_key(side_table, distinct),
        table=side_table,
        heads=distinct,
        head_of_campaign=np.array([distinct.index(h) for h in kept_heads], np.int64),
    )
    counts = {
        "campaigns": {
            "snapshot": campaigns.num_rows,
            "active": active.num_rows,
            "scorable": scorable.num_rows,
            "dead_letter": {r: int((reasons == r).sum()) for r in (*details, "untrained_head") if (reasons == r).any()},
        }
    }
    return CampaignPlan(
        day=day,
        campaigns=table,
        side=side,
        snapshot=campaigns,
        creatives=creatives,
        dead_letters=pa.concat_tables([DEAD_LETTER.empty_table(), *dead]),
        counts=counts,
    )


def _content_key(table: pa.Table, heads: tuple[str, ...]) -> str:
    digest = hashlib.sha256(repr(heads).encode())
    for batch in table.to_batches():
        for column in batch.columns:
            for buffer in column.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return digest.hexdigest()[:16]


def _pseudo_impressions(
    n: int,
    *,
    day: datetime.date,
    config: ScoringConfig,
    user_id: np.ndarray | int,
    campaigns: pa.Table,
    formats: np.ndarray,
    device: pa.Array | None,
    country: pa.Array | None,
) -> pa.Table:
    """:data:`IMPRESSIONS` rows served at ``config.hour`` of ``day`` with the configured context; ``campaigns``
    gives ``n`` rows of campaign_id, channel, podcast_id and creative_id (null for promotions)."""
    channel = np.array(campaigns.column("channel").to_pylist(), dtype=object)
    is_ad = channel == "ad"
    if config.ad_slot == "auto":
        ad_slot = np.array([AD_SLOT_BY_FORMAT.get(f) for f in formats], dtype=object)
    else:
        ad_slot = np.full(n, config.ad_slot, dtype=object)
    if config.ad_surface == "auto":
        ad_surface = np.array([AD_SURFACE_BY_SLOT.get(s, DEFAULT_AD_SURFACE) for s in ad_slot], dtype=object)
    else:
        ad_surface = np.full(n, config.ad_surface, dtype=object)

    def per_channel(ad_values, promo_value) -> list:
        return np.asarray(np.where(is_ad, ad_values, promo_value)).tolist()

    def ad_only(values) -> list:
        return np.asarray(np.where(is_ad, values, None)).tolist()

    def promo_only(value) -> list:
        return np.asarray(np.where(is_ad, None, value)).tolist()

    ts = day_start_ms(day) + config.hour * MS_PER_HOUR
    columns = {
        "impression_id": pa.array([f"score-{i}" for i in range(n)], pa.string()),
        "source": pa.array(channel.tolist(), pa.string()),
        "event_ts": pa.array(np.full(n, ts, np.int64)),
        "user_id": pa.array(np.broadcast_to(np.asarray(user_id, np.int64), (n,))),
        "podcast_id": campaigns.column("podcast_id"),
        "campaign_id": campaigns.column("campaign_id"),
        "creative_id": campaigns.column("creative_id"),
        "surface": pa.array(per_channel(ad_surface, config.promo_surface), pa.string()),
        "device": device if device is not None else pa.nulls(n, pa.string()),
        "country": country if country is not None else pa.nulls(n, pa.string()),
        "ad_slot": pa.array(ad_only(ad_slot), pa.string()),
        "ad_format": pa.array(ad_only(formats), pa.string()),
        "promo_slot": pa.array(promo_only(config.promo_slot), pa.string()),
        "promo_layout": pa.array(promo_only(config.promo_layout), pa.string()),
        "promo_position": pa.array(promo_only(config.promo_position), pa.int16()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in IMPRESSIONS], schema=IMPRESSIONS)


def _campaign_inputs(
    plan_table: pa.Table,
    formats: np.ndarray,
    campaigns: pa.Table,
    creatives: pa.Table,
    podcast_features: pa.Table,
    day: datetime.date,
    config: ScoringConfig,
) -> pa.Table:
    """The campaign side: one pseudo-impression per campaign (no user), assembled like a training example."""
    impressions = _pseudo_impressions(
        plan_table.num_rows,
        day=day,
        config=config,
        user_id=-1,
        campaigns=plan_table,
        formats=formats,
        device=None,
        country=None,
    )
    rows = assemble_examples(
        impressions, None, USER_FEATURES.empty_table(), podcast_features, campaigns, creatives, day
    )
    return rows.select(list(CAMPAIGN_COLUMNS))


def user_side(users: pa.Table, plan: CampaignPlan, day: datetime.date, config: ScoringConfig) -> pa.Table:
    """The user side of a block (:data:`USER_COLUMNS`, one row per user, in the block's order): one
    pseudo-impression per user against the first campaign, assembled like a training example. The campaign columns
    it also yields are dropped (the campaign side owns them), so which campaign it is does not matter."""
    n = users.num_rows
    first = plan.campaigns.slice(0, 1)
    repeated = first.take(np.zeros(n, np.int64))
    formats = np.array([None] * n, dtype=object)
    primary = users.column("user_primary_device")
    device = primary if config.device == "primary" else pa.array([config.device] * n, pa.string())
    impressions = _pseudo_impressions(
        n,
        day=day,
        config=config,
        user_id=users.column("user_id").to_numpy(),
        campaigns=repeated,
        formats=formats,
        device=pc.cast(device, pa.string()),
        country=pc.cast(users.column("user_country"), pa.string()),
    )
    rows = assemble_examples(
        impressions, None, users, PODCAST_FEATURES.empty_table(), plan.snapshot, plan.creatives, day
    )
    return rows.select(list(USER_COLUMNS))


# -------------------------------------------------------------------------------------------------- candidates

# The pair side: every combination of the three pair columns (language_match may be null: a language is missing).
_LANGUAGE = (False, True, None)
PAIR_KINDS = pa.table(
    {
        "user_listened_podcast_28d": pa.array([bool(k // 6) for k in range(12)], pa.bool_()),
        "user_follows_podcast": pa.array([bool(k // 3 % 2) for k in range(12)], pa.bool_()),
        "language_match": pa.array([_LANGUAGE[k % 3] for k in range(12)], pa.bool_()),
    }
)


@dataclasses.dataclass
class Candidates:
    """The eligible pairs of a user block, sorted by campaign then user (indices into the block's users and the
    plan's campaigns), each with its row of :data:`PAIR_KINDS`; and the counts of pairs considered and excluded."""

    pair_user: np.ndarray
    pair_campaign: np.ndarray
    pair_kind: np.ndarray
    considered: int
    ineligible: dict[str, int]
    users_with_pairs: int

    @property
    def eligible(self) -> int:
        return len(self.pair_user)


def _targeted(values: pa.ChunkedArray | pa.Array, targets: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """``[users, campaigns]``: the user's value is in the campaign's target list (an empty list targets all)."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    targets = targets.combine_chunks() if isinstance(targets, pa.ChunkedArray) else targets
    vocabulary = pc.unique(pa.concat_arrays([values.drop_null(), pc.list_flatten(targets).drop_null()]))
    user_code = pc.index_in(values, value_set=vocabulary).fill_null(len(vocabulary)).to_numpy(zero_copy_only=False)
    flat = pc.index_in(pc.list_flatten(targets), value_set=vocabulary).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(targets).to_numpy()
    allowed = np.zeros((len(targets), len(vocabulary) + 1), bool)  # the last code: a null user value
    allowed[parents, flat.astype(np.int64)] = True
    lengths = pc.list_value_length(targets).fill_null(0).to_numpy(zero_copy_only=False)
    allowed[lengths == 0] = True
    return allowed[:, user_code.astype(np.int64)].T


def _language_codes(users: pa.Array, podcasts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of both language columns over one vocabulary; -1 for null."""
    vocabulary = pc.unique(pa.concat_arrays([users.drop_null(), podcasts.drop_null()]))

    def codes(values: pa.Array) -> np.ndarray:
        return pc.index_in(values, value_set=vocabulary).fill_null(-1).to_numpy(zero_copy_only=False)

    return codes(users).astype(np.int64), codes(podcasts).astype(np.int64)


def pair_kinds(users: pa.Table, plan: CampaignPlan) -> np.ndarray:
    """``[users, campaigns]`` row of :data:`PAIR_KINDS` of every pair: the pair columns as ``assemble_examples``
    computes them (the show among the user's recent or followed shows; the user's language equal to the show's,
    null when either is null, like ``pyarrow.compute.equal``), for all pairs at once."""
    podcasts = plan.campaigns.column("podcast_id").to_numpy()
    listened = list_membership(users.column("user_recent_podcasts_28d"), podcasts)
    follows = list_membership(users.column("user_followed_podcasts_28d"), podcasts)
    user_language = pc.cast(users.column("user_language"), pa.string()).combine_chunks()
    podcast_language = pc.cast(plan.side.table.column("podcast_language"), pa.string()).combine_chunks()
    user_code, podcast_code = _language_codes(user_language, podcast_language)
    kind = (user_code[:, None] == podcast_code[None, :]).view(np.int8)  # int8 throughout: a block has millions
    kind[user_code < 0, :] = 2
    kind[:, podcast_code < 0] = 2
    kind += listened.view(np.int8) * np.int8(6)
    kind += follows.view(np.int8) * np.int8(3)
    return kind


def find_candidates(users: pa.Table, plan: CampaignPlan) -> Candidates:
    """Eligible (user, campaign) pairs of a block against every campaign of the plan, vectorised.

    A pair is eligible when the user's country, age bucket and account type are in the campaign's target lists
    (empty = all), an ad campaign's user is on the free tier, and the user does not already follow the campaign's
    show: ``user_followed_podcasts_28d`` holds the follows of the 28 days before D, the follow knowledge the
    feature snapshot of D has. Ineligible pairs are counted under the first rule of :data:`RULES` they fail.
    """
    campaigns = plan.campaigns
    n_users, n_campaigns = users.num_rows, campaigns.num_rows
    podcasts = campaigns.column("podcast_id").to_numpy()
    is_ad = np.array(campaigns.column("channel").to_pylist(), dtype=object) == "ad"
    free = pc.fill_null(pc.equal(users.column("user_account_type"), "free"), False).to_numpy(zero_copy_only=False)
    rules = (
        lambda: _targeted(users.column("user_country"), campaigns.column("target_countries")),
        lambda: _targeted(users.column("user_age_bucket"), campaigns.column("target_age_buckets")),
        lambda: _targeted(users.column("user_account_type"), campaigns.column("target_account_types")),
        lambda: ~(is_ad[None, :] & ~free[:, None]),
        lambda: ~list_membership(users.column("user_followed_podcasts_28d"), podcasts),
    )
    eligible = np.ones((n_users, n_campaigns), bool)
    ineligible = {}
    for name, rule in zip(RULES, rules, strict=True):
        ok = rule()
        ineligible[name] = int(np.count_nonzero(eligible & ~ok))
        eligible &= ok
    pair_campaign, pair_user = np.nonzero(eligible.T)  # sorted by campaign, then user
    return Candidates(
        pair_user=pair_user,
        pair_campaign=pair_campaign,
        pair_kind=pair_kinds(users, plan)[pair_user, pair_campaign],
        considered=n_users * n_campaigns,
        ineligible=ineligible,
        users_with_pairs=int(np.count_nonzero(eligible.any(axis=1))),
    )

"""Arrow contracts of the tables podtarget derives from the raw logs (Parquet, snappy).

These are the contracts between pipelines and with the model: ``EXAMPLES`` is what training reads, and what the
scoring pipeline reproduces for candidate pairs. Every field carries its meaning in its metadata (``doc``)::

    >>> EXAMPLES.field("label_stream").type
    DataType(int8)
    >>> doc(EXAMPLES, "label_stream")[:40]
    '1 if a qualifying stream of the show was'

Label columns are nullable on purpose: null means *unobserved* (the attribution window is not yet covered by the
logs), never a silent negative.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

LABELS = ("label_stream", "label_click", "label_follow", "label_like")
POPULARITY_TIERS = 8


def _f(name: str, typ: pa.DataType, text: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": text})


def doc(schema: pa.Schema, name: str) -> str:
    return schema.field(name).metadata[b"doc"].decode()


def fingerprint(schema: pa.Schema) -> str:
    """A short, stable hash of names, types and nullability (not docs): changes when the contract changes."""
    text = ";".join(f"{f.name}:{f.type}:{f.nullable}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_STR, _I8, _I16, _I32, _I64, _F32, _BOOL = (
    pa.string(),
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.float32(),
    pa.bool_(),
)
_STRS, _I64S = pa.list_(pa.string()), pa.list_(pa.int64())

_USER_FEATURE_FIELDS = [
    _f("user_country", _STR, "User's home market (snapshot of day D)."),
    _f("user_age_bucket", _STR, "Age bucket (snapshot of D)."),
    _f("user_account_type", _STR, "free or premium (snapshot of D)."),
    _f("user_primary_device", _STR, "Most used device family (snapshot of D)."),
    _f("user_language", _STR, "Preferred content language (snapshot of D)."),
    _f("user_tenure_days", _I32, "Days from signup to D."),
    _f("user_streams_28d", _I32, "Qualifying streams (>= 60 s) in the 28 days before D."),
    _f("user_listen_hours_28d", _F32, "Hours listened in qualifying streams in the 28 days before D."),
    _f("user_distinct_podcasts_28d", _I32, "Distinct shows streamed (qualifying) in the 28 days before D."),
    _f("user_follows_28d", _I32, "Follows in the 28 days before D."),
    _f("user_top_genres_28d", _STRS, "Up to 5 genres the user streamed most in the 28 days before D, most first."),
    _f("user_top_topics_28d", _STRS, "Up to 10 topics the user streamed most in the 28 days before D, most first."),
    _f("user_recent_podcasts_28d", _I64S, "Up to 20 shows the user streamed most in the 28 days before D."),
    _f("user_followed_podcasts_28d", _I64S, "Shows the user followed in the 28 days before D (up to 50)."),
    _f("user_ad_impressions_28d", _I32, "Ad impressions served to the user in the 28 days before D."),
    _f("user_ad_clicks_28d", _I32, "Ad clicks in the 28 days before D."),
    _f("user_promo_impressions_28d", _I32, "Promotion impressions in the 28 days before D."),
    _f("user_promo_clicks_28d", _I32, "Promotion clicks in the 28 days before D."),
    _f(
        "user_ad_conversions_28d",
        _I32,
        "Ad impressions in the 28 days before D that the user followed with a qualifying stream of the advertised "
        "show within 48 h (and before D): the user's past ad stream positives.",
    ),
    _f(
        "user_promo_conversions_28d",
        _I32,
        "Promotion impressions in the 28 days before D followed by a qualifying stream of the promoted show within "
        "72 h (and before D).",
    ),
]

_PODCAST_FEATURE_FIELDS = [
    _f("podcast_listen_hours_30d", _F32, "Hours of qualifying streams (>= 60 s) in the 30 days before D."),
    _f(
        "podcast_popularity_tier",
        _I8,
        "0-7 by 30-day listening hours among shows published by D: 0 = the top 1%, 1 = next 2%, 2 = next 4%, "
        "3 = next 8%, 4 = next 15%, 5 = next 20%, 6 = every other show with any listening, 7 = none.",
    ),
    _f("podcast_age_days", _I32, "Days from the show's publication to D."),
    _f("podcast_genres", _STRS, "Genres of the show."),
    _f("podcast_topics", _STRS, "Topics of the show."),
    _f("podcast_language", _STR, "Language of the show."),
    _f("podcast_publisher", _STR, "Publisher."),
    _f("podcast_is_original", _BOOL, "Platform Original."),
    _f("podcast_explicit", _BOOL, "Explicit content."),
    _f("podcast_episode_count", _I32, "Episodes published by D."),
]

USER_FEATURES = pa.schema(
    [_f("user_id", _I64, "User id.", nullable=False), *_USER_FEATURE_FIELDS],
    metadata={"doc": "features/user/dt=D: one row per user signed up by D; history uses only events before D."},
)

PODCAST_FEATURES = pa.schema(
    [_f("podcast_id", _I64, "Show id.", nullable=False), *_PODCAST_FEATURE_FIELDS],
    metadata={"doc": "features/podcast/dt=D: one row per show published by D; history uses only events before D."},
)

EXAMPLES = pa.schema(
    [
        _f("impression_id", _STR, "Impression id (unique within the partition).", nullable=False),
        _f("source", _STR, "ad or promo: which channel served the impression.", nullable=False),
        _f("event_ts", pa.timestamp("ms", tz="UTC"), "When the impression was served.", nullable=False),
        _f("user_id", _I64, "User.", nullable=False),
        _f("podcast_id", _I64, "Advertised or promoted show.", nullable=False),
        _f("campaign_id", _I64, "Campaign.", nullable=False),
        _f("creative_id", _I64, "Ad creative; null for promotions."),
        _f(
            "label_stream",
            _I8,
            "1 if a qualifying stream of the show was credited to this impression (last touch "
            "across both channels, within the stream window); 0 if not; null if unobserved.",
        ),
        _f("label_click", _I8, "1 if the impression was clicked within the click window; null if unobserved."),
        _f(
            "label_follow",
            _I8,
            "1 if a follow of the show was credited to this impression (last touch); null if unobserved.",
        ),
        _f(
            "label_like",
            _I8,
            "1 if a like of the show was credited to this impression (last touch); null if unobserved.",
        ),
        _f("hour", _I8, "Hour of day (UTC) the impression was served."),
        _f("weekday", _I8, "Day of week, 0 = Monday."),
        _f("surface", _STR, "App surface."),
        _f("device", _STR, "Device family."),
        _f("country", _STR, "Market at serving time."),
        _f("ad_slot", _STR, "Ad break or placement; null for promotions."),
        _f("ad_format", _STR, "audio, video or display; null for promotions."),
        _f("promo_slot", _STR, "Promotion placement; null for ads."),
        _f("promo_layout", _STR, "Promotion layout; null for ads."),
        _f("promo_position", _I16, "0-based position in the placement; null for ads."),
        _f("campaign_objective", _STR, "stream, click or follow."),
        _f("campaign_cpm_micros", _I64, "Ad price per thousand impressions; null for promotions."),
        _f("campaign_age_days", _I32, "Days since the campaign started."),
        _f("creative_duration_s", _I32, "Creative length in seconds; null for promotions."),
        _f("creative_has_cta", _BOOL, "Creative has a call to action; null for promotions."),
        *_USER_FEATURE_FIELDS,
        *_PODCAST_FEATURE_FIELDS,
        _f("user_listened_podcast_28d", _BOOL, "The show is among the user's recent shows (before D)."),
        _f("user_follows_podcast", _BOOL, "The user followed the show in the 28 days before D."),
        _f("language_match", _BOOL, "The show's language is the user's language."),
    ],
    metadata={"doc": "examples/dt=D: one row per deduplicated, valid impression (ad or promotion) served on D."},
)

DEAD_LETTER = pa.schema(
    [
        _f("pipeline", _STR, "Pipeline that rejected the record.", nullable=False),
        _f("table", _STR, "Raw table the record came from.", nullable=False),
        _f(
            "reason",
            _STR,
            "Why it was rejected (e.g. null_user_id, unknown_user, bad_timestamp, unreadable_file).",
            nullable=False,
        ),
        _f("detail", _STR, "Human-readable detail."),
        _f("source_path", _STR, "File the record was read from."),
        _f("record_json", _STR, "The record as JSON (null for a file-level rejection)."),
    ],
    metadata={"doc": "deadletter/<pipeline>/dt=D: every record rejected while building day D, with its reason."},
)


# -- scoring outputs (pipelines/score.py) ----------------------------------------------------------------------------
AUDIENCE_CUTS = ("top_k", "budget")

AUDIENCES = pa.schema(
    [
        _f("campaign_id", _I64, "Campaign the audience is for.", nullable=False),
        _f("channel", _STR, "ad or promo.", nullable=False),
        _f("objective", _STR, "The campaign's objective: stream, click or follow.", nullable=False),
        _f("head", _STR, "Model head that scored the campaign, mapped from (channel, objective).", nullable=False),
        _f("user_id", _I64, "User in the audience.", nullable=False),
        _f("rank", _I32, "1 = the best user for the campaign (score descending, then user_id ascending).", False),
        _f("score", _F32, "The head's predicted probability for this user and campaign on day D.", nullable=False),
        _f("audience_size", _I32, "Users in the campaign's audience (rows of this campaign).", nullable=False),
        _f("eligible_users", _I64, "Users eligible for the campaign on D (the audience is cut from them).", False),
        _f(
            "cut",
            _STR,
            "How audience_size was chosen: top_k (a fixed size) or budget (affordable impressions per day over "
            "impressions per user); capped by eligible_users.",
            nullable=False,
        ),
    ],
    metadata={"doc": "audiences/dt=D: per campaign active on D, its best users ranked by the model's score."},
)

USER_RANKINGS = pa.schema(
    [
        _f("user_id", _I64, "User.", nullable=False),
        _f("rank", _I32, "1 = the best campaign for the user (score descending, then campaign_id ascending).", False),
        _f("campaign_id", _I64, "Campaign.", nullable=False),
        _f("channel", _STR, "ad or promo.", nullable=False),
        _f("objective", _STR, "The campaign's objective: stream, click or follow.", nullable=False),
        _f("head", _STR, "Model head that scored the pair.", nullable=False),
        _f("score", _F32, "The head's predicted probability for this user and campaign on day D.", nullable=False),
    ],
    metadata={"doc": "user_rankings/dt=D: per user, the top-N campaigns the user is eligible for on D."},
)


def stored_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as Parquet gives it back: list items are named ``element`` (pyarrow writes Parquet's compliant
    nested types), so this is the schema a model trained on the Parquet table recorded, e.g. ``EXAMPLES``."""
    import io

    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(schema.empty_table(), sink)
    sink.seek(0)
    return pq.read_schema(sink)


def derived_avro_schema(name: str):
    """The Avro form of a derived output (``schemas/avro/<name>.avsc``: ``audience``, ``user_ranking``), parsed
    by the registry with the same checks as the raw schemas (a ``schemas.TableSchema``)."""
    from .registry import SchemaError, parse_schema, read_avsc

    if name not in ("audience", "user_ranking"):
        raise SchemaError(f"unknown derived Avro schema {name!r}; expected audience or user_ranking")
    return parse_schema(read_avsc(name), source=f"schemas/avro/{name}.avsc")

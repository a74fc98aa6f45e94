"""Hand-made inputs for the scoring tests: model artifacts whose scores are known, and a tiny day of features.

``constant_model`` saves a real artifact (``podtarget.model.artifacts.save_model``) of the default spec whose weights
are all zero except each head's output bias, so every pair scores ``sigmoid(bias of its head)``. ``streams_model``
scores by a user's ``user_streams_28d`` (more streams, higher score, whatever the campaign). ``ScoringDay`` writes the
feature partitions and raw campaign/creative snapshots of one day, as the earlier pipelines would.
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from podtarget.model.artifacts import save_model
from podtarget.model.data import Encoder, FeatureStats
from podtarget.model.network import InputLayout, MultiTaskNetwork
from podtarget.model.spec import load_spec
from podtarget.schemas import layout, load_schema
from podtarget.schemas.derived import EXAMPLES, PODCAST_FEATURES, USER_FEATURES, stored_schema
from podtarget.transforms.runtime.storage import write_avro_part

DAY = datetime.date(2026, 3, 10)
HEAD_LOGITS = {"PromotionStream": 0.0, "AdStream": 1.0, "Click": -1.0, "Like": 2.0, "Follow": -2.0}


def sigmoid32(x: float) -> float:
    return float(np.float32(1 / (1 + math.exp(-x))))


def _network(architecture: str | None = None):
    spec = load_spec()
    if architecture:
        spec = spec.with_changes(architecture=architecture)
    features = spec.active_features
    stats = FeatureStats(
        numeric={f.name: {"mean": 0.0, "std": 1.0, "count": 1} for f in features if f.kind == "numeric"},
        known={f.name: np.ones(f.buckets, bool) for f in features if f.kind != "numeric"},
        rows=1,
    )
    encoder = Encoder(spec, stats)
    net_layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    return spec, encoder, MultiTaskNetwork(spec.model, net_layout, spec.task_names)


def constant_model(path: pathlib.Path, logits: dict[str, float] = HEAD_LOGITS, calibration_fit=None) -> str:
    """Every pair scores ``sigmoid(logits[head])``: all weights zero but each head's output bias (then calibrated
    by ``calibration_fit``, as a trained run's ``calibration.json``, when given)."""
    spec, encoder, network = _network()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        for head, logit in logits.items():
            network.towers[head][-1].bias.fill_(logit)
    save_model(str(path), network, spec, encoder, stored_schema(EXAMPLES), calibration_fit=calibration_fit)
    return str(path)


def streams_model(path: pathlib.Path) -> str:
    """Score = sigmoid(log1p(user_streams_28d) + 10 + head logit): it ranks users by their streams."""
    spec, encoder, network = _network()
    width = (len(encoder.single) + len(encoder.bags)) * spec.model.embedding_dim
    column = width + encoder.numeric_columns().index("user_streams_28d")
    bottom = network.encoder
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        bottom.body[0].weight[0, column] = 1.0
        bottom.body[0].bias[0] = 10.0  # keeps the unit positive, so the ReLUs pass it through
        bottom.body[2].weight[0, 0] = 1.0
        bottom.norm.weight.fill_(1.0)
        bottom.norm.running_var.fill_(1.0)
        for head, logit in HEAD_LOGITS.items():
            network.towers[head][0][0].weight[0, 0] = 1.0
            network.towers[head][-1].weight[0, 0] = 1.0
            network.towers[head][-1].bias.fill_(logit)
    save_model(str(path), network, spec, encoder, stored_schema(EXAMPLES))
    return str(path)


def user(user_id: int, **values) -> dict:
    """A ``USER_FEATURES`` row: a free 25-34 user in SE speaking sv, with no history unless given."""
    row = {
        "user_id": user_id,
        "user_country": "SE",
        "user_age_bucket": "25-34",
        "user_account_type": "free",
        "user_primary_device": "ios",
        "user_language": "sv",
        "user_tenure_days": 100,
        "user_streams_28d": 0,
        "user_listen_hours_28d": 0.0,
        "user_distinct_podcasts_28d": 0,
        "user_follows_28d": 0,
        "user_top_genres_28d": [],
        "user_top_topics_28d": [],
        "user_recent_podcasts_28d": [],
        "user_followed_podcasts_28d": [],
        "user_ad_impressions_28d": 0,
        "user_ad_clicks_28d": 0,
        "user_promo_impressions_28d": 0,
        "user_promo_clicks_28d": 0,
    }
    row.update(values)
    return row


def podcast(podcast_id: int, language: str = "sv") -> dict:
    return {
        "podcast_id": podcast_id,
        "podcast_listen_hours_30d": 10.0,
        "podcast_popularity_tier": 3,
        "podcast_age_days": 200,
        "podcast_genres": ["news"],
        "podcast_topics": ["topic-001"],
        "podcast_language": language,
        "podcast_publisher": "publisher-001",
        "podcast_is_original": False,
        "podcast_explicit": False,
        "podcast_episode_count": 20,
    }


def campaign(campaign_id: int, channel: str, objective: str, podcast_id: int, **values) -> dict:
    """An untargeted campaign running D-2..D+7; ads get a budget and CPM."""
    row = {
        "campaign_id": campaign_id,
        "channel": channel,
        "podcast_id": podcast_id,
        "objective": objective,
        "start_date": DAY - datetime.timedelta(days=2),
        "end_date": DAY + datetime.timedelta(days=7),
        "budget_micros": 300_000_000 if channel == "ad" else None,
        "cpm_micros": 20_000_000 if channel == "ad" else None,
        "target_countries": [],
        "target_age_buckets": [],
        "target_account_types": ["free"] if channel == "ad" else [],
        "advertiser": "adv" if channel == "ad" else None,
    }
    row.update(values)
    return row


def creative(creative_id: int, campaign_id: int, fmt: str = "audio") -> dict:
    return {
        "creative_id": creative_id,
        "campaign_id": campaign_id,
        "format": fmt,
        "duration_s": 30,
        "language": "sv",
        "has_call_to_action": True,
    }


def write_day(
    root: pathlib.Path,
    users: list[list[dict]],
    podcasts: list[dict],
    campaigns: list[dict],
    creatives: list[dict],
    day: datetime.date = DAY,
) -> str:
    """Write the inputs of one scoring day under ``root``: user feature parts (one list of rows each), podcast
    features (both with ``_SUCCESS.json``), and the raw campaign and creative snapshots."""
    data_root = str(root)
    user_dir = pathlib.Path(layout.feature_partition(data_root, "user", day))
    user_dir.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(users):
        pq.write_table(pa.Table.from_pylist(rows, schema=USER_FEATURES), user_dir / f"part-{i:05d}.parquet")
    (user_dir / "_SUCCESS.json").write_text(json.dumps({"date": day.isoformat()}))
    podcast_dir = pathlib.Path(layout.feature_partition(data_root, "podcast", day))
    podcast_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(podcasts, schema=PODCAST_FEATURES), podcast_dir / "part-00000.parquet")
    (podcast_dir / "_SUCCESS.json").write_text(json.dumps({"date": day.isoformat()}))
    for table, rows in (("campaign", campaigns), ("creative", creatives)):
        partition = pathlib.Path(layout.raw_partition(data_root, table, day))
        partition.mkdir(parents=True, exist_ok=True)
        write_avro_part(layout.part_file(str(partition), 0), load_schema(table), rows)
    return data_root

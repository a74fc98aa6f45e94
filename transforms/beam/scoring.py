"""Beam pieces of the scoring pipeline: user blocks, candidate pairs, RunInference on pair blocks, rankings, parts.

The users x campaigns product is never one element per pair. An element is a block of users (up to a few
thousand, one slice of a ``features/user`` part) against every campaign of the day:

    UserFeatureFiles -> ReadUserBlocksFn -> BuildCandidatesFn -> RunInference(PodtargetModelHandler) -> RankBlockFn
                                                                                  per-campaign partial top-K  ─┘ │
                                                                       user_rankings part of the block (written) ┘

The model handler encodes each side of a block once (the campaigns once per worker) and scores the eligible pairs
with ``podtarget.model.product.ProductScorer``. A campaign's audience is a global top-K: each block emits its partial
list per campaign, and :class:`MergeTopUsersFn` merges them per campaign (memory bounded by K).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from ...model.artifacts import ArtifactError, TrainedModel, load_model
from ...model.product import PreparedSide, ProductLayout, ProductScorer
from ...schemas import layout
from ...schemas.derived import AUDIENCES, EXAMPLES, USER_FEATURES, USER_RANKINGS, derived_avro_schema, stored_schema
from ..arrow.candidates import (
    PAIR_KINDS,
    PIPELINE,
    CampaignPlan,
    CampaignSide,
    Candidates,
    find_candidates,
    plan_campaigns,
    user_side,
)
from ..arrow.ranking import TopUsers, block_top_users, merge_top_users, top_campaigns_per_user
from ..arrow.scoring_config import ScoringConfig, parse_heads
from ..arrow.validation import dead_letters
from ..runtime.columnar_avro import write_avro_table
from ..runtime.storage import atomic_write, deterministic_sync_marker, parquet_bytes, read_parquet
from .raw_input import COUNTS_TAG, DEAD_LETTER_TAG

FORMATS = ("parquet", "avro")
NAMESPACE = "podtarget_score"


# ------------------------------------------------------------------------------------------------- the model


def model_fingerprint(model: TrainedModel) -> str:
    """A short hash of the artifact's manifest (which holds the sha256 of every model file): it names exactly the
    weights, statistics and spec that scored a partition."""
    return hashlib.sha256(json.dumps(model.manifest, sort_keys=True).encode()).hexdigest()[:16]


def load_scoring_model(path: str) -> TrainedModel:
    """The model at ``path``, checked against the example contract it must score (``EXAMPLES`` as stored).

    Raises ``podtarget.model.artifacts.ArtifactError`` naming what is wrong: a missing folder or file, a corrupt file,
    or a model trained on other columns or types.
    """
    return load_model(path, table_schema=stored_schema(EXAMPLES))


def check_heads(model: TrainedModel, config: ScoringConfig) -> None:
    """Every head the mapping names must be a head of the model."""
    named = {*config.head_map.values(), *(parse_heads(config.transfers).values() if config.transfers else ())}
    missing = sorted(h for h in named if h not in model.tasks)
    if missing:
        raise ArtifactError(
            f"model {model.path!r} has no head {', '.join(map(repr, missing))} that --heads or --transfers maps to "
            f"(--heads={config.heads}); its heads are {', '.join(model.tasks)}"
        )


# --------------------------------------------------------------------------------------------------- elements


class PlanCampaignsFn(beam.DoFn):
    """The campaign snapshot of ``day`` (side inputs: its creatives and podcast features) -> the
    :class:`CampaignPlan`; counts dead-lettered campaigns by reason."""

    def __init__(
        self, day: datetime.date, config: ScoringConfig, source_path: str, trained: dict | None = None
    ) -> None:
        self.day, self.config, self.source_path, self.trained = day, config, source_path, trained

    def process(self, campaigns: pa.Table, creatives: pa.Table, podcasts: pa.Table) -> Iterator:
        plan = plan_campaigns(campaigns, creatives, podcasts, self.day, self.config, self.source_path, self.trained)
        for reason, n in plan.counts["campaigns"]["dead_letter"].items():
            Metrics.counter(NAMESPACE, f"campaigns_{reason}").inc(n)
        yield plan


@dataclasses.dataclass
class UserBlock:
    """Users ``index * size ...`` of the user feature part ``part`` (sorted by user id)."""

    part: int
    index: int
    users: pa.Table

    @property
    def name(self) -> str:
        return f"{self.part:05d}-{self.index:04d}"


@dataclasses.dataclass
class PairBlock:
    """One element of RunInference: a user block, its eligible pairs against every campaign, and both sides'
    model inputs (the campaign side is the same object for every block)."""

    name: str
    user_ids: np.ndarray
    users: pa.Table  # the user side (transforms.candidates.USER_COLUMNS), one row per user
    campaigns: CampaignSide
    candidates: Candidates

    @property
    def nbytes(self) -> int:
        c = self.candidates
        return self.users.nbytes + c.pair_user.nbytes + c.pair_campaign.nbytes + c.pair_kind.nbytes


class ReadUserBlocksFn(beam.DoFn):
    """``(part number, path)`` of a user feature part -> its users in blocks (:meth:`ScoringConfig.block_users`)."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config

    def process(self, element: tuple[int, str], plan: CampaignPlan) -> Iterator:
        part, path = element
        users = read_parquet(path, USER_FEATURES).sort_by("user_id")
        size = self.config.block_users(plan.n)
        for index, start in enumerate(range(0, users.num_rows, size)):
            yield UserBlock(part, index, users.slice(start, size))
        yield pvalue.TaggedOutput(COUNTS_TAG, {"users": {"read": users.num_rows}, "user_parts": 1})


class BuildCandidatesFn(beam.DoFn):
    """A user block -> its eligible pairs and user-side inputs (a :class:`PairBlock`), plus pair counts."""

    def __init__(self, day: datetime.date, config: ScoringConfig) -> None:
        self.day, self.config = day, config
        self.considered = Metrics.counter(NAMESPACE, "pairs_considered")
        self.eligible = Metrics.counter(NAMESPACE, "pairs_eligible")

    def process(self, block: UserBlock, plan: CampaignPlan) -> Iterator:
        counts: dict[str, dict[str, Any]] = {"users": {"blocks": 1}}
        if plan.n and block.users.num_rows:
            found = find_candidates(block.users, plan)
            self.considered.inc(found.considered)
            self.eligible.inc(found.eligible)
            counts["pairs"] = {
                "considered": found.considered,
                "eligible": found.eligible,
                "ineligible": found.ineligible,
            }
            if found.eligible:
                yield PairBlock(
                    name=block.name,
                    user_ids=block.users.column("user_id").to_numpy(),
                    users=user_side(block.users, plan, self.day, self.config),
                    campaigns=plan.side,
                    candidates=found,
                )
        yield pvalue.TaggedOutput(COUNTS_TAG, counts)


# ---------------------------------------------------------------------------------------------- RunInference


class ScoringModel:
    """A loaded model ready for pair blocks: the campaign side and the pair kinds are encoded once per worker."""

    def __init__(self, model: TrainedModel, pairs_per_forward: int, factorised: bool) -> None:
        self.model = model
        self.scorer = ProductScorer(model, chunk_rows=pairs_per_forward, factorised=factorised)
        self._lock = threading.Lock()
        self._layout: ProductLayout | None = None
        self._campaigns: tuple[str, PreparedSide] | None = None
        self._pairs: PreparedSide | None = None

    def _sides(self, block: PairBlock) -> tuple[ProductLayout, PreparedSide, PreparedSide]:
        with self._lock:  # a worker may run several DoFn threads on one shared model
            if self._layout is None:
                schemas = {
                    "user": block.users.schema,
                    "campaign": block.campaigns.table.schema,
                    "pair": PAIR_KINDS.schema,
                }
                self._layout = self.scorer.layout(schemas)
                self._pairs = self.scorer.prepare(self._layout, "pair", PAIR_KINDS)
            if self._campaigns is None or self._campaigns[0] != block.campaigns.key:
                prepared = self.scorer.prepare(self._layout, "campaign", block.campaigns.table)
                self._campaigns = (block.campaigns.key, prepared)
            assert self._pairs is not None  # prepared with the layout
            return self._layout, self._campaigns[1], self._pairs

    def score(self, block: PairBlock) -> np.ndarray:
        """The calibrated probability of each eligible pair under the head its campaign maps to (float32, pair
        order): each head's scores go through its calibration for the campaign's channel, so that the scores of
        different heads in one user's ranking are comparable."""
        product, campaigns, pairs = self._sides(block)
        users = self.scorer.prepare(product, "user", block.users)
        found = block.candidates
        index = {"user": found.pair_user, "campaign": found.pair_campaign, "pair": found.pair_kind}
        head_of_pair = block.campaigns.head_of_campaign[found.pair_campaign]
        sides = {"user": users, "campaign": campaigns, "pair": pairs}
        scores = self.scorer.score(product, sides, index, head_of_pair, block.campaigns.heads)
        if not self.model.calibration or not len(scores):
            return scores
        # One group per (head, channel) of the block's campaigns; pairs take their campaign's group.
        channels = block.campaigns.table.column("source").to_pylist()
        groups = sorted({(int(h), c) for h, c in zip(block.campaigns.head_of_campaign, channels, strict=True)})
        group_of_campaign = np.array(
            [groups.index((int(h), c)) for h, c in zip(block.campaigns.head_of_campaign, channels, strict=True)]
        )
        group_of_pair = group_of_campaign[found.pair_campaign]
        for g, (h, channel) in enumerate(groups):
            rows = group_of_pair == g
            scores[rows] = self.model.calibrate(block.campaigns.heads[h], channel, scores[rows])
        return scores


class PodtargetModelHandler(ModelHandler[PairBlock, PredictionResult, ScoringModel]):
    """RunInference's handler for pair blocks: loads ``models/<run>`` (checked against the example contract and,
    given ``fingerprint``, against the artifact the driver validated), and scores each block's eligible pairs.

    An element is a whole block (thousands of users x every campaign: often a million pairs), so batching is one
    element at a time (``min_batch_size = max_batch_size = 1``); the pairs are cut into forward passes of
    ``pairs_per_forward`` inside. ``torch_threads`` (0 = torch's default, one per core) sets intra-op threads.
    """

    def __init__(
        self,
        model_path: str,
        *,
        fingerprint: str | None = None,
        pairs_per_forward: int = 8192,
        torch_threads: int = 0,
        factorised: bool = True,
    ) -> None:
        super().__init__(min_batch_size=1, max_batch_size=1)
        self.model_path, self.fingerprint = model_path, fingerprint
        self.pairs_per_forward, self.torch_threads, self.factorised = pairs_per_forward, torch_threads, factorised

    def load_model(self) -> ScoringModel:
        import torch

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        model = load_scoring_model(self.model_path)
        if self.fingerprint is not None and model_fingerprint(model) != self.fingerprint:
            raise ArtifactError(
                f"model {self.model_path!r} changed after the job started (fingerprint {model_fingerprint(model)}, "
                f"validated {self.fingerprint}); rerun the job"
            )
        return ScoringModel(model, self.pairs_per_forward, self.factorised)

    def run_inference(
        self, batch: Sequence[PairBlock], model: ScoringModel, inference_args: dict | None = None
    ) -> list[PredictionResult]:
        return [PredictionResult(block, model.score(block), self.model_path) for block in batch]

    def get_num_bytes(self, batch: Sequence[PairBlock]) -> int:
        return sum(block.nbytes for block in batch)  # the default pickles the batch: seconds per block

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


# ------------------------------------------------------------------------------------------------ outputs


def write_parts(folders: Mapping[str, str], stem: str, table: pa.Table, avro_name: str, key) -> None:
    """``<stem>.parquet`` (snappy) in ``folders["parquet"]`` and/or ``<stem>.avro`` in ``folders["avro"]`` (the
    registry's header and codec, records encoded column by column: ``transforms/runtime/columnar_avro.py``;
    deterministic
    sync marker). One folder per format, so a reader of either gets only its own files."""
    if "parquet" in folders:
        atomic_write(layout.join(folders["parquet"], f"{stem}.parquet"), parquet_bytes(table))
    if "avro" in folders:
        marker = deterministic_sync_marker(avro_name, *key, stem)
        path = layout.join(folders["avro"], f"{stem}.avro")
        write_avro_table(path, derived_avro_schema(avro_name), table, sync_marker=marker)


def user_ranking_table(block: PairBlock, scores: np.ndarray, plan: CampaignPlan, top_n: int) -> pa.Table:
    """The :data:`USER_RANKINGS` rows of a block: each user's best ``top_n`` campaigns."""
    found = block.candidates
    users, ranks, pairs = top_campaigns_per_user(
        scores, found.pair_user, found.pair_campaign, len(block.user_ids), plan.n, top_n
    )
    campaign = found.pair_campaign[pairs]
    columns = {
        "user_id": pa.array(block.user_ids[users]),
        "rank": pa.array(ranks, pa.int32()),
        "campaign_id": plan.campaigns.column("campaign_id").take(campaign),
        "channel": plan.campaigns.column("channel").take(campaign),
        "objective": plan.campaigns.column("objective").take(campaign),
        "head": plan.campaigns.column("head").take(campaign),
        "score": pa.array(scores[pairs], pa.float32()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in USER_RANKINGS], schema=USER_RANKINGS)


class RankBlockFn(beam.DoFn):
    """A scored block -> per-campaign partial audiences ``(campaign_id, TopUsers)`` and the block's user_rankings
    part, written to ``staging`` behind the next block's computation (one writer thread)."""

    def __init__(self, day: datetime.date, staging: Mapping[str, str], top_n: int) -> None:
        self.day, self.staging, self.top_n = day, dict(staging), top_n
        self.scored = Metrics.counter(NAMESPACE, "pairs_scored")

    def setup(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rankings")
        self._pending: list[Future] = []

    def finish_bundle(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()  # a failed write fails the bundle, whose retry rewrites the same part

    def teardown(self) -> None:
        self._pool.shutdown()

    def process(self, result: PredictionResult, plan: CampaignPlan) -> Iterator:
        block, scores = cast(PairBlock, result.example), cast(np.ndarray, result.inference)
        found = block.candidates
        self.scored.inc(len(scores))
        campaign_ids = plan.campaigns.column("campaign_id").to_numpy()
        limits = plan.campaigns.column("audience_limit").to_numpy()
        for top in block_top_users(scores, found.pair_user, found.pair_campaign, block.user_ids, campaign_ids, limits):
            yield top.campaign_id, top
        rankings = user_ranking_table(block, scores, plan, self.top_n)
        while len(self._pending) >= 2:  # bounded: at most two parts wait in memory
            self._pending.pop(0).result()
        key = (self.day.isoformat(),)
        job = (self.staging, f"part-{block.name}", rankings, "user_ranking", key)
        self._pending.append(self._pool.submit(write_parts, *job))
        counts = {"pairs": {"scored": len(scores)}, "user_rankings": {"rows": rankings.num_rows}}
        counts["users"] = {"ranked": found.users_with_pairs}
        yield pvalue.TaggedOutput(COUNTS_TAG, counts)


class MergeTopUsersFn(beam.CombineFn):
    """Per campaign: partial audiences -> its best ``limit`` users. Partials are merged once they hold more than
    twice the limit (at least a few thousand rows), so an accumulator stays bounded by the audience size while
    most partials are sorted once, not once per arrival."""

    @staticmethod
    def _compact(accumulator: list[TopUsers]) -> list[TopUsers]:
        rows = sum(len(t.user_ids) for t in accumulator)
        if len(accumulator) > 1 and rows > 2 * max(accumulator[0].limit, 2048):
            return [merge_top_users(accumulator)]
        return accumulator

    def create_accumulator(self) -> list[TopUsers]:
        return []

    def add_input(self, accumulator: list[TopUsers], top: TopUsers) -> list[TopUsers]:
        return self._compact([*accumulator, top])

    def merge_accumulators(self, accumulators) -> list[TopUsers]:
        return self._compact([t for acc in accumulators for t in acc])

    def extract_output(self, accumulator: list[TopUsers]) -> TopUsers:
        return merge_top_users(accumulator)


def empty_audiences(plan: CampaignPlan) -> Iterator[tuple[int, TopUsers]]:
    """An empty partial per scorable campaign, so that each campaign reaches the merge even with no eligible user."""
    ids = plan.campaigns.column("campaign_id").to_pylist()
    limits = plan.campaigns.column("audience_limit").to_pylist()
    for campaign_id, limit in zip(ids, limits, strict=True):
        yield campaign_id, TopUsers(campaign_id, limit, 0, np.empty(0, np.int64), np.empty(0, np.float32))


def audience_table(top: TopUsers, plan: CampaignPlan) -> pa.Table:
    """The :data:`AUDIENCES` rows of one campaign's final audience."""
    row = plan.campaigns.filter(pc.equal(plan.campaigns.column("campaign_id"), top.campaign_id))
    n = len(top.user_ids)

    def repeat(name: str) -> pa.Array:
        return row.column(name).take(np.zeros(n, np.int64))

    columns = {
        "campaign_id": repeat("campaign_id"),
        "channel": repeat("channel"),
        "objective": repeat("objective"),
        "head": repeat("head"),
        "user_id": pa.array(top.user_ids, pa.int64()),
        "rank": pa.array(np.arange(1, n + 1), pa.int32()),
        "score": pa.array(top.scores, pa.float32()),
        "audience_size": pa.array(np.full(n, n), pa.int32()),
        "eligible_users": pa.array(np.full(n, top.eligible), pa.int64()),
        "cut": repeat("cut"),
    }
    return pa.Table.from_arrays([columns[f.name] for f in AUDIENCES], schema=AUDIENCES)


class FinishAudienceFn(beam.DoFn):
    """A campaign's merged audience -> ``(shard, rows)``, its counts, or a ``no_eligible_users`` dead letter."""

    def __init__(self, shards: int, source_path: str) -> None:
        self.shards, self.source_path = shards, source_path
        self.no_eligible = Metrics.counter(NAMESPACE, "campaigns_no_eligible_users")  # as PlanCampaignsFn's

    def process(self, element: tuple[int, TopUsers], plan: CampaignPlan) -> Iterator:
        campaign_id, top = element
        key = str(campaign_id)
        counts: dict = {"per_campaign": {key: {"eligible": top.eligible, "audience_size": len(top.user_ids)}}}
        if top.eligible == 0:
            self.no_eligible.inc()
            row = plan.snapshot.filter(pc.equal(plan.snapshot.column("campaign_id"), campaign_id))
            yield pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                dead_letters(
                    row,
                    np.array(["no_eligible_users"] * row.num_rows),
                    pipeline=PIPELINE,
                    table="campaign",
                    source_path=self.source_path,
                    detail="no user passes the campaign's targeting and eligibility rules on this day",
                ),
            )
            counts["campaigns"] = {"dead_letter": {"no_eligible_users": 1}}
        else:
            counts["campaigns"] = {"scored": 1}
            yield campaign_id % self.shards, audience_table(top, plan)
        yield pvalue.TaggedOutput(COUNTS_TAG, counts)


class WriteAudienceShardFn(beam.DoFn):
    """All audiences of one shard -> ``part-<shard>`` sorted by (campaign_id, rank); returns counts."""

    def __init__(self, day: datetime.date, staging: Mapping[str, str]) -> None:
        self.day, self.staging = day, dict(staging)

    def process(self, element: tuple[int, list[pa.Table]]) -> Iterator[dict]:
        shard, tables = element
        table = pa.concat_tables([AUDIENCES.empty_table(), *tables]).sort_by(
            [("campaign_id", "ascending"), ("rank", "ascending")]
        )
        write_parts(self.staging, f"part-{shard:05d}", table, "audience", (self.day.isoformat(),))
        yield {"audiences": {"rows": table.num_rows, "parts": 1}}


# ------------------------------------------------------------------------------------------ composite steps


def _plan_counts(plan: CampaignPlan) -> dict:
    return plan.counts


def _plan_dead_letters(plan: CampaignPlan) -> pa.Table:
    return plan.dead_letters


class PlanCampaigns(beam.PTransform):
    """The day's inputs (one-element PCollections ``campaigns``, ``creatives`` and ``podcast_features``) -> the
    :class:`CampaignPlan` of ``day``; returns ``(plan, its counts, its dead letters)``."""

    def __init__(
        self, day: datetime.date, config: ScoringConfig, source_path: str, trained: dict | None = None
    ) -> None:
        super().__init__()
        self.plan_fn = PlanCampaignsFn(day, config, source_path, trained)

    def expand(self, inputs: Mapping[str, beam.PCollection]):
        plan = inputs["campaigns"] | "Plan" >> beam.ParDo(
            self.plan_fn,
            pvalue.AsSingleton(inputs["creatives"]),
            pvalue.AsSingleton(inputs["podcast_features"]),
        )
        counts = plan | "Counts" >> beam.Map(_plan_counts)
        dead_letters = plan | "DeadLetters" >> beam.Map(_plan_dead_letters)
        return plan, counts, dead_letters


class ScoreUserBlocks(beam.PTransform):
    """User feature parts -> scored pair blocks -> per-campaign partial audiences (main output), with the
    user_rankings parts written to ``rankings_staging`` (format -> staging folder) and counts (tagged ``counts``)
    on the side."""

    def __init__(
        self,
        day: datetime.date,
        config: ScoringConfig,
        plan: pvalue.AsSingleton,
        handler: PodtargetModelHandler,
        rankings_staging: Mapping[str, str],
    ) -> None:
        super().__init__()
        self.day, self.config, self.plan, self.handler = day, config, plan, handler
        self.rankings_staging = rankings_staging

    def expand(self, parts: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        blocks = parts | "UserBlocks" >> beam.ParDo(ReadUserBlocksFn(self.config), self.plan).with_outputs(
            COUNTS_TAG, main="blocks"
        )
        pairs = blocks.blocks | "Candidates" >> beam.ParDo(
            BuildCandidatesFn(self.day, self.config), self.plan
        ).with_outputs(COUNTS_TAG, main="pairs")
        scored = pairs.pairs | "RunInference" >> RunInference(self.handler)
        ranked = scored | "Rank" >> beam.ParDo(
            RankBlockFn(self.day, self.rankings_staging, self.config.top_n), self.plan
        ).with_outputs(COUNTS_TAG, main="partials")
        counts = (blocks[COUNTS_TAG], pairs[COUNTS_TAG], ranked[COUNTS_TAG]) | "BlockCounts" >> beam.Flatten()
        return ranked.partials, counts


class BuildAudiences(beam.PTransform):
    """Partial audiences -> one global top-K per campaign -> ``audiences`` parts in ``staging`` (format -> staging
    folder); returns
    ``(counts, dead letters)``. Every scorable campaign of the plan is seeded, so none can be missed silently."""

    def __init__(
        self,
        day: datetime.date,
        plan: pvalue.AsSingleton,
        plan_pcoll,
        staging: Mapping[str, str],
        shards: int,
        source_path: str,
    ):
        super().__init__()
        self.day, self.plan, self.plan_pcoll = day, plan, plan_pcoll
        self.staging, self.shards, self.source_path = staging, shards, source_path

    def expand(self, partials: beam.PCollection):
        # Merge the blocks' partials first, in their own step: the runner then combines them as they are made
        # (combiner lifting). Flattened with the seeds first, every partial would wait in one buffer (the local
        # runner materialises a Flatten of two stages), and memory would grow with the users.
        merged = partials | "MergePerCampaign" >> beam.CombinePerKey(MergeTopUsersFn())
        seeds = self.plan_pcoll | "SeedCampaigns" >> beam.FlatMap(empty_audiences)
        finished = (
            (merged, seeds)
            | "WithEveryCampaign" >> beam.Flatten()
            | "MergeSeeds" >> beam.CombinePerKey(MergeTopUsersFn())
            | "Finish"
            >> beam.ParDo(FinishAudienceFn(self.shards, self.source_path), self.plan).with_outputs(
                COUNTS_TAG, DEAD_LETTER_TAG, main="rows"
            )
        )
        written = (
            finished.rows
            | "ByShard" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteAudienceShardFn(self.day, self.staging))
        )
        counts = (finished[COUNTS_TAG], written) | "AudienceCounts" >> beam.Flatten()
        return counts, finished[DEAD_LETTER_TAG]

"""Score day D with a trained model: ``audiences/dt=D/`` per campaign and ``user_rankings/dt=D/`` per user.

Usage (``make score DATE=... MODEL=...`` wraps this)::

    python -m podtarget.pipelines.score --data_root=./data --date=2026-03-15 --model=models/demo \\
        [--audience_cut=top_k --audience_size=1000 | --audience_cut=budget --impressions_per_user=3] [--top_n=10] \\
        [--heads=ad:stream=AdStream,promo:stream=PromotionStream,*:click=Click,*:follow=Follow] [--hour=19 ...]

For each campaign active on D (``start_date <= D <= end_date``) and each user of the feature snapshot of D: the
eligible pairs (targeting, free users only for ads, not already following the show), their model inputs built by
the code that builds training examples, and the probability of the head the campaign's channel and objective map
to. Outputs are Parquet and Avro (``--formats``; Avro under ``avro/``, so each folder holds one format), committed
atomically: a rerun replaces a day with identical bytes. Campaigns that cannot be scored go to
``deadletter/score/dt=D/`` with their reason, and ``_SUCCESS.json`` reconciles every campaign and every pair considered.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions, TestOptions

from ..common.cli import warn_if_threads_spin
from ..common.options import add_options, from_options
from ..schemas import layout
from ..schemas.derived import AUDIENCES, USER_RANKINGS, fingerprint
from ..transforms.arrow.candidates import PIPELINE, RULES
from ..transforms.arrow.scoring_config import ScoringConfig
from ..transforms.beam.scoring import (
    FORMATS,
    BuildAudiences,
    PlanCampaigns,
    PodtargetModelHandler,
    ScoreUserBlocks,
    check_heads,
    load_scoring_model,
    model_fingerprint,
)
from ..transforms.beam.shared_steps import LoadDayInputs
from ..transforms.beam.sinks import SaveCounts, WriteDeadLetters
from ..transforms.runtime.day_inputs import load_podcast_features, load_snapshot, require_features, snapshot_files
from ..transforms.runtime.storage import partition_files
from .daily_options import DailyOptions
from .options import DataRootOptions, resolve_runner, run_main
from .reconciliation import Balance, Ledger, Reconciliation
from .staged_run import DailyRun


class ScoreOptions(PipelineOptions):
    """Options of ``podtarget.pipelines.score``: the model, the audience and serving-context options declared with
    :class:`podtarget.transforms.arrow.scoring_config.ScoringConfig` (the rules are there), and the run's own."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", default=None, help="Trained model folder, models/<run> (local or gs://).")
        add_options(parser, ScoringConfig)  # the audience and serving-context options, declared with ScoringConfig
        parser.add_argument(
            "--pairs_per_forward", type=int, default=8192, help="Pairs per forward pass of the network."
        )
        parser.add_argument("--torch_threads", type=int, default=0, help="torch intra-op threads; 0 = one per core.")
        parser.add_argument(
            "--forward",
            choices=("factorised", "materialised"),
            default="factorised",
            help="factorised: each side's share of the first layer computed once (fast, checked against the "
            "network on a sample of every block); materialised: a full input row per pair.",
        )
        parser.add_argument("--formats", default="parquet,avro", help="Output formats: parquet, avro or both.")
        parser.add_argument("--audience_shards", type=int, default=4, help="Audience parts (by campaign_id).")
        parser.add_argument(
            "--max_user_parts",
            type=int,
            default=0,
            help="Score only the first N user feature parts (a user subset, e.g. for benchmarks); 0 = all.",
        )


def scoring_config(opts: ScoreOptions) -> ScoringConfig:
    return from_options(ScoringConfig, opts)


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    if not chosen or any(f not in FORMATS for f in chosen):
        raise ValueError(f"--formats must list some of {', '.join(FORMATS)}, got {text!r}")
    return chosen


# Every active campaign scored or dead-lettered; every pair considered eligible or excluded by a rule; every eligible
# pair scored and counted in its campaign's audience.
CAMPAIGN_BALANCE = (Balance("unaccounted", "active", ("scored", "dead_lettered")),)
PAIR_BALANCE = (
    Balance("unaccounted", "considered", ("eligible", "ineligible")),
    Balance("unscored", "eligible", ("scored",)),
    Balance("eligible_not_in_audiences", "eligible", ("in_audiences",)),
)


def scoring_ledgers(counts: dict) -> dict[str, Ledger]:
    """The run's campaign and pair figures (from its merged counts) with the balances they must satisfy."""
    campaigns, pairs = counts.get("campaigns", {}), counts.get("pairs", {})
    campaign_figures = {
        "active": campaigns.get("active", 0),
        "scored": campaigns.get("scored", 0),
        "dead_lettered": sum(campaigns.get("dead_letter", {}).values()),
    }
    pair_figures = {
        "considered": pairs.get("considered", 0),
        "eligible": pairs.get("eligible", 0),
        "ineligible": sum(pairs.get("ineligible", {}).values()),
        "scored": pairs.get("scored", 0),
        "in_audiences": sum(c.get("eligible", 0) for c in counts.get("per_campaign", {}).values()),
    }
    return {"campaigns": Ledger(campaign_figures, CAMPAIGN_BALANCE), "pairs": Ledger(pair_figures, PAIR_BALANCE)}


def _remote_workers(options: PipelineOptions) -> bool:
    """Whether the runner's workers run on other machines or in containers (Dataflow; a portable runner such as
    Flink unless its environment is LOOPBACK or PROCESS), where a local path means nothing."""
    runner = options.view_as(StandardOptions).runner or ""
    if "Dataflow" in runner:
        return True
    environment = (options.view_as(PortableOptions).environment_type or "DOCKER").upper()
    return runner in ("PortableRunner", "FlinkRunner") and environment not in ("LOOPBACK", "PROCESS")


def check_settings(options: PipelineOptions) -> tuple[str, ...]:
    """Every setting that can be wrong fails here, before any work; returns the output formats."""
    opts = options.view_as(ScoreOptions)
    formats = _formats(opts.formats)
    if opts.audience_shards < 1 or opts.pairs_per_forward < 1 or opts.max_user_parts < 0 or opts.torch_threads < 0:
        raise ValueError(
            "--audience_shards and --pairs_per_forward must be >= 1, --max_user_parts and --torch_threads >= 0"
        )
    if not opts.model:
        raise ValueError("--model=models/<run> is required: the trained model to score with")
    if "://" not in opts.model and _remote_workers(options) and not options.view_as(TestOptions).dry_run:
        raise ValueError(
            f"--model={opts.model} is a local folder, but the workers of this runner load the model themselves and "
            "cannot read it: copy the run to gs:// and pass that path"
        )
    return formats


def run(argv: list[str] | None = None) -> dict:
    """Score ``--date``; returns the summary (also each partition's ``_SUCCESS.json``)."""
    options = resolve_runner(PipelineOptions(argv))
    run = DailyRun.open(options, PIPELINE)
    opts = options.view_as(ScoreOptions)
    data_root, day = run.data_root, run.day
    # Everything that can be wrong with the settings, the model or the inputs fails here, before any work.
    config, formats = scoring_config(opts), check_settings(options)
    model = load_scoring_model(opts.model)
    check_heads(model, config)
    require_features(data_root, day)
    for table in ("campaign", "creative"):
        snapshot_files(data_root, table, day)
    user_paths = partition_files(layout.feature_partition(data_root, "user", day), ".parquet")
    user_parts = list(enumerate(user_paths[: opts.max_user_parts] if opts.max_user_parts else user_paths))
    # One partition per output and format (Avro under avro/), each staged and committed whole.
    dead_staging = run.stage_dead_letters(layout.deadletter_partition(data_root, PIPELINE, day))
    rankings_staging, audience_staging = {}, {}
    for fmt in formats:
        rankings_staging[fmt] = run.stage(layout.user_ranking_partition(data_root, day, fmt))
        audience_staging[fmt] = run.stage(layout.audience_partition(data_root, day, fmt))
    source_path = layout.raw_partition(data_root, "campaign", day)
    fingerprint = model_fingerprint(model)
    handler = PodtargetModelHandler(
        opts.model,
        fingerprint=fingerprint,
        pairs_per_forward=opts.pairs_per_forward,
        torch_threads=opts.torch_threads,
        factorised=opts.forward == "factorised",
    )
    trained = model.trained_for()
    del model  # the workers load their own copy
    loaders = {
        "podcast_features": functools.partial(load_podcast_features, data_root=data_root),
        "campaigns": functools.partial(load_snapshot, data_root=data_root, table="campaign"),
        "creatives": functools.partial(load_snapshot, data_root=data_root, table="creative"),
    }

    pipeline = beam.Pipeline(options=options)
    inputs = pipeline | "DayInputs" >> LoadDayInputs(day, loaders)
    plan, plan_counts, plan_dead_letters = inputs | "PlanCampaigns" >> PlanCampaigns(day, config, source_path, trained)
    plan_side = beam.pvalue.AsSingleton(plan)
    partials, block_counts = (
        pipeline
        | "UserFeatureFiles" >> beam.Create(user_parts)
        | "ScoreUserBlocks" >> ScoreUserBlocks(day, config, plan_side, handler, rankings_staging)
    )
    audience_counts, no_eligible = partials | "Audiences" >> BuildAudiences(
        day, plan_side, plan, audience_staging, opts.audience_shards, source_path
    )
    _ = (plan_counts, block_counts, audience_counts) | "SaveCounts" >> SaveCounts(run.counts_path)
    _ = (plan_dead_letters, no_eligible) | "SaveDeadLetters" >> WriteDeadLetters(dead_staging)

    counts = run.execute(pipeline)
    if counts is None:
        return run.dry_run_summary(user_parts=len(user_parts))
    balance = run.reconcile(scoring_ledgers(counts))
    summary = score_summary(day, counts, balance, opts, config, formats, fingerprint, len(user_parts))
    return run.commit(summary, dead_letters={"campaigns": summary["campaigns"]})


def score_summary(
    day: datetime.date,
    counts: dict,
    balance: Reconciliation,
    opts: ScoreOptions,
    config: ScoringConfig,
    formats: tuple[str, ...],
    model_id: str,
    user_parts: int,
) -> dict:
    """What a scoring run records in every partition's ``_SUCCESS.json``."""
    campaigns, pairs, users = counts.get("campaigns", {}), counts.get("pairs", {}), counts.get("users", {})
    return {
        "date": day.isoformat(),
        "model": {
            "path": opts.model,
            "run": opts.model.rstrip("/").rsplit("/", 1)[-1],
            "fingerprint": model_id,
            "heads": sorted(set(config.head_map.values())),
        },
        "settings": {
            **{name: getattr(config, name) for name in ScoringConfig.__dataclass_fields__},
            "forward": opts.forward,
            "pairs_per_forward": opts.pairs_per_forward,
            "formats": list(formats),
            "audience_shards": opts.audience_shards,
            "max_user_parts": opts.max_user_parts,
        },
        "campaigns": {
            "in_snapshot": campaigns.get("snapshot", 0),
            "active": campaigns.get("active", 0),
            "scored": campaigns.get("scored", 0),
            "dead_letter": campaigns.get("dead_letter", {}),
        },
        "pairs": {
            "considered": pairs.get("considered", 0),
            "eligible": pairs.get("eligible", 0),
            "ineligible": {rule: pairs.get("ineligible", {}).get(rule, 0) for rule in RULES},
            "scored": pairs.get("scored", 0),
        },
        "users": {
            "read": users.get("read", 0),
            "with_a_ranking": users.get("ranked", 0),
            "blocks": users.get("blocks", 0),
            "user_parts": user_parts,
        },
        "per_campaign": dict(sorted(counts.get("per_campaign", {}).items(), key=lambda kv: int(kv[0]))),
        "audience_rows": counts.get("audiences", {}).get("rows", 0),
        "user_ranking_rows": counts.get("user_rankings", {}).get("rows", 0),
        "reconciliation": balance.rows,
        "schema_fingerprints": {"audiences": fingerprint(AUDIENCES), "user_rankings": fingerprint(USER_RANKINGS)},
    }


def describe(summary: dict) -> str:
    c, p = summary["campaigns"], summary["pairs"]
    dead = ", ".join(f"{k} {v}" for k, v in sorted(c["dead_letter"].items())) or "none"
    lines = [
        f"scored {summary['date']} with {summary['model']['run']} ({summary['model']['fingerprint']})",
        f"campaigns: {c['active']} active, {c['scored']} scored; dead letters: {dead}",
        f"pairs: {p['considered']:,} considered, {p['eligible']:,} eligible, {p['scored']:,} scored; excluded by "
        + ", ".join(f"{k} {v:,}" for k, v in p["ineligible"].items()),
        f"users: {summary['users']['read']:,} read, {summary['users']['with_a_ranking']:,} ranked",
        f"audiences: {summary['audience_rows']:,} rows; user_rankings: {summary['user_ranking_rows']:,} rows",
        f"done in {summary['seconds']:.1f} s ({p['scored'] / max(summary['seconds'], 1e-9):,.0f} pairs/s)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    warn_if_threads_spin(logging.getLogger(__name__))  # scoring runs torch in this process (and its workers)
    run_main(run, describe, argv, options=(DataRootOptions, DailyOptions, ScoreOptions))


if __name__ == "__main__":
    main()

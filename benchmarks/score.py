"""Benchmark scoring: scored pairs per second end to end, peak memory at two user counts, and plain torch.

Scores one day of the bench world (the last day with user features: the examples benchmark builds them) with
every active campaign, for the
users of the first 1 and of the first 4 user feature parts (about 33k and 130k users: scoring all 400k users
against every campaign is about 100M pairs, minutes here, and shows nothing more). Outputs go to a scratch data
root that links the bench world's features and snapshots, so the bench world is left as it was.

Figures per run: process wall seconds (interpreter start and imports included) and the pipeline's own seconds
(``run()``: model validation, graph, scoring, commit), pairs/s over each, and peak RSS. The marginal rate (extra
pairs over extra seconds between the two runs) is the steady state with every fixed cost removed. For
comparison, the same model's forward pass in plain torch on encoded example rows (batches of 8192).

The model: ``models/demo`` (what ``make demo`` trains on the demo world; cost per pair depends on the spec, not on
what the model learnt) when it exists, else one trained for a few batches on the bench examples.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import pathlib
import sys
import tempfile
import time

from benchmarks.harness import measure
from podtarget.schemas import layout

TARGET_PAIRS_PER_S = 500_000
MAX_MEMORY_GROWTH = 1.15  # peak RSS at 4x the users over peak RSS at 1x
DEMO_MODEL = "models/demo"
USER_PARTS = (1, 4)


def _day(bench_root: str) -> str:
    days = sorted(p.split("dt=")[1][:10] for p in glob.glob(f"{bench_root}/features/user/dt=*/_SUCCESS.json"))
    if not days:
        raise RuntimeError(f"no user features under {bench_root}/features/user: run the examples benchmark first")
    return days[-1]


def _model(bench_root: str, day: str, scratch: str) -> tuple[str, str]:
    if pathlib.Path(DEMO_MODEL, "manifest.json").exists():
        return DEMO_MODEL, f"{DEMO_MODEL} (trained by make demo on the demo world)"
    examples = f"{bench_root}/examples"
    cmd = [
        sys.executable,
        "-m",
        "podtarget.model.train",
        f"--examples={examples}",
        f"--out={scratch}",
        "--run=bench-score",
    ]
    split = [f"--train_days={day}", "--valid_days=", "--test_days="]
    measure([*cmd, "--epochs=1", "--max_batches_per_epoch=20", "--no_progress", *split])
    return f"{scratch}/bench-score", f"trained for 20 batches on {examples}"


def plain_torch(model_path: str, bench_root: str, day: str, rows: int = 65536, batch: int = 8192) -> dict:
    """Examples/s of the model's forward pass alone (inputs encoded beforehand), and with the encoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from podtarget.schemas.derived import LABELS
    from podtarget.transforms.beam.scoring import load_scoring_model

    model = load_scoring_model(model_path)
    parts = sorted(glob.glob(f"{bench_root}/examples/dt={day}/part-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in parts[:2]]).slice(0, rows).drop_columns(list(LABELS))
    slices = [table.slice(i, batch) for i in range(0, table.num_rows, batch)]
    with torch.inference_mode():
        started = time.perf_counter()
        batches = [model.encode(s) for s in slices]
        encoded = time.perf_counter()
        for b in batches:
            model.predict(b)
        done = time.perf_counter()
    return {
        "rows": table.num_rows,
        "batch_rows": batch,
        "torch_threads": torch.get_num_threads(),
        "forward_examples_per_s": round(table.num_rows / (done - encoded)),
        "encode_and_forward_examples_per_s": round(table.num_rows / (done - started)),
    }


def _score(root: str, day: str, model: str, parts: int, beam_args: list[str]) -> dict:
    load_before = os.getloadavg()[0]  # other work on the machine competes for the 2 cores: worth knowing
    cmd = [
        sys.executable,
        "-m",
        "podtarget.pipelines.score",
        f"--data_root={root}",
        f"--date={day}",
        f"--model={model}",
    ]
    measured = measure([*cmd, f"--max_user_parts={parts}", *beam_args])
    partition = layout.audience_partition(root, datetime.date.fromisoformat(day))
    summary = json.loads(pathlib.Path(layout.success_marker(partition)).read_text())
    seconds = float(measured["stdout"].rsplit("done in ", 1)[1].split(" s")[0])
    pairs = summary["pairs"]["scored"]
    return {
        "user_parts": parts,
        "users": summary["users"]["read"],
        "campaigns": summary["campaigns"]["scored"],
        "pairs_considered": summary["pairs"]["considered"],
        "pairs_scored": pairs,
        "process_seconds": round(measured["seconds"], 2),
        "pipeline_seconds": seconds,
        "pairs_per_s_with_startup": round(pairs / measured["seconds"]),
        "pairs_per_s_pipeline": round(pairs / seconds),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "load_average_1min_before": round(load_before, 2),
    }


def run(bench_root: str, beam_args: list[str]) -> dict:
    day = _day(bench_root)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as scratch:
        root = f"{scratch}/data"
        os.makedirs(root)
        for name in ("features", "raw"):
            os.symlink(os.path.abspath(f"{bench_root}/{name}"), f"{root}/{name}")
        model, model_source = _model(bench_root, day, scratch)
        runs = [_score(root, day, model, parts, beam_args) for parts in USER_PARTS]
        torch_figures = plain_torch(model, bench_root, day)
    small, large = runs
    marginal = (large["pairs_scored"] - small["pairs_scored"]) / (large["pipeline_seconds"] - small["pipeline_seconds"])
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]
    figures = {
        "date": day,
        "model": model_source,
        "runs": runs,
        "marginal_pairs_per_s": round(marginal),
        "peak_rss_growth": round(growth, 3),
        "plain_torch": torch_figures,
        "targets": {
            "pairs_per_s_pipeline_at_least": TARGET_PAIRS_PER_S,
            "peak_rss_growth_at_most": MAX_MEMORY_GROWTH,
        },
    }
    figures["targets_met"] = large["pairs_per_s_pipeline"] >= TARGET_PAIRS_PER_S and growth <= MAX_MEMORY_GROWTH
    return figures

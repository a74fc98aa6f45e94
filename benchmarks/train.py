"""Benchmark training: examples/s of the default model, the share of time it waits for data, and peak memory.

Reads the bench world's examples (``<bench_root>/examples``, one day of about 2M impressions when ``make bench``
has built it); without them it falls back to the demo examples (``./data/examples``) and says so. Training runs
in its own process (``python -m podtarget.model.train``) so that its peak RSS is measured alone; the throughput is the
steady state the trainer reports (after its first warm-up batches, which include filling the shuffle buffer).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile

import pyarrow.fs as pafs

from benchmarks.harness import measure

TARGET_EXAMPLES_PER_S = 100_000
MAX_DATA_WAIT_SHARE = 0.05  # "data loading never the bottleneck": the trainer waits for data < 5% of the time
DEMO_EXAMPLES = "./data/examples"
BENCH_BATCHES = 200  # about 1.6M training rows at the default batch size: a minute on 2 cores


def _days(root: str) -> list[str]:
    try:
        fs, base = pafs.FileSystem.from_uri(root) if "://" in root else (pafs.LocalFileSystem(), root)
        entries = fs.get_file_info(pafs.FileSelector(base, recursive=False))
    except (OSError, FileNotFoundError):
        return []
    return sorted(e.base_name[3:] for e in entries if e.base_name.startswith("dt=") and e.type.name == "Directory")


def run(bench_root: str, beam_args: list[str]) -> dict:
    """``beam_args`` are ignored: training is not a Beam pipeline."""
    del beam_args
    bench_examples = f"{bench_root.rstrip('/')}/examples"
    days = _days(bench_examples)
    if days:
        examples, source = bench_examples, f"bench world ({bench_examples}, {len(days)} day(s))"
        # One day: train on it, no validation or test split (this measures training, not quality).
        split = [f"--train_days={days[0]}", "--valid_days=", "--test_days="]
    elif _days(DEMO_EXAMPLES):
        examples, source = DEMO_EXAMPLES, f"demo examples ({DEMO_EXAMPLES}); the bench world has no examples"
        split = []
    else:
        raise RuntimeError(f"no examples to train on: neither {bench_examples} nor {DEMO_EXAMPLES} (run make demo)")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        cmd = [
            sys.executable,
            "-m",
            "podtarget.model.train",
            f"--examples={examples}",
            f"--out={out}",
            "--run=bench",
            "--epochs=1",
            f"--max_batches_per_epoch={BENCH_BATCHES}",
            "--no_progress",
            *split,
        ]
        measured = measure(cmd)
        metrics = json.loads((pathlib.Path(out) / "bench" / "metrics.json").read_text())
    throughput = metrics["throughput"]
    rate = throughput["examples_per_s_steady"] or 0
    wait = throughput["data_wait_share_steady"]
    figures = {
        "examples_source": source,
        "train_days": metrics["split"]["train"],
        "batch_size": metrics["sampling"]["batch_size"],
        "source_shares_per_batch": metrics["sampling"]["shares"],
        "training_examples": throughput["examples"],
        "training_seconds": throughput["train_seconds"],
        "examples_per_s_steady": rate,
        "data_wait_share_steady": wait,
        "torch_threads": throughput["torch_threads"],
        "process_seconds": round(measured["seconds"], 2),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "targets": {"examples_per_s_at_least": TARGET_EXAMPLES_PER_S, "data_wait_share_at_most": MAX_DATA_WAIT_SHARE},
    }
    figures["targets_met"] = rate >= TARGET_EXAMPLES_PER_S and wait is not None and wait <= MAX_DATA_WAIT_SHARE
    return figures

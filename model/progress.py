"""What a training run reports of its speed: an epoch's progress bar on a terminal, and the run's throughput
(examples per second over the run and in the steady state, and the share of time spent waiting for data).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TextIO

import torch
from tqdm import tqdm

WARMUP_BATCHES = 5


class EpochProgress:
    """One epoch's progress: on an interactive terminal, a tqdm bar over its batches on stderr with the running
    loss, examples/s and the share of time spent waiting for data. Elsewhere (make's output in a log file, CI) no bar,
    which would be a stream of carriage returns there: the epoch's one log line is the progress. ``enabled`` True or
    False (``--progress``/``--no_progress``) overrides the terminal check, e.g. for an IDE console that is not one.

        >>> progress = EpochProgress("epoch 1/5", total_batches=240, enabled=None)
        >>> progress.update(rows=8192, loss=0.6143, wait_share=0.012)
        >>> progress.close()
    """

    def __init__(self, label: str, total_batches: int, enabled: bool | None, stream: TextIO | None = None):
        stream = sys.stderr if stream is None else stream  # looked up now: tests and callers may swap sys.stderr
        shown = stream.isatty() if enabled is None else enabled
        self.bar = tqdm(
            total=total_batches, desc=label, unit="batch", file=stream, disable=not shown, dynamic_ncols=True
        )
        self.rows = 0
        self.started = time.perf_counter()

    def update(self, rows: int, loss: float, wait_share: float) -> None:
        """One more batch of ``rows`` rows; ``loss``: the epoch's mean so far."""
        self.rows += rows
        if self.bar.disable:
            return
        rate = self.rows / max(time.perf_counter() - self.started, 1e-9)
        postfix = f"loss {loss:.4f} | {rate / 1000:.1f}k ex/s | data wait {100 * wait_share:.1f}%"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@dataclasses.dataclass
class Throughput:
    """Training examples and seconds over the run, and in the steady state: each epoch after its first
    ``WARMUP_BATCHES`` (which include filling the shuffle buffer), with the time spent waiting for data."""

    examples: int = 0
    train_seconds: float = 0.0
    steady_rows: int = 0
    steady_seconds: float = 0.0
    wait_seconds: float = 0.0

    def as_dict(self) -> dict:
        steady = self.steady_seconds
        return {
            "examples": self.examples,
            "train_seconds": round(self.train_seconds, 2),
            "examples_per_s_steady": round(self.steady_rows / steady) if steady else None,
            "data_wait_share_steady": round(self.wait_seconds / steady, 4) if steady else None,
            "torch_threads": torch.get_num_threads(),
        }

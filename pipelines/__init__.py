"""The podtarget pipelines, each a ``python -m pipelines.<name>`` command with a ``run(argv)`` entry point.

A daily pipeline's command (backfill, build_features, build_examples) starts its worker processes' server here,
before the command's own imports, so that both import side by side (see :mod:`transforms.worker_server`).
"""

import sys

from transforms.worker_server import start_for_command

start_for_command(getattr(sys, "orig_argv", ()))

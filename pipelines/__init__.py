"""The podtarget pipelines, each a ``python -m podtarget.pipelines.<name>`` command with a ``run(argv)`` entry point.

A daily pipeline's command (backfill, build_features, build_examples) starts its worker processes' server here,
before the command's own imports, so that both import side by side (see
:mod:`podtarget.transforms.runtime.worker_server`).
"""

import sys

from podtarget.transforms.runtime.worker_server import start_for_command

start_for_command(getattr(sys, "orig_argv", ()))

"""The podtarget pipelines, each a ``python -m podtarget.pipelines.<name>`` command with a ``run(argv)`` entry point.

Importing them starts nothing: the daily commands (backfill, build_features, build_examples) start their worker
processes' server in their ``main()``, from the parsed options
(:func:`podtarget.pipelines.daily_options.start_worker_server`).
Run as ``python -m``, a Ctrl-C while a command still imports is one line (``common/cli.py``).
"""

from podtarget.common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()

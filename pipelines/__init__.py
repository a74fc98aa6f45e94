"""The podtarget pipelines, each a ``python -m podtarget.pipelines.<name>`` command with a ``run(argv)`` entry point.

Importing them starts nothing: the daily commands (backfill, build_features, build_examples) start their worker
processes' server in their ``main()``, from the parsed options
(:func:`podtarget.pipelines.daily_options.start_worker_server`).
Run as ``python -m``, a Ctrl-C while a command still imports is one line (``common/cli.py``).
"""

from ..common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()

# The folders are the package podtarget (pyproject's package-dir): imported as `pipelines` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.pipelines":
    raise ImportError(
        f"{__name__!r} is the folder pipelines/ of podtarget: import podtarget.pipelines (make setup installs it)"
    )

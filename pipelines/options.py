"""Pipeline options shared by every podtarget pipeline, and the one place the runner default is decided.

``--runner=DirectRunner`` (the default) means Beam's in-process engine, FnApiRunner: Beam 2.77's DirectRunner would
first try to download the Prism runner binary from the internet, which fails or stalls offline and, where it
succeeds, silently changes which engine runs. ``--direct_running_mode`` (``in_memory`` or ``multi_processing``)
and ``--direct_num_workers`` apply as usual. Any other runner (``DataflowRunner``, ``PortableRunner`` for Flink)
passes through untouched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from ..common.checks import invalid
from ..common.cloud import require_credentials
from ..transforms.runtime.storage import is_local

IN_PROCESS_RUNNER = "FnApiRunner"


class DataRootOptions(PipelineOptions):
    """Where the datasets live."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--data_root",
            default="./data",
            help="Root of all datasets: a local folder or gs://bucket/prefix (see docs/architecture.md).",
        )


def require_data_root(data_root: str) -> str:
    """``data_root`` when a run can read from it: not empty, and an existing folder when it is local (a ``gs://``
    prefix is checked by the inputs the run looks for, which name their paths). Otherwise a one-line error that says
    so, rather than a missing input under a root that is not there."""
    if not data_root.strip():
        raise ValueError(
            "--data_root is empty: give the folder (or gs://bucket/prefix) that holds raw/, e.g. --data_root=./data"
        )
    if is_local(data_root) and not os.path.isdir(data_root):
        raise FileNotFoundError(
            f"data root --data_root={data_root} does not exist: point it at the folder that holds raw/ "
            "(make data simulates one into ./data)"
        )
    return data_root


def resolve_runner(options: PipelineOptions) -> PipelineOptions:
    """Refuse options that no pipeline and no part of Beam knows (a typo would otherwise run with the default),
    map the default/DirectRunner to the in-process FnApiRunner and refuse unsafe local modes."""
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level, beam_log.level = beam_log.level, logging.ERROR  # its "Discarding unparseable args" warning: refused below
    try:
        unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options()))
    finally:
        beam_log.setLevel(level)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join('--' + u for u in unknown)}: no option of this pipeline or of Beam; "
            "see `python -m podtarget.pipelines.<name> --help`"
        )
    # gs:// paths (data root, model, temp and staging locations): fail now, not after minutes of retries.
    require_credentials(v for v in options.get_all_options().values() if isinstance(v, str))
    standard = options.view_as(StandardOptions)
    if standard.runner in (None, "DirectRunner", "direct", "SwitchingDirectRunner"):
        standard.runner = IN_PROCESS_RUNNER
    direct = options.view_as(DirectOptions)
    if (
        standard.runner == IN_PROCESS_RUNNER
        and direct.direct_running_mode == "multi_threading"
        and (direct.direct_num_workers or 0) != 1
    ):
        # Beam 2.77 corrupts data (decode errors or silently wrong counts) in this mode with >1 worker.
        expected = (
            "in_memory, or multi_processing for parallel workers (multi_threading with more than one worker corrupts "
            f"data in Beam 2.77; --direct_num_workers={direct.direct_num_workers})"
        )
        raise invalid("the pipeline options", "--direct_running_mode", expected, direct.direct_running_mode)
    logging.getLogger(__name__).info(
        "runner=%s mode=%s workers=%s",
        standard.runner,
        direct.direct_running_mode,
        direct.direct_num_workers,
    )
    return options


# How the pipeline commands log (warnings only: they print their own summaries).
COMMAND_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

# Flags the error messages name, and the make variable that sets each (shown when run from make).
MAKE_VARIABLES = {
    "--data_root": "DATA_ROOT=<folder>",
    "--start": "START=YYYY-MM-DD",
    "--end": "END=YYYY-MM-DD",
    "--allow_unobserved": "UNOBSERVED=1",
    "--force": "FORCE=1",
    "--date": "DATE=YYYY-MM-DD",
    "--model": "MODEL=models/<run>",
    "--transfers": 'SCORE_ARGS="--transfers=..."',
    "--heads": 'SCORE_ARGS="--heads=..."',
}


def run_main(
    run,
    describe,
    argv: list[str] | None = None,
    options: tuple[type[PipelineOptions], ...] = (),
    prepare: Callable[[PipelineOptions], object] | None = None,
) -> None:
    """Command-line entry shared by the pipelines: ``--help`` lists the pipeline's ``options``; otherwise
    ``prepare(parsed options)`` first (e.g. start worker processes while the run plans), run, then print
    ``describe(summary)`` (or the dry-run note). An error is one line (``common/cli.py``), exit status 2."""
    import sys

    from ..common.cli import configure_logging, run_cli

    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(command_help(run.__module__, options))
        return
    configure_logging(logging.WARNING, COMMAND_LOG_FORMAT)

    def main() -> int:
        if prepare is not None:
            prepare(PipelineOptions(argv))
        summary = run(argv)
        if summary.get("dry_run"):
            print(f"dry run: the job graph was built and validated ({summary['state']}); nothing ran")
        else:
            print(describe(summary))
        return 0

    code = run_cli(main, MAKE_VARIABLES)
    if code:
        raise SystemExit(code)


def command_help(module: str, options: tuple[type[PipelineOptions], ...]) -> str:
    """The help of ``python -m <module>``: its docstring and every option of its ``options`` classes."""
    import argparse
    import sys

    doc = sys.modules[module].__doc__
    if module == "__main__":  # python -m podtarget.pipelines.x: the module's own name is in its spec
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any Beam pipeline option is accepted too: --runner (DirectRunner, the default, runs in-process; "
        "DataflowRunner; PortableRunner for Flink), --direct_running_mode, --direct_num_workers, --project, "
        "--region, --temp_location, ... (see README, Running on Dataflow or Flink). Unknown options are refused.",
    )
    for cls in options:
        # An argument group takes add_argument like the parser Beam's hook is typed for.
        cls._add_argparse_args(parser.add_argument_group(cls.__name__))  # type: ignore[arg-type]
    return parser.format_help()

"""Pipeline options shared by every podtarget pipeline, and the one place the runner default is decided.

``--runner=DirectRunner`` (the default) means Beam's in-process engine, FnApiRunner: Beam 2.77's DirectRunner would
first try to download the Prism runner binary from the internet, which fails or stalls offline and, where it
succeeds, silently changes which engine runs. ``--direct_running_mode`` (``in_memory`` or ``multi_processing``)
and ``--direct_num_workers`` apply as usual. Any other runner (``DataflowRunner``, ``PortableRunner`` for Flink)
passes through untouched.
"""

from __future__ import annotations

import logging

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

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


def resolve_runner(options: PipelineOptions) -> PipelineOptions:
    """Map the default/DirectRunner to the in-process FnApiRunner and refuse unsafe local modes."""
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
        raise ValueError(
            "--direct_running_mode=multi_threading with more than one worker corrupts data in Beam 2.77; "
            "use in_memory, or multi_processing for parallel workers"
        )
    logging.getLogger(__name__).info(
        "runner=%s mode=%s workers=%s",
        standard.runner,
        direct.direct_running_mode,
        direct.direct_num_workers,
    )
    return options


def run_main(run, describe, argv: list[str] | None = None) -> None:
    """Command-line entry shared by the pipelines: run, then print ``describe(summary)`` (or the dry-run note)."""
    import sys

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = run(sys.argv[1:] if argv is None else argv)
    if summary.get("dry_run"):
        print(f"dry run: the job graph was built and validated ({summary['state']}); nothing ran")
        return
    print(describe(summary))

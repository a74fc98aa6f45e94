"""Command-line errors as one clear line: what was wrong, and under ``make`` the make variable that changes it.

Every entry point (the pipelines, training, evaluation) runs its ``main`` through :func:`run_cli`. An exception
prints ``error: <message>`` on stderr and exits 2, instead of a traceback; ``PODTARGET_TRACEBACK=1`` shows the
traceback. Messages name command-line flags (``--allow_unobserved``); run from ``make`` (``MAKELEVEL`` is set),
each flag a command's ``make_variables`` knows is followed by the variable to use, e.g. ``--allow_unobserved
(make: UNOBSERVED=1)``. Standard library only: every layer's commands use it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping

TRACEBACK_ENV = "PODTARGET_TRACEBACK"
VERBOSE_ENV = "PODTARGET_VERBOSE"
OMP_WAIT_ENV = "OMP_WAIT_POLICY"
# Libraries whose INFO lines are theirs, not the command's progress: Beam alone printed ~280 per evaluation (its
# type-hint and runner modules).
QUIET_LIBRARIES = ("apache_beam", "urllib3", "google", "matplotlib", "PIL")


def configure_logging() -> None:
    """INFO lines for this project's own progress and WARNING and above from libraries; ``PODTARGET_VERBOSE=1``
    shows the libraries' INFO lines too."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = logging.INFO if os.environ.get(VERBOSE_ENV) else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(level)


def warn_if_threads_spin(log: logging.Logger) -> bool:
    """For the commands that run torch (training, evaluation, scoring): one warning line on ``log`` when
    ``OMP_WAIT_POLICY`` is unset, saying how to set it; returns whether it warned.

    Unset, OpenMP threads spin while they wait. With torch's two threads on a 2-core machine that slowed a tiny
    model's training sevenfold whenever another process held a core (measured: 39 s instead of 5.5 s for the movie
    toy table), the bench-day training collapsed to 16k examples/s in one such run, and scoring a bench part took
    117 s instead of 30 s. The runtime reads the policy once, when torch loads, before any ``main()`` runs, so a
    command cannot set it for itself and no library module should (it would change the threads of whoever imports
    it): ``make`` exports ``OMP_WAIT_POLICY=PASSIVE``, and so does the worker image.
    """
    if os.environ.get(OMP_WAIT_ENV):
        return False
    log.warning(
        "%s is unset, so torch's threads spin while they wait: training ran up to 7x slower when another process "
        "held a core. Run through make, or start the command with %s=PASSIVE in its environment.",
        OMP_WAIT_ENV,
        OMP_WAIT_ENV,
    )
    return True


def one_line(exc: BaseException, make_variables: Mapping[str, str] = {}) -> str:
    """``exc`` as one line: its message (the first line of it; its class when it has none), with the make
    variables of the flags it names when run from make."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, KeyError | AttributeError | TypeError | NameError | IndexError):
        text = f"{type(exc).__name__}: {text} (a bug, not a bad input: rerun with {TRACEBACK_ENV}=1 and report it)"
    if os.environ.get("MAKELEVEL"):
        for flag, variable in make_variables.items():
            text = re.sub(rf"({re.escape(flag)})(?![\w-])(=\S*)?", rf"\1\2 (make: {variable})", text, count=1)
    return text


def run_cli(main: Callable[[], int | None], make_variables: Mapping[str, str] = {}) -> int:
    """Run ``main``; on an error print it as one line on stderr and return 2 (130 on Ctrl-C)."""
    try:
        return main() or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"error: {one_line(exc, make_variables)}", file=sys.stderr)
        return 2

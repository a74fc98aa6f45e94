"""Command-line errors as one clear line: what was wrong, and under ``make`` the make variable that changes it.

Every entry point (the pipelines, training, evaluation) runs its ``main`` through :func:`run_cli`. An exception
prints ``error: <message>`` on stderr and exits 2, instead of a traceback; ``PODTARGET_TRACEBACK=1`` shows the
traceback. Ctrl-C prints ``interrupted`` and exits 130, wherever it lands: while the command imports its modules
(:func:`quiet_interrupts_while_starting`), or inside a Beam pipeline, whose runner may re-raise it wrapped in
another exception (:func:`was_interrupted`). Messages name command-line flags (``--allow_unobserved``); run from
``make`` (``MAKELEVEL`` is set), each flag a command's ``make_variables`` knows is followed by the variable to use,
e.g. ``--allow_unobserved (make: UNOBSERVED=1)``. Flags are parsed by :class:`CommandParser`: whole names only, and
a bad flag or value is one line too. Standard library only: every layer's commands use it.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

TRACEBACK_ENV = "PODTARGET_TRACEBACK"
VERBOSE_ENV = "PODTARGET_VERBOSE"
OMP_WAIT_ENV = "OMP_WAIT_POLICY"
# Libraries whose INFO lines are theirs, not the command's progress: Beam alone printed ~280 per evaluation (its
# type-hint and runner modules).
QUIET_LIBRARIES = ("apache_beam", "urllib3", "google", "matplotlib", "PIL")


def configure_logging(level: int = logging.INFO, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    """``level`` and above for this project's own lines (progress at INFO for training and the evaluation; the
    pipelines print their own summaries and log only warnings), WARNING and above from libraries;
    ``PODTARGET_VERBOSE=1`` shows the libraries' INFO lines too.

    A Beam step that fails logs the error with its traceback before the runner re-raises it to the command, which
    prints it as its one ``error:`` line: that log record is dropped (:class:`RaisedAgainFilter`), and so is
    anything Beam logs after a Ctrl-C. ``PODTARGET_VERBOSE=1`` or ``PODTARGET_TRACEBACK=1`` keeps them.
    """
    logging.basicConfig(level=level, format=fmt)
    verbose = bool(os.environ.get(VERBOSE_ENV))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not (verbose or os.environ.get(TRACEBACK_ENV)):
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, RaisedAgainFilter) for f in handler.filters):
                handler.addFilter(RaisedAgainFilter())


class RaisedAgainFilter(logging.Filter):
    """Drops Beam's error records that the command reports itself: a failing step's error with its traceback
    (the runner re-raises the exception, and the command prints it as one line), and Beam's records after a
    Ctrl-C (the command says ``interrupted``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("apache_beam"):
            return True
        if _interrupted.is_set():
            return False
        return not (record.levelno >= logging.ERROR and record.exc_info)


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


# The step a Beam runner appends to an error it re-raises: which step failed matters to a maintainer, not to the user
# whose input it was (PODTARGET_TRACEBACK=1 shows the whole traceback).
_BEAM_STEP = re.compile(r" \[while running '[^\]]*'\]$")
# A make variable whose value is a placeholder (DATE=YYYY-MM-DD, MODEL=models/<run>): when the flag in the message
# carries a value, the variable is shown with it (--date=2026-03-05 (make: DATE=2026-03-05)).
_PLACEHOLDER = re.compile(r"YYYY|<")


def one_line(exc: BaseException, make_variables: Mapping[str, str] = {}) -> str:
    """``exc`` as one line: its message (the first line of it; its class when it has none), with the make
    variables of the flags it names when run from make."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _BEAM_STEP.sub("", text)
    if isinstance(exc, KeyError | AttributeError | TypeError | NameError | IndexError):
        text = f"{type(exc).__name__}: {text} (a bug, not a bad input: rerun with {TRACEBACK_ENV}=1 and report it)"
    if os.environ.get("MAKELEVEL"):
        for flag, variable in make_variables.items():
            text = re.sub(rf"({re.escape(flag)})(?![\w-])(=\S*)?", _with_variable(variable), text, count=1)
    return text


def _with_variable(variable: str) -> Callable[[re.Match], str]:
    def replace(match: re.Match) -> str:
        given = match.group(2) or ""
        value = given[1:].rstrip(".,;:)'\"")
        after = given[1 + len(value) :]  # punctuation that ends the sentence, not the value
        name, _, placeholder = variable.partition("=")
        shown = f"{name}={value}" if value and _PLACEHOLDER.search(placeholder) else variable
        return f"{match.group(1)}{'=' + value if given else ''} (make: {shown}){after}"

    return replace


def run_cli(main: Callable[[], int | None], make_variables: Mapping[str, str] = {}) -> int:
    """Run ``main``; on an error print it as one line on stderr and return 2 (130 on Ctrl-C, also when a Beam
    runner re-raised the interrupt as another exception)."""
    with interrupts_recorded():
        try:
            return main() or 0
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            if was_interrupted():
                print("interrupted", file=sys.stderr)
                return 130
            if os.environ.get(TRACEBACK_ENV):
                raise
            print(f"error: {one_line(exc, make_variables)}", file=sys.stderr)
            return 2


# -- Ctrl-C ----------------------------------------------------------------------------------------------------------
_interrupted = threading.Event()


def _record_interrupt(signum: int, frame: Any) -> NoReturn:
    _interrupted.set()
    raise KeyboardInterrupt


def was_interrupted() -> bool:
    """Whether Ctrl-C (SIGINT) reached this process while :func:`interrupts_recorded` was in force. A Beam runner
    that runs a step in this process may re-raise the ``KeyboardInterrupt`` it caused as another exception (or
    a step's worker may fail because of it): the command still reports it as an interruption."""
    return _interrupted.is_set()


@contextlib.contextmanager
def interrupts_recorded() -> Iterator[None]:
    """Within it, SIGINT raises ``KeyboardInterrupt`` as usual and is also recorded for :func:`was_interrupted`.
    Only in the main thread, and only where SIGINT is not ignored (a background job's stays ignored)."""
    _interrupted.clear()
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):
        previous = signal.signal(signal.SIGINT, _record_interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def quiet_interrupts_while_starting() -> None:
    """For ``python -m podtarget.<package>.<command>``: Ctrl-C while the command still imports its modules (Beam,
    torch: seconds) prints ``interrupted`` and exits 130, not an import traceback.

    Called by the command packages' ``__init__``; it acts only while Python is locating a ``-m`` module
    (``sys.argv[0]`` is ``"-m"`` then, as documented for the ``-m`` switch), so importing the package from a
    program or a test changes nothing. A Ctrl-C that escapes a command later ends the same way.
    """
    if sys.argv[:1] != ["-m"]:
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(130)
        previous(kind, value, tb)

    sys.excepthook = hook


# -- flags -------------------------------------------------------------------------------------------------------------
class UsageError(ValueError):
    """A flag or value the command does not accept (printed as one line by :func:`run_cli`)."""


class CommandParser(argparse.ArgumentParser):
    """``argparse`` for the commands: flags by their whole name only (``--epoch`` is not taken for ``--epochs``),
    and a bad flag or value raises :class:`UsageError`, which :func:`run_cli` prints as one line (with the close
    flag names, and where ``--help`` lists them all) instead of argparse's usage block and exit.

        >>> parser = CommandParser("podtarget.model.train")
        >>> _ = parser.add_argument("--epochs", type=int)
        >>> parser.parse_args(["--epoch=1"])  # UsageError: unknown option --epoch=1 (did you mean --epochs?); ...
    """

    def __init__(self, module: str, description: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=f"python -m {module}", description=description, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        unknown = re.fullmatch(r"unrecognized arguments: (.*)", message)
        if unknown:
            message = "; ".join(self._unknown(arg) for arg in unknown.group(1).split())
        message = re.sub(r"^argument (\S+?)(/\S+)?: ", r"\1: ", message)  # "argument --lr: ..." -> "--lr: ..."
        raise UsageError(f"{message}; see `{self.prog} --help`")

    def _unknown(self, arg: str) -> str:
        if not arg.startswith("-"):
            return f"unexpected argument {arg!r}"
        flag = arg.split("=", 1)[0]
        flags = [o for o in self._option_string_actions if o.startswith("--")]
        # An abbreviation names the flags it starts; a typo, the flags closest to it.
        close = [o for o in flags if o.startswith(flag)][:2] or difflib.get_close_matches(flag, flags, n=2, cutoff=0.75)
        return f"unknown option {arg}" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type=``: its ``ValueError`` message becomes the flag's error as it is
    (argparse would say only ``invalid <function name> value``)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert

"""Parameter checks with one message format, after scikit-learn's parameter validation: the message names the
parameter and what it belongs to, says what was expected and what was given.

    >>> check_int("ScoringConfig", "hour", 24, low=0, high=23)
    Traceback (most recent call last):
    ...
    ValueError: The 'hour' parameter of ScoringConfig must be an int in the range [0, 23]. Got 24 instead.
    >>> check_number("TrainConfig", "lr", 0.002, above=0)
    0.002
    >>> check_choice("TrainConfig", "loss_weighting", "fixed", ("fixed", "uncertainty", "pcgrad"))
    'fixed'

A constraint the helpers do not express (a cross-field rule, a tuple's shape) raises :func:`invalid` with its own
``expected`` text, so its message reads the same way. Every helper takes ``error``, the exception class to raise
(a subclass of ``ValueError``, e.g. the model spec's ``SpecError``), and returns the value it checked (ints as
``int``, numbers as ``float``), so a caller can store the normalised value. Errors are ``ValueError``s even for a
value of the wrong type: the command-line entry points report ``TypeError`` as a bug (``common/cli.py``), and a
wrong type in a configuration is a bad input. Standard library only: every layer uses it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def invalid(owner: str, name: str, expected: str, value: object, error: type[ValueError] = ValueError) -> ValueError:
    """The error to raise when ``value`` of parameter ``name`` of ``owner`` is not ``expected``.

    >>> invalid("WorldConfig", "n_users", "an int in the range [1, inf)", 0)
    ValueError("The 'n_users' parameter of WorldConfig must be an int in the range [1, inf). Got 0 instead.")
    """
    return error(f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead.")


def check_int(
    owner: str,
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    or_none: bool = False,
    error: type[ValueError] = ValueError,
) -> int:
    """``value`` as an ``int`` if it is an integer (``bool`` is not) in ``[low, high]`` (a bound of None: none on
    that side); else raise ``error`` (whose message adds "or None" when ``or_none``: see :func:`optional`).

    >>> check_int("FeatureConfig", "top_genres", True, low=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'top_genres' parameter of FeatureConfig must be an int in the range [1, inf). Got True instead.
    """
    # bool is an Integral too, but True as a count or a window is a bug, not 1.
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and _within(int(value), low, high):
        return int(value)
    raise invalid(owner, name, _described("an int", low, high, None, None, or_none), value, error)


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    or_none: bool = False,
    error: type[ValueError] = ValueError,
) -> float:
    """``value`` as a ``float`` if it is a finite real number (an int will do; ``bool`` will not) with
    ``low <= value <= high`` and ``above < value < below`` for the bounds given; else raise ``error`` ("or None"
    in its message when ``or_none``). NaN and infinities are refused whatever the bounds.

    >>> check_number("[model]", "dropout", 1.0, low=0, below=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'dropout' parameter of [model] must be a float in the range [0, 1). Got 1.0 instead.
    """
    if low is not None and above is not None or high is not None and below is not None:
        raise TypeError("check_number takes one lower bound (low or above) and one upper bound (high or below)")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and _within(number, low, high, above, below):
            return number
    raise invalid(owner, name, _described("a float", low, high, above, below, or_none), value, error)


def check_choice(
    owner: str,
    name: str,
    value: T,
    choices: Iterable[object],
    *,
    or_none: bool = False,
    error: type[ValueError] = ValueError,
) -> T:
    """``value`` if it is one of ``choices`` (listed in the message in their order); else raise ``error`` ("or
    None" in its message when ``or_none``).

    >>> check_choice("EvaluateConfig", "split", "random", ("trainer", "mature"))
    Traceback (most recent call last):
    ...
    ValueError: The 'split' parameter of EvaluateConfig must be a str among ['trainer', 'mature']. Got 'random' instead.
    """
    choices = list(choices)
    # Equal is not enough: 1 == True, but a flag is not a number, nor a number a flag.
    if not any(value == choice and isinstance(value, bool) == isinstance(choice, bool) for choice in choices):
        kind = "a str among" if all(isinstance(c, str) for c in choices) else "one of"
        raise invalid(owner, name, f"{kind} {choices!r}" + (" or None" if or_none else ""), value, error)
    return value


def optional(check: Callable[..., T], owner: str, name: str, value: object, *args: Any, **kwargs: Any) -> T | None:
    """None for a parameter that may be None, else what ``check`` returns; a refusal then says None was allowed.

    >>> optional(check_int, "TrainConfig", "threads", None, low=1) is None
    True
    >>> optional(check_int, "TrainConfig", "threads", 0, low=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'threads' parameter of TrainConfig must be an int in the range [1, inf) or None. Got 0 instead.
    """
    if value is None:
        return None
    return check(owner, name, value, *args, or_none=True, **kwargs)


def _within(
    value: float, low: float | None, high: float | None, above: float | None = None, below: float | None = None
) -> bool:
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (above is None or value > above)
        and (below is None or value < below)
    )


def _described(
    kind: str, low: float | None, high: float | None, above: float | None, below: float | None, or_none: bool
) -> str:
    """``kind`` with its range in interval notation, as scikit-learn writes it: ``an int in the range [1, inf)``."""
    text = kind
    if (low, high, above, below) != (None, None, None, None):
        left = f"[{_number(low)}" if low is not None else f"({_number(above)}" if above is not None else "(-inf"
        right = f"{_number(high)}]" if high is not None else f"{_number(below)})" if below is not None else "inf)"
        text += f" in the range {left}, {right}"
    return text + (" or None" if or_none else "")


def _number(bound: float | None) -> str:
    # 1.0 as "1", 0.5 as "0.5": a bound is read by people, and its type is said by the kind in front of it.
    return f"{bound:g}" if isinstance(bound, float) else str(bound)

"""Options declared once: a configuration dataclass's field carries its flag's help, its bounds or choices, and how
its text parses; the command-line flags (an ``argparse`` parser: a command's :class:`~podtarget.common.cli.
CommandParser` or a Beam ``PipelineOptions`` parser), the dataclass built back from them, and the validation of a
value set from Python all read that one declaration::

    @dataclasses.dataclass
    class TrainConfig:
        epochs: int = option(5, "Most epochs.", low=1)
        tasks: list[str] | None = option(None, "Comma list of tasks (default: all).", parse=comma_list)

        def __post_init__(self) -> None:
            check_options(self)             # epochs >= 1, whether it came from a flag or from Python

    parser = CommandParser("podtarget.model.train")
    add_options(parser, TrainConfig)        # --epochs (int), --tasks (a comma list)
    config = from_options(TrainConfig, parser.parse_args(["--epochs=8"]))

What a flag is follows from the field's type: ``int``, ``float`` and ``str`` flags take a value of that type (a
field that may be None defaults to None); a ``bool`` defaulting to False is a switch (``--prior_init``), one
defaulting to True or None (undecided) gets ``--name`` and ``--no_name``; a field whose flag text needs more than a
scalar conversion (a comma list, ``KEY=VALUE`` pairs) names its ``parse``. ``none_flag`` adds a switch that sets the
field to None wherever it stands (``--no_source_balance`` for ``source_ratio``); ``repeat`` makes a list field a flag
given once per item (``--add_task=A --add_task=B``); a field without a default is a required flag. Choices are
listed in ``--help`` and checked by :func:`check_options`, so a bad value reads the same from Python, a command or
a Beam pipeline (whose parser would otherwise exit with a usage block). A field with ``cli=False`` is settable
from Python only, and checked the same. Standard library only: every layer's configurations use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .checks import check_choice, check_int, check_number, optional
from .cli import argument

OPTION = "podtarget.option"  # the key of a field's metadata that holds its Option


@dataclasses.dataclass(frozen=True)
class Option:
    """What :func:`option` declares about a field (see the module docstring)."""

    help: str
    parse: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    none_flag: str | None = None
    none_help: str = ""
    repeat: bool = False
    cli: bool = True
    metavar: str | None = None


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    parse: Callable[[str], Any] | None = None,
    choices: Iterable[Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    none_flag: str | None = None,
    none_help: str = "",
    repeat: bool = False,
    cli: bool = True,
    metavar: str | None = None,
) -> Any:
    """A dataclass field declared as an option: its default (or ``default_factory``), its help, the bounds or
    choices :func:`check_options` holds it to, and how :func:`add_options` makes it a flag.

        >>> @dataclasses.dataclass
        ... class Config:
        ...     hour: int = option(19, "Serving hour (UTC).", low=0, high=23)
        >>> [f.metadata[OPTION].high for f in dataclasses.fields(Config)]
        [23]
    """
    if low is not None and above is not None or high is not None and below is not None:
        raise TypeError("option takes one lower bound (low or above) and one upper bound (high or below)")
    declared = Option(
        help,
        parse,
        tuple(choices) if choices is not None else None,
        low,
        high,
        above,
        below,
        none_flag,
        none_help,
        repeat,
        cli,
        metavar,
    )
    metadata = {OPTION: declared}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def options_of(cls: type) -> list[tuple[dataclasses.Field, Option, type, bool]]:
    """Each declared field of dataclass ``cls`` with its :class:`Option`, its scalar type and whether it may be
    None (``int | None`` -> ``int, True``; a list's or dict's type is its container)."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(OPTION)
        if declared is not None:
            base, nullable = _scalar(hints[field.name])
            out.append((field, declared, base, nullable))
    return out


def _scalar(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (rest,) = [a for a in args if a is not type(None)]
        return _scalar(rest)[0], True
    return typing.get_origin(hint) or hint, False


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def add_options(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    defaults: Mapping[str, Any] = {},
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> None:
    """A flag ``--<field>`` on ``parser`` for every declared field of ``cls`` but ``cli=False`` ones and ``skip``
    (or for the ``only`` ones). ``defaults``: the command's default where it differs from the dataclass's (a
    required field's, or None for "as the other command decides")."""
    skipped, chosen = set(skip), None if only is None else set(only)
    for field, declared, base, _ in options_of(cls):
        if declared.cli and field.name not in skipped and (chosen is None or field.name in chosen):
            required = field.name not in defaults and _required(field)
            _add_flags(parser, field.name, declared, base, defaults.get(field.name, _default(field)), required)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _add_flags(
    parser: argparse.ArgumentParser | Any, name: str, declared: Option, base: type, default: Any, required: bool
) -> None:
    kwargs: dict[str, Any] = {"dest": name, "help": declared.help}
    if required:  # a field without a default, and no command default for it
        kwargs["required"] = True
    if declared.metavar:
        kwargs["metavar"] = declared.metavar
    switch = base is bool and declared.parse is None
    if switch:
        kwargs.update(action="store_true", default=default)
    elif declared.repeat:
        # None, not the list: argparse appends to the default object itself, which would leak between parses.
        kwargs.update(action="append", default=None, type=argument(declared.parse) if declared.parse else str)
    else:
        kwargs.update(default=default, type=argument(declared.parse) if declared.parse else base)
        if declared.choices is not None and not declared.metavar:
            # Shown in --help, checked by the dataclass: argparse's own check would exit with a usage block under a
            # Beam parser, where the dataclass's is the one-line message every command gives.
            kwargs["metavar"] = "{" + ",".join(map(str, declared.choices)) + "}"
    parser.add_argument(f"--{name}", **kwargs)
    if switch and default is not False:  # on, or undecided (None), by default: --name and --no_name
        parser.add_argument(f"--no_{name}", dest=name, action="store_false", default=default, help=f"Not --{name}.")
    if declared.none_flag:  # wins wherever it stands among the flags, as a switch should
        parser.add_argument(declared.none_flag, dest=_none_dest(name), action="store_true", help=declared.none_help)


def _none_dest(name: str) -> str:
    return f"{name}__none"


def from_options(cls: type, parsed: argparse.Namespace | Any, **values: Any) -> Any:
    """``cls`` built from the parsed flags of its declared fields (a ``Namespace``, or a Beam ``PipelineOptions``
    view: anything with the fields as attributes), and ``values`` for anything else."""
    kwargs: dict[str, Any] = {}
    for field, declared, _, _ in options_of(cls):
        if declared.cli and field.name not in values and hasattr(parsed, field.name):
            value = getattr(parsed, field.name)
            if declared.repeat and value is None:
                value = _default(field)
            if declared.none_flag and getattr(parsed, _none_dest(field.name), False):
                value = None
            kwargs[field.name] = value
    return cls(**kwargs, **values)


def check_options(config: Any, owner: str | None = None) -> None:
    """Hold every declared field of dataclass instance ``config`` to its bounds and choices, with the uniform
    message (``common/checks.py``); a field that may be None may be None. Fields of other types than int, float
    and a choice are the owner's to check."""
    owner = owner or type(config).__name__
    for field, declared, base, nullable in options_of(type(config)):
        value = getattr(config, field.name)
        bounds = {
            k: getattr(declared, k) for k in ("low", "high", "above", "below") if getattr(declared, k) is not None
        }
        if declared.choices is not None:
            check = _choice(declared.choices)
        elif base is int and not {"above", "below"} & set(bounds):
            check = check_int
        elif base is float:
            check = check_number
        else:
            if bounds:
                raise TypeError(f"{owner}.{field.name}: bounds are for int and float fields")
            continue
        if nullable:
            optional(check, owner, field.name, value, **bounds)
        else:
            check(owner, field.name, value, **bounds)


def _choice(choices: tuple[Any, ...]) -> Callable[..., Any]:
    def check(owner: str, name: str, value: object, *, or_none: bool = False) -> Any:
        return check_choice(owner, name, value, choices, or_none=or_none)

    return check


# -- parsers of flag text ----------------------------------------------------------------------------------------------
def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [x for x in (s.strip() for s in text.split(",")) if x]


def comma_ints(text: str) -> tuple[int, ...]:
    """``"1,2, 3"`` -> ``(1, 2, 3)`` (seeds, days of history); a clear error for anything else."""
    try:
        return tuple(int(x) for x in comma_list(text))
    except ValueError:
        raise ValueError(f"expected a comma list of integers, found {text!r}") from None


def assignments(convert: Callable[[str], Any], expected: str) -> Callable[[str], dict[str, Any]]:
    """A parser of ``NAME=VALUE,...`` into a dict, each value converted; ``expected`` names the form in errors.

    >>> assignments(float, "TASK=NUMBER")("Click=0.5,Like=2")
    {'Click': 0.5, 'Like': 2.0}
    """

    def parse(text: str) -> dict[str, Any]:
        out = {}
        for part in comma_list(text):
            name, equals, value = part.partition("=")
            try:
                if not (name and equals):
                    raise ValueError(part)
                out[name] = convert(value)
            except ValueError:
                raise ValueError(f"{part!r}: expected {expected}") from None
        return out

    parse.__name__ = f"assignments of {expected}"
    return parse


def comma_names(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``: :func:`comma_list` for fields that hold tuples."""
    return tuple(comma_list(text))


def comma_floats(text: str) -> tuple[float, ...]:
    """``"0.7,0.15,0.15"`` -> ``(0.7, 0.15, 0.15)`` (how many, and their range, are the field's to check)."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r}: expected comma-separated numbers") from None

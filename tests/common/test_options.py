"""common/options.py: one declaration per option gives the flag, the parsed dataclass and the checks."""

from __future__ import annotations

import dataclasses

import pytest

from podtarget.common.cli import CommandParser, UsageError
from podtarget.common.options import (
    add_options,
    assignments,
    check_options,
    comma_floats,
    comma_ints,
    comma_list,
    from_options,
    option,
)


@dataclasses.dataclass
class Config:
    path: str = option(help="Where.")
    epochs: int = option(5, "Most epochs.", low=1)
    lr: float = option(0.002, "Rate.", above=0)
    ratio: float | None = option(0.5, "Share.", above=0, below=1, none_flag="--no_balance", none_help="Natural mix.")
    mode: str = option("fixed", "How.", choices=("fixed", "uncertainty"))
    threads: int | None = option(None, "Threads.", low=1)
    tasks: list[str] | None = option(None, "Comma list.", parse=comma_list)
    weights: dict[str, float] = option(default_factory=dict, help="K=V.", parse=assignments(float, "TASK=NUMBER"))
    add: list[str] = option(default_factory=list, help="Repeated.", repeat=True)
    prior: bool = option(False, "A switch.")
    mask: bool = option(True, "On by default.")
    progress: bool | None = option(None, "Undecided by default.")
    chunk: int = option(16, "Python only.", low=1, cli=False)

    def __post_init__(self) -> None:
        check_options(self)


def parse(*argv: str, **values) -> Config:
    parser = CommandParser("podtarget.test")
    add_options(parser, Config, defaults={"path": "./here"})
    return from_options(Config, parser.parse_args(list(argv)), **values)


def test_the_flags_follow_the_declarations():
    config = parse()
    assert config == Config(path="./here")
    config = parse(
        "--epochs=8", "--lr=0.01", "--mode=uncertainty", "--threads=2", "--tasks=A, B", "--weights=A=0.5,B=2",
        "--add=x", "--add=y", "--prior", "--no_mask", "--progress",
    )  # fmt: skip
    assert (config.epochs, config.lr, config.mode, config.threads) == (8, 0.01, "uncertainty", 2)
    assert (config.tasks, config.weights, config.add) == (["A", "B"], {"A": 0.5, "B": 2.0}, ["x", "y"])
    assert (config.prior, config.mask, config.progress) == (True, False, True)
    assert parse("--no_progress").progress is False
    assert parse().add == [] and parse("--add=z").add == ["z"]  # no default list shared between parses


def test_help_lists_each_option_once_with_its_choices():
    parser = CommandParser("podtarget.test")
    add_options(parser, Config, defaults={"path": "./here"})
    text = parser.format_help()
    assert "--mode {fixed,uncertainty}" in text and "--no_balance" in text and "--chunk" not in text
    assert text.index("--mask") < text.index("--no_mask")


def test_a_none_flag_wins_wherever_it_stands():
    assert parse("--no_balance", "--ratio=0.3").ratio is None
    assert parse("--ratio=0.3", "--no_balance").ratio is None
    assert parse("--ratio=0.3").ratio == 0.3


def test_python_only_fields_are_no_flags_but_are_checked():
    with pytest.raises(UsageError, match=r"unknown option --chunk=2"):
        parse("--chunk=2")
    assert parse(chunk=4).chunk == 4
    with pytest.raises(ValueError, match=r"^The 'chunk' parameter of Config must be an int in the range \[1, inf\)"):
        Config(path="x", chunk=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs=0"], "The 'epochs' parameter of Config must be an int in the range [1, inf). Got 0 instead."),
        (["--ratio=1.5"], "The 'ratio' parameter of Config must be a float in the range (0, 1) or None. Got 1.5"),
        (["--threads=0"], "The 'threads' parameter of Config must be an int in the range [1, inf) or None. Got 0"),
        (["--epochs=x"], "--epochs: invalid int value: 'x'"),
        (["--mode=adaptive"], "The 'mode' parameter of Config must be a str among ['fixed', 'uncertainty']. Got 'ad"),
        (["--weights=A=high"], "--weights: 'A=high': expected TASK=NUMBER"),
        (["--weights=A"], "--weights: 'A': expected TASK=NUMBER"),
    ],
)
def test_a_bad_value_is_one_message_naming_the_option(argv, message):
    with pytest.raises(ValueError) as raised:
        parse(*argv)
    assert message in str(raised.value)


def test_python_values_meet_the_same_checks_as_flags():
    with pytest.raises(
        ValueError, match=r"The 'mode' parameter of Config must be a str among \['fixed', 'uncertainty'\]"
    ):
        Config(path="x", mode="adaptive")
    with pytest.raises(ValueError, match=r"The 'lr' parameter of Config must be a float in the range \(0, inf\)"):
        Config(path="x", lr=0)
    Config(path="x", ratio=None, threads=None)  # None where the type allows it


def test_bounds_are_for_numbers_and_one_per_side():
    with pytest.raises(TypeError, match="one lower bound"):
        option(1, "x", low=0, above=0)

    @dataclasses.dataclass
    class Wrong:
        name: str = option("a", "A name.", low=1)

    with pytest.raises(TypeError, match="bounds are for int and float fields"):
        check_options(Wrong())


def test_text_parsers():
    assert comma_list(" a, b,,c ") == ["a", "b", "c"]
    assert comma_ints("1,2, 3") == (1, 2, 3)
    with pytest.raises(ValueError, match="expected a comma list of integers, found '1,x'"):
        comma_ints("1,x")
    assert comma_floats("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    with pytest.raises(ValueError, match="expected comma-separated numbers"):
        comma_floats("0.7,a")
    assert assignments(int, "SOURCE=DAYS")("ad=3") == {"ad": 3}


def test_a_comma_list_of_integers_is_one_flag_value():
    @dataclasses.dataclass
    class Seeds:
        seeds: tuple[int, ...] = option((1,), "Comma list of seeds.", parse=comma_ints)

    parser = CommandParser("podtarget.some.command")
    add_options(parser, Seeds)
    assert from_options(Seeds, parser.parse_args(["--seeds=4,5"])).seeds == (4, 5)
    assert comma_ints("7,") == (7,) and comma_ints("") == ()
    with pytest.raises(UsageError) as error:
        parser.parse_args(["--seeds=1,x"])
    expected = "--seeds: expected a comma list of integers, found '1,x'; see `python -m podtarget.some.command --help`"
    assert str(error.value) == expected


def test_a_field_without_a_default_is_a_required_flag():
    parser = CommandParser("podtarget.test")
    add_options(parser, Config)
    with pytest.raises(UsageError, match="the following arguments are required: --path"):
        parser.parse_args([])

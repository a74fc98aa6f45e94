"""The parameter checks: what passes comes back normalised, what fails names the parameter, its owner, what was
expected and what was given, in one format."""

import doctest
import math

import numpy as np
import pytest

from podtarget.common import checks
from podtarget.common.checks import check_choice, check_int, check_number, invalid, optional


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(checks).failed == 0


def test_the_message_names_parameter_owner_expectation_and_value():
    error = invalid("WorldConfig", "n_users", "an int in the range [1, inf)", "20k")
    assert isinstance(error, ValueError)
    assert (
        str(error) == "The 'n_users' parameter of WorldConfig must be an int in the range [1, inf). Got '20k' instead."
    )


def test_the_error_class_is_the_callers():
    class SpecError(ValueError):
        pass

    with pytest.raises(
        SpecError, match=r"^The 'experts' parameter of \[model\] must be an int in the range \[1, inf\)"
    ):
        check_int("[model]", "experts", 0, low=1, error=SpecError)


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (0, 1, None, "an int in the range [1, inf)"),
        (24, 0, 23, "an int in the range [0, 23]"),
        (1, None, 0, "an int in the range (-inf, 0]"),
        (True, 0, None, "an int in the range [0, inf)"),
        (2.0, 1, None, "an int in the range [1, inf)"),
        ("3", 1, None, "an int in the range [1, inf)"),
        (None, 1, None, "an int in the range [1, inf)"),
        (1.5, None, None, "an int"),
    ],
)
def test_check_int_refuses_what_is_not_an_int_in_range(value, low, high, expected):
    with pytest.raises(ValueError) as raised:
        check_int("Owner", "count", value, low=low, high=high)
    assert str(raised.value) == f"The 'count' parameter of Owner must be {expected}. Got {value!r} instead."


def test_check_int_returns_plain_ints_and_optional_takes_none():
    assert check_int("Owner", "count", 5, low=1, high=5) == 5
    numpy_int = check_int("Owner", "count", np.int64(3), low=1)
    assert numpy_int == 3 and type(numpy_int) is int
    assert optional(check_int, "Owner", "threads", None, low=1) is None
    with pytest.raises(ValueError, match=r"must be an int in the range \[1, inf\) or None\. Got 0 instead\.$"):
        optional(check_int, "Owner", "threads", 0, low=1)


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [
        (0.0, {"above": 0}, "a float in the range (0, inf)"),
        (1.0, {"low": 0, "below": 1}, "a float in the range [0, 1)"),
        (1.5, {"above": 0, "high": 1}, "a float in the range (0, 1]"),
        (0.25, {"low": 0.5, "below": 1}, "a float in the range [0.5, 1)"),
        (math.nan, {}, "a float"),
        (math.inf, {"above": 0}, "a float in the range (0, inf)"),
        (-math.inf, {"high": 0}, "a float in the range (-inf, 0]"),
        (False, {"low": 0}, "a float in the range [0, inf)"),
        ("0.1", {"low": 0}, "a float in the range [0, inf)"),
    ],
)
def test_check_number_refuses_what_is_not_a_finite_number_in_range(value, bounds, expected):
    with pytest.raises(ValueError) as raised:
        check_number("Owner", "rate", value, **bounds)
    assert str(raised.value) == f"The 'rate' parameter of Owner must be {expected}. Got {value!r} instead."


def test_check_number_returns_floats_and_takes_ints_and_bounds_themselves():
    assert check_number("Owner", "rate", 0, low=0, below=1) == 0.0
    assert type(check_number("Owner", "rate", np.float32(0.5), above=0)) is float
    assert check_number("Owner", "rate", 1, low=0, high=1) == 1.0
    assert optional(check_number, "Owner", "ratio", None, above=0, below=1) is None


def test_two_bounds_on_one_side_are_a_programming_error():
    with pytest.raises(TypeError, match="one lower bound"):
        check_number("Owner", "rate", 0.5, low=0, above=0)
    with pytest.raises(TypeError, match="one upper bound"):
        check_number("Owner", "rate", 0.5, high=1, below=1)


def test_check_choice_lists_the_choices_in_order():
    assert check_choice("Owner", "mode", "b", ("a", "b")) == "b"
    assert optional(check_choice, "Owner", "mode", None, ("a", "b")) is None
    with pytest.raises(ValueError) as raised:
        check_choice("Owner", "mode", "c", ("b", "a"))
    assert str(raised.value) == "The 'mode' parameter of Owner must be a str among ['b', 'a']. Got 'c' instead."
    with pytest.raises(ValueError, match=r"must be a str among \['a'\] or None\. Got 1 instead\.$"):
        optional(check_choice, "Owner", "mode", 1, ("a",))


def test_check_choice_does_not_take_a_flag_for_a_number():
    assert check_choice("Owner", "level", 1, (0, 1, 2)) == 1
    with pytest.raises(ValueError, match=r"must be one of \[0, 1, 2\]\. Got True instead\.$"):
        check_choice("Owner", "level", True, (0, 1, 2))

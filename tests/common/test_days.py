import datetime

import pytest

from podtarget.common.days import day_range, days_from, parse_day, parse_days

D = datetime.date


def test_ranges_and_lists_mix_in_the_order_written():
    assert parse_days("2026-03-02..2026-03-04, 2026-03-09") == [
        D(2026, 3, 2),
        D(2026, 3, 3),
        D(2026, 3, 4),
        D(2026, 3, 9),
    ]
    assert parse_days("2026-03-09,2026-03-02") == [D(2026, 3, 9), D(2026, 3, 2)]
    assert parse_days("") == []


def test_a_range_crossing_a_month_end_is_inclusive():
    assert day_range(D(2026, 2, 27), D(2026, 3, 2)) == days_from(D(2026, 2, 27), 4)
    assert day_range(D(2026, 3, 2), D(2026, 3, 2)) == [D(2026, 3, 2)]
    with pytest.raises(ValueError, match="end 2026-03-02 is before start 2026-03-03"):
        day_range(D(2026, 3, 3), D(2026, 3, 2))


@pytest.mark.parametrize(
    "text, message",
    [
        ("2026/03/05", "expected a day as YYYY-MM-DD, got '2026/03/05'"),
        ("2026-03-32", "2026-03-32 is not a day: March 2026 has 31 days"),
        ("2026-03-05..2026-03-02", "end 2026-03-02 is before start 2026-03-05"),
        ("yesterday", "expected YYYY-MM-DD, a..b ranges or a comma list"),
    ],
)
def test_bad_days_say_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message):
        parse_days(text)


def test_one_day():
    assert parse_day(" 2026-03-02 ") == D(2026, 3, 2)
    with pytest.raises(ValueError, match="got '03/02/2026'"):
        parse_day("03/02/2026")


@pytest.mark.parametrize(
    "text, message",
    [
        ("2026-02-30", "2026-02-30 is not a day: February 2026 has 28 days"),
        ("2026-13-01", "2026-13-01 is not a day: there is no month 13"),
        ("2026-04-00", "2026-04-00 is not a day: April 2026 has 30 days"),
    ],
)
def test_a_day_in_the_right_format_that_the_calendar_lacks_is_said_to_not_exist(text, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_day(text)
    assert parse_day("2028-02-29") == D(2028, 2, 29)  # a leap day is a day

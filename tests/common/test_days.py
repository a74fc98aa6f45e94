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
        ("2026-03-32", "expected a day as YYYY-MM-DD, got '2026-03-32'"),
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

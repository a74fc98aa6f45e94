"""Day lists and ranges as every command reads them: ISO days (``YYYY-MM-DD``), inclusive ``a..b`` ranges and
comma lists, in UTC calendar days.

    >>> parse_days("2026-03-02..2026-03-04,2026-03-09")
    [datetime.date(2026, 3, 2), datetime.date(2026, 3, 3), datetime.date(2026, 3, 4), datetime.date(2026, 3, 9)]
    >>> day_range(datetime.date(2026, 3, 2), datetime.date(2026, 3, 3))
    [datetime.date(2026, 3, 2), datetime.date(2026, 3, 3)]
"""

from __future__ import annotations

import calendar
import datetime
import re


def day_range(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    """Every day from ``start`` to ``end``, both included; ``end`` before ``start`` is an error."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return days_from(start, (end - start).days + 1)


def days_from(start: datetime.date, count: int) -> list[datetime.date]:
    """``count`` consecutive days from ``start`` on."""
    return [start + datetime.timedelta(days=i) for i in range(count)]


_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_day(text: str) -> datetime.date:
    """One ISO day; anything else is a ``ValueError`` that says what was wrong: the format, or a day that does not
    exist in the calendar.

        >>> parse_day("2026-02-30")
        Traceback (most recent call last):
        ...
        ValueError: 2026-02-30 is not a day: February 2026 has 28 days
    """
    match = _ISO_DAY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text!r}")
    year, month, day = (int(g) for g in match.groups())
    if not 1 <= month <= 12:
        raise ValueError(f"{text.strip()} is not a day: there is no month {month}")
    days_in_month = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days_in_month:
        month_name = calendar.month_name[month]
        raise ValueError(f"{text.strip()} is not a day: {month_name} {year} has {days_in_month} days")
    return datetime.date(year, month, day)


def parse_days(text: str) -> list[datetime.date]:
    """``2026-03-02..2026-03-08`` (an inclusive range), ``2026-03-02,2026-03-05`` (a list), or a mix of both, in
    the order written; an empty string is no days."""
    days: list[datetime.date] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if ".." in part:
                first, last = (parse_day(x) for x in part.split("..", 1))
                days += day_range(first, last)
            else:
                days.append(parse_day(part))
        except ValueError as exc:
            raise ValueError(f"days {text!r}: expected YYYY-MM-DD, a..b ranges or a comma list ({exc})") from None
    return days

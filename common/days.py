"""Day lists and ranges as every command reads them: ISO days (``YYYY-MM-DD``), inclusive ``a..b`` ranges and
comma lists, in UTC calendar days.

    >>> parse_days("2026-03-02..2026-03-04,2026-03-09")
    [datetime.date(2026, 3, 2), datetime.date(2026, 3, 3), datetime.date(2026, 3, 4), datetime.date(2026, 3, 9)]
    >>> day_range(datetime.date(2026, 3, 2), datetime.date(2026, 3, 3))
    [datetime.date(2026, 3, 2), datetime.date(2026, 3, 3)]
"""

from __future__ import annotations

import datetime


def day_range(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    """Every day from ``start`` to ``end``, both included; ``end`` before ``start`` is an error."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return days_from(start, (end - start).days + 1)


def days_from(start: datetime.date, count: int) -> list[datetime.date]:
    """``count`` consecutive days from ``start`` on."""
    return [start + datetime.timedelta(days=i) for i in range(count)]


def parse_day(text: str) -> datetime.date:
    """One ISO day; anything else is a ``ValueError`` that says what was expected."""
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


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

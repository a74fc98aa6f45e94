"""Time units of the data contracts: every ``event_ts`` is epoch milliseconds, UTC; a day is a UTC calendar day.

The one home of these constants (each module that converts times imports them from here).
"""

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

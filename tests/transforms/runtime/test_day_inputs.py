"""Planning a day's inputs: the log horizon and label maturity, and how many user buckets a plan makes."""

import datetime

import pytest

from podtarget.schemas.units import MS_PER_DAY
from podtarget.transforms.arrow.validation import day_start_ms
from podtarget.transforms.runtime.day_inputs import (
    MAX_INPUT_BYTES_PER_BUCKET,
    FileSpec,
    effective_buckets,
    horizon_end_ms,
    logs_needed_through,
)

D = datetime.date(2026, 3, 3)


@pytest.mark.parametrize(("window_days", "lateness"), [(7, 2), (3, 2), (1, 0), (2.5, 1)])
def test_logs_needed_through_is_the_first_day_that_covers_every_window(window_days, lateness):
    window = int(window_days * MS_PER_DAY)
    needed = logs_needed_through(D, window, lateness)
    last_window_end = day_start_ms(D) + MS_PER_DAY + window
    assert horizon_end_ms(needed, lateness) >= last_window_end
    assert horizon_end_ms(needed - datetime.timedelta(days=1), lateness) < last_window_end


def test_bucket_count_grows_with_the_input_so_grouped_elements_stay_small():
    def files(total_mib: int) -> list[FileSpec]:
        return [FileSpec("stream", "2026-03-03", "p", "stream", True, index=0, size_bytes=total_mib * 1024 * 1024)]

    assert effective_buckets(8, files(14)) == 8  # a demo day keeps the requested count
    assert effective_buckets(8, files(358)) == -(-358 * 1024 * 1024 // MAX_INPUT_BYTES_PER_BUCKET) == 45
    assert effective_buckets(64, files(358)) == 64
    # The day's own impressions bound a bucket's rows, whatever the context around them.
    impressions = FileSpec("ad_impression", "2026-03-03", "i", "target", True, index=1, size_bytes=60 * 1024 * 1024)
    assert effective_buckets(8, [*files(14), impressions]) == 80

"""The temporal train/validation/test split of the table's days (explicit day lists or fractions of the days):

>>> split = split_days(table.days, fractions=(0.7, 0.15, 0.15))
>>> split.train[-1] < split.valid[0] < split.test[0]
True
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence

from .errors import DataError


@dataclasses.dataclass(frozen=True)
class DaySplit:
    train: tuple[datetime.date, ...]
    valid: tuple[datetime.date, ...]
    test: tuple[datetime.date, ...]
    excluded: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        return {
            "train": [d.isoformat() for d in self.train],
            "valid": [d.isoformat() for d in self.valid],
            "test": [d.isoformat() for d in self.test],
            "excluded": list(self.excluded),
        }


def split_days(
    available: Sequence[datetime.date],
    *,
    train: Sequence[datetime.date] | None = None,
    valid: Sequence[datetime.date] | None = None,
    test: Sequence[datetime.date] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    excluded: Sequence[dict] = (),
) -> DaySplit:
    """A temporal split: explicit day lists win; otherwise the available days in order are cut by ``fractions``
    (earliest for training, then validation, the most recent for testing), with at least one day each."""
    available = sorted(available)
    if train is not None or valid is not None or test is not None:
        if train is None:
            raise DataError("explicit splits need --train_days (and usually --valid_days and --test_days)")
        chosen = {"train": list(train), "valid": list(valid or []), "test": list(test or [])}
        for name, days in chosen.items():
            missing = [d.isoformat() for d in days if d not in available]
            if missing:
                raise DataError(f"--{name}_days: {missing} not in the table; available: {_span(available)}")
        return DaySplit(tuple(chosen["train"]), tuple(chosen["valid"]), tuple(chosen["test"]), tuple(excluded))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise DataError(f"split fractions: expected three non-negative numbers summing to 1, found {fractions}")
    n = len(available)
    n_valid = max(1, round(fractions[1] * n)) if fractions[1] > 0 else 0
    n_test = max(1, round(fractions[2] * n)) if fractions[2] > 0 else 0
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise DataError(_too_few(available, n_valid + n_test + 1, excluded))
    return DaySplit(
        tuple(available[:n_train]),
        tuple(available[n_train : n_train + n_valid]),
        tuple(available[n_train + n_valid :]),
        tuple(excluded),
    )


def _too_few(available: Sequence[datetime.date], needed: int, excluded: Sequence[dict]) -> str:
    """Why no split is possible: how many days are usable, which were left out and why, and what to do."""
    text = f"{len(available)} usable day(s) ({_span(available)}) are too few for a train/valid/test split (it needs {needed})"
    by_reason: dict[str, list[str]] = {}
    for entry in excluded:
        by_reason.setdefault(entry["reason"], []).append(entry["day"])
    left_out = "; ".join(f"{len(days)} day(s) {_span(sorted(map(datetime.date.fromisoformat, days)))}: {reason}"
                         for reason, days in by_reason.items())
    if left_out:
        text += f"; left out: {left_out}"
    return (
        text + ". A day's labels mature once the logs cover its attribution windows (with the default windows, "
        "streams need the logs of the 5 days after it; make backfill rebuilds a day built with UNOBSERVED=1 once "
        "they arrive): add more days of logs, or choose the days with --train_days, --valid_days and --test_days"
    )


def _span(days: Sequence[datetime.date]) -> str:
    return f"{days[0]}..{days[-1]} ({len(days)} days)" if days else "none"

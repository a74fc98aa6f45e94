"""Mergeable run statistics: nested dicts of counts, summed across workers by ``CombineGlobally(merge_counts)``.

>>> merge_counts([{"read": {"click": 3}}, {"read": {"click": 2, "stream": 1}}])
{'read': {'click': 5, 'stream': 1}}

Lists of numbers are summed element-wise (equal lengths); lists of dicts are concatenated.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def merge_counts(parts: Iterable[dict]) -> dict:
    """Sum nested count dicts from every worker into one (associative, so Beam may merge partial results)."""

    def add(into: dict, other: dict) -> None:
        for key, value in other.items():
            if isinstance(value, dict):
                add(into.setdefault(key, {}), value)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                into.setdefault(key, []).extend(value)
            elif isinstance(value, list):
                current = into.get(key) or [0] * len(value)
                into[key] = (np.asarray(current) + np.asarray(value)).tolist() if value else current
            else:
                into[key] = into.get(key, 0) + value

    merged: dict = {}
    for part in parts:
        add(merged, part)
    return merged

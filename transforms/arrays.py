"""Vectorised set operations on integer id arrays, tuned for millions of ids on this numpy.

Two measured traps (numpy 2.4, 2.4M uint64 ids): ``np.unique`` without ``return_*`` takes the hash path and needs
2.3 s where a sort and a neighbour compare need 0.06 s; ``np.searchsorted`` of unsorted needles jumps all over the
haystack (0.38 s for 600k needles in 2M ids) where sorted needles walk it in order (0.06 s, argsort included).

>>> import numpy as np
>>> sorted_unique(np.array([3, 1, 3, 2]))
array([1, 2, 3])
>>> isin_sorted(np.array([5, 2, 9]), np.array([1, 2, 5]))
array([ True,  True, False])
"""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct ``values``, sorted (like ``np.unique`` for integer arrays, several times faster)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


def isin_sorted(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the ``values`` found in ``sorted_ids`` (sorted ascending, unique or not)."""
    if len(sorted_ids) == 0 or len(values) == 0:
        return np.zeros(len(values), bool)
    order = np.argsort(values, kind="stable")
    needles = values[order]
    pos = np.searchsorted(sorted_ids, needles).clip(max=len(sorted_ids) - 1)
    found = np.empty(len(values), bool)
    found[order] = sorted_ids[pos] == needles
    return found

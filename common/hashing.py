"""Stable 64-bit integer hashing: the same on every machine and run, unlike Python's ``hash``.

Two uses, two entry points over one finaliser: :func:`mix64` spreads ids over buckets and pair keys (the daily
pipelines' user buckets); :func:`splitmix64` (Vigna's generator step: add the golden-ratio increment, then mix)
hashes feature values into embedding buckets. Both are part of stored contracts (file buckets, trained models'
embedding rows), so neither may change.

    >>> hex(splitmix64(np.array([0], np.uint64))[0])
    '0xe220a8397b1dcdaf'
"""

from __future__ import annotations

import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of unsigned 64-bit values (a new array; wraps around on overflow)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=True)
        z ^= z >> np.uint64(30)
        z *= MIX1
        z ^= z >> np.uint64(27)
        z *= MIX2
        z ^= z >> np.uint64(31)
        return z


def splitmix64(values: np.ndarray) -> np.ndarray:
    """One splitmix64 step per value: ``mix64(value + golden gamma)``."""
    with np.errstate(over="ignore"):
        return mix64(values.astype(np.uint64) + GOLDEN_GAMMA)

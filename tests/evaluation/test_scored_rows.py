"""The test rows of the ablations: a figure leaves out the test days whose labels are mostly unobserved. The rows'
scores are checked against the runs' own in test_ablations.py."""

from __future__ import annotations

import numpy as np

from podtarget.evaluation.scored_rows import immature_days


def test_a_figure_leaves_out_test_days_whose_labels_are_mostly_unobserved():
    """As training does: an immature day's few observed labels are early-credited positives, not a sample."""
    observed = np.array([True, True, False, True, False, False, True, True])
    mine = np.array([True, True, True, False, True, True, True, False])  # the figure's rows (e.g. promotions)
    day_of_row = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # Day 0: 2 of its 3 rows observed (kept); day 1: 1 of 3 (left out); rows of other sources do not count.
    assert immature_days(observed, mine, day_of_row, ["2026-03-09", "2026-03-10"]) == ["2026-03-10"]
    assert immature_days(observed, np.zeros(8, bool), day_of_row, ["2026-03-09", "2026-03-10"]) == []

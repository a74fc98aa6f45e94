"""Label maturity: per day and source, how many labels are still unobserved (a day whose outcome windows the logs
do not cover yet), which days are usable for early stopping, and each task's positive rate in training::

    >>> catalog = label_catalog(spec, table, table.days)     # reads the source and label columns only
    >>> keep, excluded = usable_days(spec, catalog)
    >>> immature = immature_labels(spec, catalog)            # per day: (label, source) pairs treated as unobserved
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .tables import (ExampleTable, read_chunks)
from ..spec import Spec


def label_catalog(spec: Spec, table: ExampleTable, days: Iterable[datetime.date]) -> dict:
    """Per day, per source: rows; per label column and source: nulls and positives. Reads two small columns."""
    labels = sorted({t.label for t in spec.tasks})
    catalog: dict[str, dict] = {}
    for day in days:
        entry: dict[str, dict] = {"rows": {}, "labels": {lab: {} for lab in labels}}
        columns = [spec.source_column, *labels] if spec.source_column else labels
        for _, chunk in read_chunks(table, table.units([day]), columns, 1 << 20):
            for s in spec.sources:
                if spec.source_column is None:  # one implicit source: every row
                    rows_s = pa.array(np.ones(chunk.num_rows, bool))
                else:
                    rows_s = pc.equal(chunk.column(spec.source_column), s)
                n = int(pc.sum(rows_s).as_py() or 0)
                entry["rows"][s] = entry["rows"].get(s, 0) + n
                for lab in labels:
                    col = pc.cast(pc.filter(chunk.column(lab), rows_s), pa.int64())
                    counts = entry["labels"][lab].setdefault(s, {"nulls": 0, "positives": 0})
                    counts["nulls"] += col.null_count
                    counts["positives"] += int(pc.sum(pc.greater(col, 0)).as_py() or 0)
        catalog[day.isoformat()] = entry
    return catalog


def immature_labels(spec: Spec, catalog: Mapping[str, dict]) -> dict[str, list[tuple[str, str]]]:
    """Per day, the (label column, source) pairs whose null share exceeds ``spec.max_unobserved_share``: such a
    day's observed labels are the early-credited positives only, so all of them are treated as unobserved."""
    out: dict[str, list[tuple[str, str]]] = {}
    for day, entry in catalog.items():
        pairs = []
        for lab, by_source in entry["labels"].items():
            for s, counts in by_source.items():
                rows = entry["rows"].get(s, 0)
                if rows and counts["nulls"] / rows > spec.max_unobserved_share:
                    pairs.append((lab, s))
        out[day] = sorted(pairs)
    return out


def usable_days(spec: Spec, catalog: Mapping[str, dict]) -> tuple[list[datetime.date], list[dict]]:
    """Days where at least one early-stopping task (any task if none are named) has mature labels on its own
    source; the others (typically the most recent days, whose windows the logs do not cover yet) are excluded."""
    immature = immature_labels(spec, catalog)
    tasks = [spec.task(t) for t in spec.early_stopping_tasks] or list(spec.tasks)
    keep, excluded = [], []
    for day, entry in sorted(catalog.items()):
        lacking = [
            t.name
            for t in tasks
            if entry["rows"].get(t.source, 0) == 0 or (t.label, t.source) in set(map(tuple, immature[day]))
        ]
        if lacking and len(lacking) == len(tasks):
            excluded.append({"day": day, "reason": f"labels of {', '.join(lacking)} unobserved (immature)"})
        else:
            keep.append(datetime.date.fromisoformat(day))
    return keep, excluded


def task_priors(
    spec: Spec,
    catalog: Mapping[str, dict],
    days: Iterable[datetime.date],
    shares: Mapping[str, float] | None = None,
) -> dict[str, float | None]:
    """Each task's positive rate as training will see it: over ``days``, the observed labels (immature ones left
    out) of the sources that train the task, each source weighted by its share of a batch (``shares``, e.g. the
    sampling plan's) or, without shares, by its rows. None for a task without observed training labels.

        >>> task_priors(spec, catalog, split.train, {"ad": 4096, "promo": 4096})["Click"]
        0.0139...
    """
    immature = immature_labels(spec, catalog)
    priors: dict[str, float | None] = {}
    for task in spec.tasks:
        rates, weights = [], []
        for s in spec.training_sources:
            if not spec.trains_row(s, task.name) or (shares is not None and not shares.get(s)):
                continue
            observed = positives = 0
            for day in days:
                entry = catalog.get(day.isoformat())
                if entry is None or [task.label, s] in map(list, immature.get(day.isoformat(), ())):
                    continue
                counts = entry["labels"].get(task.label, {}).get(s, {"nulls": 0, "positives": 0})
                observed += entry["rows"].get(s, 0) - counts["nulls"]
                positives += counts["positives"]
            if observed:
                rates.append(positives / observed)
                weights.append(shares[s] if shares is not None else observed)
        priors[task.name] = float(np.average(rates, weights=weights)) if rates else None
    return priors

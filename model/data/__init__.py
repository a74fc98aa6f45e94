"""Example tables on disk, the feature encoder, and source-balanced streaming of mini-batches.

Everything here works on any Parquet table laid out by day (``<root>/dt=YYYY-MM-DD/*.parquet``, local or any
filesystem ``pyarrow.fs`` resolves, e.g. ``gs://``) plus a :class:`~podtarget.model.spec.Spec`. Tables are read a row
group at a time, never whole::

    >>> table = ExampleTable.open("./data/examples")
    >>> split = split_days(table.days, fractions=(0.7, 0.15, 0.15))
    >>> stats = fit_statistics(spec, table, split.train)          # one streamed pass over the training days
    >>> encoder = Encoder(spec, stats)
    >>> batch = encoder.encode(record_batch)                       # the exact path training and scoring share

The encoder turns Arrow columns into a :class:`RowBlock` (numpy, per row) and a block into a :class:`Batch`
(tensors for one forward pass). All categorical features share one fused embedding table, each feature owning a
contiguous block of rows (like torchrec's KeyedJaggedTensor); a batch carries the sorted unique table rows it
touches, so the embedding gradient is row-sparse and already coalesced.

One module per concern, in the order a training run uses them:

- ``tables``: the day-partitioned table, its ``_SUCCESS.json`` markers and row groups, read in chunks;
- ``splits``: the temporal train/validation/test split of the days;
- ``labels``: label maturity per day and source, the usable days, the tasks' positive rates;
- ``hashing``: stable bucket hashing and the other Arrow-column-to-numpy conversions;
- ``statistics``: what encoding learns from the training split (numeric mean/std, known buckets);
- ``encoding``: the encoder, ``RowBlock`` and ``Batch``;
- ``sampling``: the sampling plan and the epoch's batches (source-balanced pools), the evaluation scan;
- ``prefetch``: the background thread and bounded queue behind both;
- ``errors``: :class:`DataError`.

This module re-exports their public names, so ``from podtarget.model.data import Encoder`` works as before.
"""

from .encoding import (ROW_DTYPE, Batch, Encoder, RowBlock, gather_matrix)
from .errors import DataError
from .hashing import (HASHING, hash_buckets, hash_strings, list_parts, numeric_values)
from .labels import (immature_labels, label_catalog, task_priors, usable_days)
from .prefetch import (Prefetcher, background)
from .sampling import (BatchStream, SamplingPlan, plan_sampling, scan)
from .splits import (DaySplit, split_days)
from .statistics import (FeatureStats, fit_statistics)
from .tables import (DAY_FOLDER, ExampleTable, Unit, read_chunks, resolve_filesystem)

__all__ = [
    "DAY_FOLDER",
    "HASHING",
    "ROW_DTYPE",
    "Batch",
    "BatchStream",
    "DataError",
    "DaySplit",
    "Encoder",
    "ExampleTable",
    "FeatureStats",
    "Prefetcher",
    "RowBlock",
    "SamplingPlan",
    "Unit",
    "background",
    "fit_statistics",
    "gather_matrix",
    "hash_buckets",
    "hash_strings",
    "immature_labels",
    "label_catalog",
    "list_parts",
    "numeric_values",
    "plan_sampling",
    "read_chunks",
    "resolve_filesystem",
    "scan",
    "split_days",
    "task_priors",
    "usable_days",
]

"""Reading raw log partitions in Beam: each planned file (:mod:`podtarget.transforms.runtime.day_inputs`) read into
Arrow, validated and bucketed by user.

A pipeline building day D *owns* the partitions logged on D: their rejected rows go to its dead letters and their
rows are reconciled in its counts. Partitions of other days it reads only for context (later outcomes, competing
impressions, history). Context rows are validated exactly as their own day's run validates them (the same checks,
against the snapshots of the day that logged them), so a row rejected there never acts here; their dead letters
belong to their own day's run, and here they are counted (``context_rows_dropped``, and ``context_unreadable_files``
for a corrupt context file, whose complete blocks are still read).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import cast

import apache_beam as beam
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import pvalue

from ..arrow.validation import ReferenceIdsByDay, file_dead_letter, validate_log_rows, validation_columns
from ..runtime.bucket_work import BucketResult, ComputesBuckets
from ..runtime.day_inputs import FileSpec
from ..runtime.decode_cache import DecodeCache
from ..runtime.shuffle import BucketEmitter
from ..runtime.storage import AvroReadResult, read_avro_as_arrow

DEAD_LETTER_TAG = "dead_letter"
COUNTS_TAG = "counts"
# Keys of rejected rows a consumer asked for (``rejected_keys``), e.g. the ids of rejected impressions that a click
# of the day references: small arrays, combined after the reads.
REJECTED_TAG = "rejected_keys"
# Bookkeeping columns added to every slice, so per-bucket work can restore a deterministic order (logging day,
# then file, then row) whatever order the shuffle delivered slices in: deduplication keeps the first occurrence.
ORDER_COLUMNS = ("_pday", "_file", "_row")


def read_spec(spec: FileSpec, columns: list[str] | None, cache: DecodeCache | None) -> AvroReadResult:
    """One planned file's rows (``columns`` only, when given), through the decode cache when there is one."""
    if cache is None:
        return read_avro_as_arrow(spec.path, spec.table, columns)
    return cache.read(spec.table, spec.day, spec.path, spec.size_bytes, spec.modified, columns)


class ReadValidateBucketFn(ComputesBuckets, beam.DoFn):
    """Reads one part file, validates its rows, projects them for their role and splits them by user bucket.

    Main output: ``(bucket, (role, rows))``; tagged outputs: dead-letter tables (owned files only), counts, and the
    keys ``rejected_keys`` picks from rejected rows.
    Files are independent units of work: ``threads`` of them are read side by side, or ``processes`` worker
    processes read them (:mod:`podtarget.transforms.runtime.bucket_work`); outputs are emitted in the order files
    arrive.

    Args:
        pipeline: name used in dead letters and counters.
        run_day: the day being built (owner of partitions logged on it).
        n_buckets: number of user buckets.
        allowed_lateness_days: how far before its logging day an event may have happened.
        project: ``project(spec, rows) -> rows`` shapes valid rows for their role (must keep ``user_id``).
        columns: ``columns(spec) -> list | None``, the raw columns a context file's role needs (None: all); the
            columns validation checks are always read too.
        relevant: ``relevant(spec, rows, relevance) -> mask`` keeps only the context rows that can matter to the
            day (``relevance`` is a side input the pipeline computes); owned rows are never filtered.
        shuffle_dir: the run's file-backed shuffle folder (see :mod:`podtarget.transforms.runtime.shuffle`); None
        shuffles the
            tables through Beam.
        threads: files read side by side in this process.
        processes: worker processes that read files (0: read them in this process).
        cache: where decoded files are kept and found again (None: decode every time).
        rejected_keys: ``rejected_keys(spec, rejected_rows, relevance) -> np.ndarray | None`` picks keys of a
            file's rejected rows (owned or context) to emit under ``REJECTED_TAG``; None emits nothing.

    The main side input is the :class:`ReferenceIdsByDay` of every logging day in the plan.
    """

    def __init__(
        self,
        pipeline: str,
        run_day: datetime.date,
        n_buckets: int,
        allowed_lateness_days: int,
        project,
        columns=None,
        relevant=None,
        shuffle_dir: str | None = None,
        threads: int = 1,
        cache: DecodeCache | None = None,
        processes: int = 0,
        rejected_keys=None,
    ):
        self.pipeline = pipeline
        self.counter_namespace = pipeline
        self.run_day = run_day
        self.n_buckets = n_buckets
        self.allowed_lateness_days = allowed_lateness_days
        self.project = project
        self.columns = columns or _all_columns
        self.relevant = relevant
        self.shuffle_dir = shuffle_dir
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.processes = processes
        self.cache = cache
        self.rejected_keys = rejected_keys

    def compute_bucket(self, spec: FileSpec, reference: ReferenceIdsByDay, relevance=None) -> BucketResult:
        outputs, stats = self._read_file(spec, reference, relevance)
        counters = {
            "rows_read": stats["read"],
            "rows_dead_lettered": stats["rejected"],
            "files_unreadable": stats["unreadable"],
        }
        return BucketResult(outputs=outputs, counters=counters)

    def _read_file(self, spec: FileSpec, reference: ReferenceIdsByDay, relevance) -> tuple[list, dict]:
        """Everything one file contributes: dead letters, counts and bucket slices; plus counter increments."""
        outputs: list = []
        day = datetime.date.fromisoformat(spec.day)
        # Context files are read with only the columns their role needs (decoding is the main cost), plus those
        # validation checks: a context row is kept only if its own day keeps it.
        columns = None if spec.owned else self.columns(spec)
        if columns is not None:
            columns = list(dict.fromkeys([*columns, *validation_columns(spec.table)]))
        result = read_spec(spec, columns, self.cache)
        rows = result.table
        counts: dict = {}
        if result.error is not None:
            lost = {"path": spec.path, "table": spec.table, "day": spec.day, "rows_salvaged": rows.num_rows}
            if spec.owned:
                detail = f"{result.error}; {rows.num_rows} rows salvaged from complete blocks"
                outputs.append(
                    pvalue.TaggedOutput(
                        DEAD_LETTER_TAG,
                        file_dead_letter(
                            pipeline=self.pipeline, table=spec.table, source_path=spec.path, detail=detail
                        ),
                    )
                )
                counts["unreadable_files"] = [lost]
            else:
                # Its own day's run dead-letters the file; a reader of it as context must still say its rows
                # beyond the last complete block were missing here too.
                counts["context_unreadable_files"] = [lost]
        checked = validate_log_rows(
            rows,
            spec.table,
            day,
            reference.on(spec.day),
            allowed_lateness_days=self.allowed_lateness_days,
            source_path=spec.path,
            pipeline=self.pipeline,
        )
        if self.rejected_keys is not None and checked.rejected_rows.num_rows:
            keys = self.rejected_keys(spec, checked.rejected_rows, relevance)
            if keys is not None and len(keys):
                outputs.append(pvalue.TaggedOutput(REJECTED_TAG, keys))
        stats = {
            "read": rows.num_rows,
            "rejected": checked.rejected.num_rows if spec.owned else 0,
            "unreadable": int(result.error is not None),
        }
        if spec.owned:
            if checked.rejected.num_rows:
                outputs.append(pvalue.TaggedOutput(DEAD_LETTER_TAG, checked.rejected))
            reasons = checked.rejected.column("reason").to_pylist()
            counts["tables"] = {
                spec.table: {
                    "read": rows.num_rows,
                    "dead_letter": {r: reasons.count(r) for r in sorted(set(reasons))},
                }
            }
        else:
            counts["context_rows_read"] = {spec.table: rows.num_rows}
            counts["context_rows_dropped"] = {spec.table: checked.rejected.num_rows}
        valid = checked.valid
        if not spec.owned and self.relevant is not None and relevance is not None:
            keep = self.relevant(spec, valid, relevance)
            counts["context_rows_irrelevant"] = {spec.table: int((~keep).sum())}
            valid = valid.filter(pa.array(keep))
        outputs.append(pvalue.TaggedOutput(COUNTS_TAG, counts))
        valid = self.project(spec, valid)
        n = valid.num_rows
        valid = (
            valid.append_column("_pday", pa.array(np.full(n, (day - self.run_day).days, np.int16)))
            .append_column("_file", pa.array(np.full(n, spec.index, np.int32)))
            .append_column("_row", pa.array(np.arange(n, dtype=np.int32)))
        )
        emitter = BucketEmitter(self.n_buckets, self.shuffle_dir)
        for bucket, part in emitter.split(valid, f"{spec.index:06d}-{spec.table}"):
            outputs.append((bucket, (spec.role, part)))
        return outputs, stats


def largest_first(files: Sequence[FileSpec]) -> list[FileSpec]:
    """The plan in reading order: largest files first (ties in plan order), so the files read side by side
    finish together rather than one large file last and alone; outputs do not depend on the order."""
    return sorted(files, key=lambda f: (-f.size_bytes, f.index))


def _all_columns(spec: FileSpec) -> None:
    return None


class ReadRawByUserBucket(beam.PTransform):
    """Part files in, ``(bucket, (role, rows))`` out, with tagged dead letters and counts.

    Each element is one file.

    Args:
        files: the :class:`FileSpec` plan.
        read_fn: the configured :class:`ReadValidateBucketFn`.
        side_inputs: its side inputs (reference ids, and optionally the day's relevance).
    """

    def __init__(self, files: Sequence[FileSpec], read_fn: ReadValidateBucketFn, *side_inputs) -> None:
        super().__init__()
        self.files = list(files)
        self.read_fn = read_fn
        self.side_inputs = side_inputs

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(largest_first(self.files))
            # Spread files over workers (Create alone may hand them all to one bundle).
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadValidateBucket"
            >> beam.ParDo(self.read_fn, *self.side_inputs).with_outputs(
                DEAD_LETTER_TAG, COUNTS_TAG, REJECTED_TAG, main="rows"
            )
        )


def in_logging_order(parts: Sequence[pa.Table]) -> pa.Table:
    """The parts concatenated in (logging day, file, row) order: deterministic for rows gathered from a shuffle.

    Each shuffled part holds rows of one file in their order, so sorting the parts by their first row and checking
    the result (one vectorised pass) replaces sorting every row (~2.7 s of a bench day); parts of another shape
    are sorted row by row.
    """
    parts = [p for p in parts if p.num_rows]
    if not parts:
        raise ValueError("in_logging_order needs at least one non-empty part")
    table = pa.concat_tables(parts)
    keys = [table.column(c).to_numpy() for c in ORDER_COLUMNS]
    if len(parts) > 1:
        # The parts' first rows, read from the concatenated columns: a slice per part (~300 parts in each of ~80
        # buckets) cost ~0.5 s of a bench day, all of it holding the GIL.
        lengths = np.array([p.num_rows for p in parts])
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        day, file, row = (k[starts] for k in keys)
        order = np.lexsort((row, file, day))
        if not np.array_equal(order, np.arange(len(parts))):
            table = pa.concat_tables([parts[i] for i in order])
            # Row i of the reordered table is row `taken[i]` of the original concatenation.
            taken = np.repeat(starts[order] - np.r_[0, np.cumsum(lengths[order])[:-1]], lengths[order])
            taken += np.arange(len(taken))
            keys = [k[taken] for k in keys]
    if _in_order(*keys):
        return table
    return table.sort_by([(c, "ascending") for c in ORDER_COLUMNS])


def _in_order(day: np.ndarray, file: np.ndarray, row: np.ndarray) -> bool:
    """Whether (day, file, row) strictly increases lexicographically along the arrays."""
    if len(day) < 2:
        return True
    d0, d1, f0, f1 = day[:-1], day[1:], file[:-1], file[1:]
    return bool(np.all((d1 > d0) | ((d1 == d0) & ((f1 > f0) | ((f1 == f0) & (row[1:] > row[:-1]))))))


def first_occurrences(table: pa.Table, id_column: str) -> np.ndarray:
    """Mask of the rows whose ``id_column`` value has not appeared in an earlier row (table in logging order).

    Dictionary encoding numbers distinct values in order of first appearance, so a row is a first occurrence
    exactly when its code exceeds every earlier code: one hash pass and a running maximum, no sort. String ids
    are first reduced to 64-bit hashes (polars hashes 1M ids in ~20 ms; encoding the strings themselves took
    ~0.5 s per million, the largest cost of deduplication), and every row the hashes call a repeat is then
    compared with its first occurrence, so a hash collision can never drop an event: it falls back to the strings.
    """
    if table.num_rows == 0:
        return np.zeros(0, bool)
    ids = table.column(id_column).combine_chunks()
    if ids.null_count == 0 and (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        keep, codes = _first_codes(_string_hashes(ids))
        repeats = np.flatnonzero(~keep)
        firsts = np.flatnonzero(keep)[codes[repeats]]  # code k first appears at the k-th kept row
        if pc.all(pc.equal(ids.take(repeats), ids.take(firsts))).as_py() in (True, None):
            return keep
    return _first_codes(ids)[0]


def _string_hashes(ids: pa.Array) -> pa.Array:
    return pa.array(cast(pl.Series, pl.from_arrow(ids)).hash(seed=0).to_numpy())  # an Array gives a Series


def _first_codes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    codes = pc.dictionary_encode(values, null_encoding="encode").indices.to_numpy()
    keep = np.empty(len(codes), bool)
    keep[0] = True
    keep[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return keep, codes

"""A trained model on disk (``models/<run>/``) and loading it back for scoring.

Layout::

    models/<run>/
      manifest.json        versions, heads, input layout, spec and example-schema fingerprints, column types,
                           the split, and the sha256 of every file below (corruption is caught before use)
      weights.pt           the network's state dict (torch.save; loaded with weights_only=True)
      spec.json            the resolved spec (what the run trained: tasks, groups, mask, sizes)
      normalization.json   numeric means and standard deviations from the training split
      hashing.json         hash functions, the fused table layout, and the buckets seen in training
      metrics.json         validation and test metrics per task, overall and by slice; metrics.txt as a table
      calibration.json     per head and source it serves: Platt scaling fitted on the validation split, with
                           calibration and log loss before and after (model/calibration.py)
      checkpoints/last.pt  the training state after the last epoch (for --resume)

Loading checks everything it can and raises :class:`ArtifactError` (a ``ValueError``) with what is wrong::

    >>> model = load_model("models/demo", table_schema=pq.read_schema(path))
    >>> batch = model.encode(record_batch)                # the training-time encoding, no skew
    >>> model.predict(batch, tasks=["AdStream"])["AdStream"]
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import torch

from . import calibration
from .data.encoding import Batch, Encoder
from .data.statistics import FeatureStats
from .data.tables import resolve_filesystem
from .network import InputLayout, MultiTaskNetwork
from .spec import Spec
from .spec_types import SpecError

FORMAT_VERSION = 1
FILES = ("weights.pt", "spec.json", "normalization.json", "hashing.json")


class ArtifactError(ValueError):
    """A model folder that is missing, incomplete, corrupt, or does not fit the table or spec it is used with."""


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    return resolve_filesystem(path)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically where the filesystem allows (a temporary name, then a rename)."""
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    tmp = p + ".tmp"
    with fs.open_output_stream(tmp) as handle:
        handle.write(data)
    fs.move(tmp, p)


def read_bytes(path: str) -> bytes:
    """The bytes as stored, as ``write_bytes`` wrote them (no decompression guessed from a ``.gz`` name)."""
    fs, p = _fs(path)
    with fs.open_input_stream(p, compression=None) as handle:
        return handle.read()


def exists(path: str) -> bool:
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n").encode()


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default`` for what the artifacts hold besides JSON types: numpy scalars, dates."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, datetime.date):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_load(path: str, what: str) -> Any:
    """``torch.load(..., weights_only=True)`` with a clear error for a missing or unreadable file."""
    try:
        data = read_bytes(path)
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactError(f"{what} {path!r} is missing or unreadable: {exc}") from exc
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # pickle, zip and torch errors differ by corruption kind; all mean the same here
        raise ArtifactError(f"{what} {path!r} is corrupt or not a torch state file ({type(exc).__name__})") from exc


def versions() -> dict[str, str]:
    out = {}
    for package in ("podtarget", "torch", "pyarrow", "numpy", "scikit-learn"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


def save_model(
    run_dir: str,
    network: MultiTaskNetwork,
    spec: Spec,
    encoder: Encoder,
    schema: pa.Schema,
    *,
    metrics: Mapping[str, Any] | None = None,
    metrics_text: str = "",
    calibration_fit: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the model files, then the manifest with their checksums (last, so a crash leaves no manifest)."""
    files = {
        "weights.pt": torch_bytes({k: v.detach().clone() for k, v in network.state_dict().items()}),
        "spec.json": dumps(spec.to_dict()),
        "normalization.json": dumps({"rows": encoder.stats.rows, "numeric": encoder.stats.numeric}),
        "hashing.json": dumps({**encoder.settings(), "known_buckets": encoder.stats.to_json()["known_buckets"]}),
    }
    if metrics is not None:
        files["metrics.json"] = dumps(metrics)
        files["metrics.txt"] = metrics_text.encode()
    if calibration_fit is not None:
        files["calibration.json"] = dumps(calibration_fit)
    for name, data in files.items():
        write_bytes(join(run_dir, name), data)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "heads": list(network.tasks),
        "layout": network.layout.saved(),
        "spec_fingerprint": spec.fingerprint(),
        "schema_fingerprint": spec.schema_fingerprint(schema),
        "columns": spec.column_types(schema),
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        **(extra or {}),
    }
    write_bytes(join(run_dir, "manifest.json"), dumps(manifest))


def trained_for(spec: Spec, applied: Iterable[str] = ()) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Per head: its label column and the sources whose rows gave it loss in training (the directional mask over
    the sources the run trained on). A head copied from another with ``--apply_head`` (``applied``) was declared at
    training for its own task, so it covers its task's source. Scoring lets a head serve only these."""
    applied = set(applied)
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for task in spec.tasks:
        sources: tuple[str, ...]
        if task.name in applied:
            sources = (task.source,)
        else:
            sources = tuple(s for s in spec.training_sources if spec.trains_row(s, task.name))
        out[task.name] = (task.label, sources)
    return out


class TrainedModel:
    """A loaded model: its spec, the encoder with its training statistics, and the network (eval mode)."""

    def __init__(
        self,
        path: str,
        manifest: dict,
        spec: Spec,
        encoder: Encoder,
        network: MultiTaskNetwork,
        calibration_fit: Mapping[str, Any] | None = None,
    ):
        self.path, self.manifest, self.spec, self.encoder, self.network = path, manifest, spec, encoder, network
        self.calibration = dict(calibration_fit or {})
        self.network.eval()

    @property
    def tasks(self) -> list[str]:
        return list(self.network.tasks)

    def trained_for(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Per head: its label column and the sources it was trained for (see :func:`trained_for`)."""
        applied = {text.split("=", 1)[0] for text in self.manifest.get("config", {}).get("apply_head", ())}
        return trained_for(self.spec, applied)

    def calibrate(self, head: str, source: str, p: np.ndarray) -> np.ndarray:
        """``p`` of ``head`` on rows of ``source`` as calibrated probabilities (``calibration.json``; as they are
        for a pair the run could not fit, or a run written before calibration existed)."""
        entry = self.calibration.get(f"{head}/{source}", {})
        return calibration.apply(p, entry["a"], entry["b"]) if entry.get("fitted") else p

    def encode(self, data: pa.RecordBatch | pa.Table) -> Batch:
        """Arrow rows -> tensors, exactly as in training."""
        return self.encoder.encode(data)

    def predict(self, batch: Batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Probabilities per head (all by default)."""
        return self.network.predict(batch, tasks)

    def score(self, data: pa.RecordBatch | pa.Table, tasks: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {t: p.numpy() for t, p in self.predict(self.encode(data), tasks).items()}


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_name(run: str) -> None:
    """A run is one folder directly under the models folder: a plain name, never a path (``../x`` would write
    outside it)."""
    if not RUN_NAME.fullmatch(run) or ".." in run:
        raise ArtifactError(
            f"run name {run!r} is not a plain folder name: use letters, digits, '.', '_' and '-' (e.g. RUN=demo-2); "
            "the run is written under the models folder (MODELS=...), which is where to choose another place"
        )


def latest_run(models: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The most recently written run under ``models`` that loads (checksums, spec, weights), and the newer ones
    skipped with why: ``make score`` without ``MODEL`` must not pick a run whose files are corrupt or missing."""
    fs, root = _fs(models)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    except (FileNotFoundError, OSError):
        return None, []
    runs = []
    for info in infos:
        if info.type == pafs.FileType.Directory:
            manifest = fs.get_file_info(f"{info.path}/manifest.json")
            if manifest.type == pafs.FileType.File:
                runs.append((manifest.mtime_ns or 0, join(models, info.base_name)))
    skipped = []
    for _, path in sorted(runs, reverse=True):
        try:
            load_model(path)
        except ArtifactError as exc:
            skipped.append((path, str(exc)))
            continue
        return path, skipped
    return None, skipped


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m podtarget.model.artifacts latest MODELS``: print the latest run that loads (the Makefile's default
    ``MODEL``); skipped runs are named on stderr."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "latest":
        print("usage: python -m podtarget.model.artifacts latest MODELS_FOLDER", file=sys.stderr)
        return 2
    path, skipped = latest_run(args[1])
    for run, why in skipped:
        print(f"skipping {run}: {why}", file=sys.stderr)
    if path is None:
        return 1
    print(path)
    return 0


def _read_json(run_dir: str, name: str) -> Any:
    path = join(run_dir, name)
    try:
        return json.loads(read_bytes(path))
    except FileNotFoundError as exc:
        raise ArtifactError(f"model {run_dir!r}: {name} is missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model {run_dir!r}: {name} is corrupt ({exc})") from exc


def check_schema(manifest: Mapping[str, Any], spec: Spec, schema: pa.Schema, where: str) -> None:
    """The table must have every column the model reads, with the types it was trained on."""
    try:
        spec.validate(schema)
    except SpecError as exc:
        raise ArtifactError(f"{where}: the table does not fit the model's spec: {exc}") from exc
    if spec.schema_fingerprint(schema) == manifest["schema_fingerprint"]:
        return
    trained = manifest.get("columns", {})
    now = spec.column_types(schema)
    diffs = [
        f"column {c!r}: trained on {trained.get(c, 'absent')}, the table has {now.get(c, 'absent')}"
        for c in sorted(set(trained) | set(now))
        if trained.get(c) != now.get(c)
    ]
    raise ArtifactError(f"{where}: example schema differs from the one the model was trained on: " + "; ".join(diffs))


def load_model(path: str, table_schema: pa.Schema | None = None, spec: Spec | None = None) -> TrainedModel:
    """Load ``models/<run>``; with ``table_schema`` / ``spec``, also check that they are the ones it was trained on.

    Raises :class:`ArtifactError` for a missing or corrupt file, a schema or spec mismatch.
    """
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        raise ArtifactError(f"model {path!r}: no such folder")
    manifest = _read_json(path, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise ArtifactError(f"model {path!r}: manifest format {found!r}, expected {FORMAT_VERSION}")
    for name, digest in manifest.get("sha256", {}).items():
        try:
            data = read_bytes(join(path, name))
        except FileNotFoundError as exc:
            raise ArtifactError(f"model {path!r}: {name} is missing") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactError(f"model {path!r}: {name} is corrupt (its checksum differs from the manifest's)")
    missing = [f for f in FILES if f not in manifest.get("sha256", {})]
    if missing:
        raise ArtifactError(f"model {path!r}: the manifest lists no {', '.join(missing)}")
    try:
        saved_spec = Spec.from_dict(_read_json(path, "spec.json"))
    except SpecError as exc:
        raise ArtifactError(f"model {path!r}: spec.json is invalid: {exc}") from exc
    if spec is not None and spec.fingerprint() != manifest["spec_fingerprint"]:
        a, b = saved_spec.to_dict(), spec.to_dict()
        keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise ArtifactError(f"model {path!r}: trained with a different spec (differs in: {', '.join(keys) or '?'})")
    if table_schema is not None:
        check_schema(manifest, saved_spec, table_schema, f"model {path!r}")
    normalization = _read_json(path, "normalization.json")
    hashing = _read_json(path, "hashing.json")
    try:
        stats = FeatureStats.from_json({**normalization, "known_buckets": hashing["known_buckets"]})
        encoder = Encoder(saved_spec, stats)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"model {path!r}: normalization.json / hashing.json do not fit the spec ({exc})") from exc
    saved_layout = manifest["layout"]
    layout = InputLayout(**{**saved_layout, "dims": tuple(saved_layout.get("dims", ()))})
    if (layout.table_rows, layout.numeric, layout.dims) != (
        encoder.table_rows,
        encoder.num_width,
        encoder.field_dims(),
    ):
        raise ArtifactError(f"model {path!r}: the input layout {vars(layout)} does not match the spec's encoder")
    base_tasks = list(manifest["heads"])
    if base_tasks != list(saved_spec.task_names):
        raise ArtifactError(f"model {path!r}: heads {base_tasks} differ from the spec's tasks {saved_spec.task_names}")
    network = MultiTaskNetwork(saved_spec.model, layout, base_tasks)
    state = torch_load(join(path, "weights.pt"), f"model {path!r}: weights.pt")
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"model {path!r}: weights.pt does not fit the network: {str(exc)[:300]}") from exc
    fit = _read_json(path, "calibration.json") if "calibration.json" in manifest["sha256"] else None
    return TrainedModel(path, manifest, saved_spec, encoder, network, fit)


if __name__ == "__main__":
    raise SystemExit(main())

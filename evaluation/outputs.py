"""Where evaluation reports go, and the guard that keeps one report folder to one run.

A report folder holds ``ablations.json``, ``abtest.json`` and ``coldstart.json`` side by side (the cold-start
sweep's identity is its first world's), and ``report.md`` is built from them. If
``make evaluate`` on one world wrote beside an ``abtest.json`` of another (or of another build of the example
table), the report would put figures of two runs next to each other as if they were one. So each JSON carries the
identity of the data it was measured on (``report_identity``: the example table's fingerprint and a hash of the
world's configuration), and writing one into a folder whose other JSON has a different identity, or none, is
refused with what to do instead.

The default folder is ``reports/local/eval`` (ignored by git): the committed record under ``reports/eval/`` is
only rewritten when asked for by name (``EVAL_OUT=reports/eval``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

from ..model import artifacts
from ..schemas import layout
from ..transforms.runtime.storage import list_files, read_bytes

DEFAULT_OUT = "reports/local/eval"
REPORT_FILES = ("ablations.json", "abtest.json", "coldstart.json")


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def portable(obj: Any, roots: dict[str, str]) -> Any:
    """``obj`` with every local path written without the machine it was measured on: under one of ``roots``
    (a label such as ``$DATA_ROOT`` -> its folder) as the label plus the rest, under the repository as a path
    relative to it. A committed report then names no machine's folders; ``gs://`` paths are kept as they are.

        >>> portable({"examples": "/data/eval/examples"}, {"$DATA_ROOT": "/data/eval"})
        {'examples': '$DATA_ROOT/examples'}
    """
    local = {label: os.path.abspath(path) for label, path in roots.items() if path and "://" not in path}
    ordered = sorted(local.items(), key=lambda item: len(item[1]), reverse=True)  # the most specific root first
    repo = str(REPO_ROOT)

    def rewrite(text: str) -> str:
        if "://" in text or not (text.startswith("/") or text.startswith(".")):
            return text
        absolute = os.path.abspath(text)
        for label, root in ordered:
            if absolute == root or absolute.startswith(root + os.sep):
                return label + absolute[len(root) :]
        if absolute.startswith(repo + os.sep):
            return os.path.relpath(absolute, repo)
        return text

    if isinstance(obj, dict):
        return {key: portable(value, roots) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(value, roots) for value in obj]
    return rewrite(obj) if isinstance(obj, str) else obj


def write_report_json(out: str, name: str, result: dict, roots: dict[str, str]) -> None:
    """Write ``<out>/<name>`` with its paths made :func:`portable` (``$EVAL_OUT`` for ``out`` itself)."""
    artifacts.write_bytes(artifacts.join(out, name), artifacts.dumps(portable(result, {**roots, "$EVAL_OUT": out})))


class MixedReportError(ValueError):
    """A report folder already holds figures of another run."""


def report_identity(examples: str, world_dir: str | None) -> dict:
    """What a report's figures were measured on: the example table (every day's ``_SUCCESS.json``) and the world's
    configuration (``None`` where the folder has no world, e.g. your own logs)."""
    world = None
    if world_dir and artifacts.exists(artifacts.join(world_dir, "config.json")):
        world = hashlib.sha256(artifacts.read_bytes(artifacts.join(world_dir, "config.json"))).hexdigest()[:16]
    return {"examples_fingerprint": table_fingerprint(examples), "world_config_sha256": world}


def table_fingerprint(examples: str) -> str:
    """A hash of every day's ``_SUCCESS.json`` (counts, settings, run): a rebuilt table gets a new one (it keys the
    evaluation's cached runs too)."""
    digest = hashlib.sha256()
    for path in sorted(list_files(layout.join(examples, "dt=*", layout.SUCCESS_MARKER))):
        digest.update(path.rsplit("/", 2)[-2].encode())
        digest.update(read_bytes(path))
    return digest.hexdigest()[:16]


def world_beside(examples: str) -> str:
    """The world folder of the data root an example table lies in (``<root>/examples`` -> ``<root>/world``)."""
    return layout.join(examples.rstrip("/").rsplit("/", 1)[0], "world")


def check_same_run(out: str, writing: str, identity: dict) -> None:
    """Refuse to write ``writing`` (one of ``REPORT_FILES``) into ``out`` beside a report file of another run."""
    for other in REPORT_FILES:
        path = artifacts.join(out, other)
        if other == writing or not artifacts.exists(path):
            continue
        theirs = json.loads(artifacts.read_bytes(path)).get("report_identity")
        if theirs != identity:
            raise MixedReportError(
                f"{path} was measured on other data ({_describe(theirs)}) than this run ({_describe(identity)}): "
                f"one report would mix two runs. Write this one elsewhere (EVAL_OUT=reports/<name>, or --out), "
                f"or remove {path} first"
            )


def _describe(identity: dict | None) -> str:
    if not identity:
        return "no recorded identity: written before reports recorded one"
    return f"example table {identity.get('examples_fingerprint')}, world config {identity.get('world_config_sha256')}"

"""The declarative model spec: feature groups, tasks, sources and the directional mask, checked against a table.

A spec is a small TOML (or JSON) file. It is parsed into frozen dataclasses and then validated against the Arrow
schema of the example table, with errors that name the offending entry and say what was expected, in the style of
scikit-learn's parameter validation::

    >>> spec = load_spec("model/specs/podtarget.toml")
    >>> [t.name for t in spec.tasks]
    ['PromotionStream', 'AdStream', 'Click', 'Like', 'Follow']
    >>> spec.trains_row("ad", "PromotionStream"), spec.trains_row("promo", "AdStream")
    (False, True)
    >>> spec.validate(table_schema)   # raises SpecError("feature 'x' in group 'user': column not in the table; ...")

The file format, every key with its default and meaning, is documented in one place: ``docs/spec.md``. The parts
(features, tasks, the network's shape) are in ``model/spec_types.py``, the checks against a table in
``model/spec_schema.py``.

The default directional mask follows the paper: ``m[s, t] = 0`` iff ``s`` is not the source task ``t`` belongs to
*and* ``t`` belongs to a source listed in ``[mask] protected`` (default: promo), i.e. ad rows give no loss to
promotion tasks while promotion rows train every task. ``[mask.trains]`` overrides it with an explicit
source -> tasks table.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import pathlib
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..common.checks import check_choice, check_int, check_number, invalid
from .spec_schema import schema_problems, schema_text
from .spec_types import (
    ARCHITECTURES,
    DEFAULT_SPEC,
    IMPLICIT_SOURCE,
    INTERACTIONS,
    KINDS,
    LR_SCHEDULES,
    SELECTION_METRICS,
    TRAINING_KEYS,
    FeatureSpec,
    ModelSpec,
    SpecError,
    TaskSpec,
)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated model spec; build with :func:`load_spec` or :meth:`Spec.from_dict`. ``source_column`` is None
    when the spec has no ``[source]`` table: every row then belongs to the one source ``"all"``."""

    source_column: str | None
    sources: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    trains: Mapping[str, tuple[str, ...]]  # source -> tasks whose loss rows of that source feed
    model: ModelSpec = ModelSpec()
    groups: tuple[str, ...] = ()
    disabled_groups: tuple[str, ...] = ()
    slice_column: str | None = None
    early_stopping_tasks: tuple[str, ...] = ()
    selection_metric: str = "ap"
    max_unobserved_share: float = 0.5
    explicit_mask: bool = False
    protected_sources: tuple[str, ...] = ("promo",)
    train_sources: tuple[str, ...] = ()
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def training_sources(self) -> tuple[str, ...]:
        """The sources whose rows train (``[source] train``, e.g. promo only for the promotions baseline)."""
        return self.train_sources or self.sources

    # ----------------------------------------------------------------------------------------- views

    @property
    def active_features(self) -> tuple[FeatureSpec, ...]:
        """Features of the enabled groups, in spec order."""
        return tuple(f for f in self.features if f.group not in self.disabled_groups)

    def features_of(self, kind: str) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.active_features if f.kind == kind)

    @property
    def selection_tasks(self) -> tuple[str, ...]:
        """The tasks whose mean validation metric chooses the best epoch: ``early_stopping_tasks``, else all."""
        return self.early_stopping_tasks or self.task_names

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise SpecError(f"unknown task {name!r}; expected one of {', '.join(self.task_names)}")

    def trains_row(self, source: str, task: str) -> bool:
        """Whether a row of ``source`` gives loss to ``task`` (the directional mask m[source, task])."""
        return task in self.trains.get(source, ())

    @property
    def columns(self) -> tuple[str, ...]:
        """Every table column the spec reads (features of enabled groups, labels, source, slice column)."""
        cols = [*([self.source_column] if self.source_column else []), *(f.name for f in self.active_features)]
        cols += [t.label for t in self.tasks]
        if self.slice_column:
            cols.append(self.slice_column)
        return tuple(dict.fromkeys(cols))

    # ------------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict:
        """The spec as a plain dict in the file format (round-trips through :meth:`from_dict`)."""
        groups: dict[str, dict] = {}
        for g in self.groups:
            groups[g] = {"enabled": g not in self.disabled_groups}
        for f in self.features:
            opts = _feature_options(f)
            groups[f.group].setdefault(f.kind, {})[f.name] = opts
        out: dict[str, Any] = {
            "source": {"column": self.source_column, "values": list(self.sources)},
            "groups": groups,
            "tasks": [
                {"name": t.name, "label": t.label, "source": t.source, "eval_sources": list(t.eval_sources)}
                for t in self.tasks
            ],
            "mask": {"protected": list(self.protected_sources)},
            "model": self._model_dict(),
            "labels": {"max_unobserved_share": self.max_unobserved_share},
            "evaluation": {"early_stopping_tasks": list(self.early_stopping_tasks)},
        }
        if self.source_column is None:
            _drop_implicit_source(out)
        elif self.train_sources:
            out["source"]["train"] = list(self.train_sources)
        if self.explicit_mask:
            out["mask"]["trains"] = {s: list(ts) for s, ts in self.trains.items()}
        if self.slice_column:
            out["evaluation"]["slice_column"] = self.slice_column
        if self.selection_metric != "ap":  # absent at its default, so earlier specs keep their fingerprints
            out["evaluation"]["selection_metric"] = self.selection_metric
        if self.training:
            out["training"] = dict(self.training)
        return out

    def _model_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.model).items()}
        # Keys added after runs were saved appear only when they matter, so the fingerprints of earlier specs (and
        # of the runs trained on them) stay what they were.
        if out["architecture"] != "ple" and out["task_experts"] == ModelSpec.task_experts:
            del out["task_experts"]
        for key in ("interaction", "cross_layers", "cross_rank"):
            if out[key] == getattr(ModelSpec, key):
                del out[key]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Spec:
        return _parse(raw)

    def fingerprint(self) -> str:
        """A short hash of the spec's canonical JSON: two runs with equal fingerprints encode rows identically."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    # --------------------------------------------------------------------------------- variations

    def with_changes(
        self,
        *,
        tasks: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        disabled_groups: Sequence[str] | None = None,
        directional_mask: bool = True,
        architecture: str | None = None,
        extra_tasks: Sequence[TaskSpec] = (),
    ) -> Spec:
        """A variant for ablations and transfer: keep only ``tasks`` / ``sources``, switch groups off, turn the
        directional mask off (every source trains every task), change the architecture, or add tasks."""
        raw = self.to_dict()
        known_tasks = {t["name"]: t for t in raw["tasks"]}
        for t in extra_tasks:
            known_tasks[t.name] = {"name": t.name, "label": t.label, "source": t.source, "eval_sources": []}
        if tasks is not None:
            missing = [t for t in tasks if t not in known_tasks]
            if missing:
                raise SpecError(f"--tasks: unknown task(s) {missing}; expected some of {', '.join(known_tasks)}")
        names = list(tasks) if tasks is not None else list(known_tasks)
        raw["tasks"] = [known_tasks[n] for n in names]
        if sources is not None:
            if not sources or any(s not in self.sources for s in sources):
                raise SpecError(f"--sources: expected some of {', '.join(self.sources)}, found {list(sources)}")
            if "source" in raw:  # with one implicit source, the only choice is that source
                raw["source"]["train"] = list(sources)
        if disabled_groups is not None:
            unknown = [g for g in disabled_groups if g not in self.groups]
            if unknown:
                raise SpecError(f"--disable_groups: unknown group(s) {unknown}; expected some of {self.groups}")
            for g in self.groups:
                raw["groups"][g]["enabled"] = g not in disabled_groups
        trains = raw["mask"].get("trains")
        if not directional_mask:
            raw["mask"] = {"protected": [], "trains": {s: names for s in self.sources}}
        elif trains is not None:
            raw["mask"]["trains"] = {s: [t for t in trains.get(s, names) if t in names] for s in self.sources}
        if architecture is not None:
            raw["model"]["architecture"] = architecture
        if raw["evaluation"].get("early_stopping_tasks"):
            raw["evaluation"]["early_stopping_tasks"] = [
                t for t in raw["evaluation"]["early_stopping_tasks"] if t in names
            ]
        if self.source_column is None:
            _drop_implicit_source(raw)
        return _parse(raw)

    # --------------------------------------------------------------------------------- validation

    def validate(self, schema: pa.Schema) -> None:
        """Check every column the spec uses against ``schema``; raises :class:`SpecError` naming the first
        problem (all problems are listed, one per line; ``model/spec_schema.py``)."""
        problems = schema_problems(self, schema)
        if problems:
            raise SpecError("spec does not fit the table:\n  " + "\n  ".join(problems))

    def schema_fingerprint(self, schema: pa.Schema) -> str:
        """A hash of the names and types of the columns this spec reads: the contract a trained model needs."""
        return hashlib.sha256(schema_text(self, schema).encode()).hexdigest()[:16]

    def column_types(self, schema: pa.Schema) -> dict[str, str]:
        return {c: str(schema.field(c).type) for c in self.columns if c in schema.names}


def _feature_options(f: FeatureSpec) -> dict[str, Any]:
    """A feature's options in the file format. Options added later appear only when set, so the fingerprints of
    earlier specs stay what they were."""
    if f.share:
        return {"share": f.share}
    if f.kind == "numeric":
        later = {"buckets": f.buckets, "clip": list(f.clip) if f.clip else None}
        opts: dict[str, Any] = {"log1p": f.log1p, "missing": f.missing}
    else:
        later = {"floats": f.floats}
        opts = {"buckets": f.buckets, "min_count": f.min_count}
    later["embedding_dim"] = f.embedding_dim
    return {**opts, **{k: v for k, v in later.items() if v}}


def _drop_implicit_source(raw: dict[str, Any]) -> None:
    """A spec dict of one implicit source in the file format: no [source] table, and tasks that name no source
    (a task naming one would read as the podcast channels; see ``_parse``)."""
    raw.pop("source", None)
    for task in raw["tasks"]:
        task.pop("source", None)
        task.pop("eval_sources", None)


# ------------------------------------------------------------------------------------------ parsing


def load_spec(path: str | pathlib.Path = DEFAULT_SPEC) -> Spec:
    """Read a spec from a ``.toml`` or ``.json`` file."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"spec file {str(path)!r} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    return _parse(raw)


def _keys(where: str, table: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise SpecError(f"{where}: expected a table, found {type(table).__name__}")
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"{where}: unknown key {key!r}{hint}; expected one of {', '.join(allowed)}")
    for key in required:
        if key not in table:
            raise SpecError(f"{where}: missing required key {key!r}")
    return table


# The value checks below raise common/checks' message with the spec's locations as owners: "The 'dropout'
# parameter of [model] must be a float in the range [0, 1). Got 1.5 instead."


def _typed(owner: str, name: str, value: Any, typ: type, expected: str) -> Any:
    # bool is an int too, but `buckets = true` is a mistake, not 1.
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise invalid(owner, name, expected, value, SpecError)
    return value


def _str_list(owner: str, name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise invalid(owner, name, "a list of strings", value, SpecError)
    return tuple(value)


def _int_list(owner: str, name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise invalid(owner, name, "a list of positive ints", value, SpecError)
    return tuple(value)


def _names(owner: str, name: str, value: Any, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """A list of ``what`` (e.g. task names), each one of ``allowed``."""
    names = _str_list(owner, name, value)
    if any(n not in allowed for n in names):
        raise invalid(owner, name, f"a list of {what} among {list(allowed)}", list(names), SpecError)
    return names


def _parse_feature(group: str, kind: str, name: str, opts: Any) -> FeatureSpec:
    where = f"feature {name!r} in group {group!r}"
    if kind == "numeric":
        opts = _keys(where, opts, ("log1p", "missing", "buckets", "clip", "embedding_dim"))
        buckets = opts.get("buckets", 0)
        if "embedding_dim" in opts and "buckets" not in opts:
            raise SpecError(f"{where}: embedding_dim needs buckets (only a bucketed numeric has an embedding)")
        return FeatureSpec(
            name,
            group,
            "numeric",
            log1p=_typed(where, "log1p", opts.get("log1p", False), bool, "true or false"),
            missing=_typed(where, "missing", opts.get("missing", False), bool, "true or false"),
            buckets=check_int(where, "buckets", buckets, low=2, error=SpecError) if "buckets" in opts else 0,
            clip=_clip(where, opts["clip"]) if "clip" in opts else None,
            embedding_dim=_embedding_dim(where, opts),
        )
    if isinstance(opts, int) and not isinstance(opts, bool):
        opts = {"buckets": opts}
    if isinstance(opts, Mapping) and "share" in opts:
        opts = _keys(where, opts, ("share",))
        return FeatureSpec(name, group, kind, share=_typed(where, "share", opts["share"], str, "a feature name"))  # type: ignore[arg-type]
    allowed = ("buckets", "min_count", "share", "embedding_dim")
    opts = _keys(where, opts, (*allowed, "floats") if kind == "categorical" else allowed, required=("buckets",))
    return FeatureSpec(
        name,
        group,
        kind,  # type: ignore[arg-type]
        buckets=check_int(where, "buckets", opts["buckets"], low=2, error=SpecError),
        min_count=check_int(where, "min_count", opts.get("min_count", 1), low=1, error=SpecError),
        floats=_typed(where, "floats", opts.get("floats", False), bool, "true or false"),
        embedding_dim=_embedding_dim(where, opts),
    )


def _embedding_dim(where: str, opts: Mapping[str, Any]) -> int:
    """A feature's own embedding width (0: the model's)."""
    if "embedding_dim" not in opts:
        return 0
    return check_int(where, "embedding_dim", opts["embedding_dim"], low=1, error=SpecError)


def _clip(where: str, value: Any) -> tuple[float, float]:
    """``clip = [low, high]``: two finite numbers, low below high."""
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and value[0] < value[1]
    )
    if not ok:
        raise invalid(where, "clip", "a list [low, high] of two finite numbers, low < high", value, SpecError)
    return float(value[0]), float(value[1])


def _model_int(table: Mapping[str, Any], name: str) -> int:
    """A count of the [model] table (at least 1), or its default."""
    return check_int("[model]", name, table.get(name, getattr(ModelSpec(), name)), low=1, error=SpecError)


def _parse(raw: Mapping[str, Any]) -> Spec:
    """The spec of a parsed TOML document, section by section; every error names the section and key."""
    raw = _keys(
        "spec",
        raw,
        ("source", "groups", "tasks", "mask", "model", "labels", "evaluation", "training"),
        ("groups", "tasks"),
    )
    # Without [source], tasks that name sources mean the podcast table's channels (the default before the source
    # was optional, so such specs read as they did); tasks that name none mean a table without channels.
    named = isinstance(raw["tasks"], list) and any(isinstance(t, Mapping) and "source" in t for t in raw["tasks"])
    source_column, sources, train_sources = _parse_source(raw.get("source", {} if named else None))
    features, groups, disabled = _parse_groups(raw["groups"])
    tasks = _parse_tasks(raw["tasks"], sources)
    names = [t.name for t in tasks]
    # The paper's default protects promotions; a table without channels has nothing to protect.
    default_protected = ["promo"] if source_column is not None else []
    explicit, protected, trains = _parse_mask(raw.get("mask", {}), sources, tasks, default_protected)
    slice_column, early, selection_metric = _parse_evaluation(raw.get("evaluation", {}), names)
    labels = _keys("[labels]", raw.get("labels", {}), ("max_unobserved_share",))
    share = labels.get("max_unobserved_share", 0.5)
    share = check_number("[labels]", "max_unobserved_share", share, above=0, high=1, error=SpecError)
    labels_used = {t.label for t in tasks}
    clash = [f.name for f in features if f.name in labels_used or f.name == source_column]
    if clash:
        raise SpecError(f"feature(s) {clash}: a label or the source column cannot also be a feature (label leak)")
    return Spec(
        source_column=source_column,
        sources=sources,
        features=tuple(features),
        tasks=tuple(tasks),
        trains={s: tuple(ts) for s, ts in trains.items()},
        model=_parse_model(raw.get("model", {})),
        groups=tuple(groups),
        disabled_groups=tuple(disabled),
        slice_column=slice_column,
        early_stopping_tasks=early,
        selection_metric=selection_metric,
        max_unobserved_share=float(share),
        explicit_mask=explicit,
        protected_sources=protected,
        train_sources=train_sources,
        training=_parse_training(raw.get("training", {})),
    )


def _parse_source(raw: Any) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``[source]``: the source column, its values, and the sources training reads (empty: all). Without the table,
    no column and one implicit source (:data:`IMPLICIT_SOURCE`) that every row belongs to."""
    if raw is None:
        return None, (IMPLICIT_SOURCE,), ()
    src = _keys("[source]", raw, ("column", "values", "train"))
    source_column = _typed("[source]", "column", src.get("column", "source"), str, "a column name")
    sources = _str_list("[source]", "values", src.get("values", ["ad", "promo"]))
    if not sources or len(set(sources)) != len(sources):
        raise invalid("[source]", "values", "a list of distinct source names, at least one", list(sources), SpecError)
    return source_column, sources, _names("[source]", "train", src.get("train", []), sources, "source names")


def _parse_groups(raw: Any) -> tuple[list[FeatureSpec], list[str], list[str]]:
    """``[groups.<name>]``: the features of every group (each listed once), the groups, the disabled ones."""
    features: list[FeatureSpec] = []
    groups: list[str] = []
    disabled: list[str] = []
    seen: dict[str, str] = {}
    for group, table in _keys("[groups]", raw, raw.keys()).items():
        table = _keys(f"group {group!r}", table, ("enabled", *KINDS))
        groups.append(group)
        if not _typed(f"group {group!r}", "enabled", table.get("enabled", True), bool, "true or false"):
            disabled.append(group)
        for kind in KINDS:
            entries = table.get(kind, {})
            if kind == "numeric" and isinstance(entries, list):  # shorthand: a list of plain numeric columns
                entries = dict.fromkeys(_str_list(f"group {group!r}", "numeric", entries), {})
            for name, opts in _keys(f"group {group!r} {kind}", entries, entries.keys()).items():
                if name in seen:
                    raise SpecError(f"feature {name!r} is listed twice: in group {seen[name]!r} and {group!r}")
                seen[name] = group
                features.append(_parse_feature(group, kind, name, opts))
    if not features:
        raise SpecError("[groups]: expected at least one feature")
    return _resolve_shares(features), groups, disabled


def _resolve_shares(features: list[FeatureSpec]) -> list[FeatureSpec]:
    """Each feature that shares another's embedding rows, with the owner's buckets and min_count. The owner must be
    a categorical feature of its own rows (no chains), of any group: a disabled group keeps rows its sharers use."""
    by_name = {f.name: f for f in features}
    out = []
    for f in features:
        if f.share is None:
            out.append(f)
            continue
        where = f"feature {f.name!r} in group {f.group!r}"
        owner = by_name.get(f.share)
        if owner is None or owner.kind == "numeric" or owner.share is not None or owner.name == f.name:
            owners = [g.name for g in features if g.kind != "numeric" and g.share is None and g.name != f.name]
            close = difflib.get_close_matches(f.share, owners, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            expected = f"the name of another categorical feature with rows of its own{hint}"
            raise invalid(where, "share", expected, f.share, SpecError)
        out.append(
            dataclasses.replace(f, buckets=owner.buckets, min_count=owner.min_count, embedding_dim=owner.embedding_dim)
        )
    return out


def _parse_tasks(raw: Any, sources: Sequence[str]) -> list[TaskSpec]:
    """``[[tasks]]``: one head each, with a unique name, its label column, its source and evaluation sources."""
    if not isinstance(raw, list) or not raw:
        raise SpecError("[[tasks]]: expected at least one task table")
    tasks: list[TaskSpec] = []
    # With one source (a spec without [source], or with one value) a task's source can only be that one.
    required = ("name", "label") if len(sources) == 1 else ("name", "label", "source")
    for i, t in enumerate(raw):
        t = _keys(f"task #{i + 1}", t, ("name", "label", "source", "eval_sources"), required)
        name = _typed(f"task #{i + 1}", "name", t["name"], str, "a str")
        where = f"task {name!r}"
        if name in (x.name for x in tasks):
            raise SpecError(f"{where}: the name is used twice; task names must be unique")
        source = check_choice(where, "source", t.get("source", sources[0]), sources, error=SpecError)
        evals = _names(where, "eval_sources", t.get("eval_sources") or [source], sources, "source names")
        label = _typed(where, "label", t["label"], str, "a column name")
        tasks.append(TaskSpec(name, label, source, evals))
    return tasks


def _parse_mask(
    raw: Any, sources: Sequence[str], tasks: Sequence[TaskSpec], default_protected: Sequence[str] = ("promo",)
) -> tuple[bool, tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``[mask]``: which tasks a row of each source trains; explicit ``trains`` lists, or the paper's rule over
    the protected sources. Returns (explicit, protected sources, tasks trained per source)."""
    mask = _keys("[mask]", raw, ("protected", "trains"))
    protected = _str_list("[mask]", "protected", mask.get("protected", list(default_protected)))
    names = [t.name for t in tasks]
    if "trains" in mask:
        table = _keys("[mask.trains]", mask["trains"], sources)
        return True, protected, {s: _names("[mask.trains]", s, table.get(s, []), names, "task names") for s in sources}
    # The paper's rule: a row of source s trains task t unless t belongs to a protected source other than s.
    rule = {s: tuple(t.name for t in tasks if not (t.source in protected and t.source != s)) for s in sources}
    return False, protected, rule


def _parse_model(raw: Any) -> ModelSpec:
    """``[model]``: the network's shape; every key defaults to :class:`ModelSpec`'s."""
    m = _keys("[model]", raw, [f.name for f in dataclasses.fields(ModelSpec)])
    defaults = ModelSpec()
    return ModelSpec(
        embedding_dim=_model_int(m, "embedding_dim"),
        bottom=_int_list("[model]", "bottom", m.get("bottom", list(defaults.bottom))),
        tower=_int_list("[model]", "tower", m.get("tower", list(defaults.tower))) if m.get("tower", 1) else (),
        architecture=check_choice(
            "[model]", "architecture", m.get("architecture", defaults.architecture), ARCHITECTURES, error=SpecError
        ),
        experts=_model_int(m, "experts"),
        expert=_int_list("[model]", "expert", m.get("expert", list(defaults.expert))),
        task_experts=_model_int(m, "task_experts"),
        dropout=check_number("[model]", "dropout", m.get("dropout", defaults.dropout), low=0, below=1, error=SpecError),
        interaction=check_choice(
            "[model]", "interaction", m.get("interaction", defaults.interaction), INTERACTIONS, error=SpecError
        ),
        cross_layers=check_int("[model]", "cross_layers", m.get("cross_layers", 0), low=0, error=SpecError),
        cross_rank=check_int("[model]", "cross_rank", m.get("cross_rank", 0), low=0, error=SpecError),
    )


def _parse_evaluation(raw: Any, names: Sequence[str]) -> tuple[str | None, tuple[str, ...], str]:
    """``[evaluation]``: the column metrics are sliced by, the tasks whose mean validation metric chooses the best
    epoch (empty: all), and that metric (``"ap"``, ``"auc"`` or ``"log_loss"``)."""
    ev = _keys("[evaluation]", raw, ("slice_column", "early_stopping_tasks", "selection_metric"))
    slice_column = ev.get("slice_column")
    if slice_column is not None:
        _typed("[evaluation]", "slice_column", slice_column, str, "a column name")
    early = _names("[evaluation]", "early_stopping_tasks", ev.get("early_stopping_tasks", []), names, "task names")
    metric = ev.get("selection_metric", "ap")
    metric = check_choice("[evaluation]", "selection_metric", metric, tuple(SELECTION_METRICS), error=SpecError)
    return slice_column, early, metric


def _parse_training(raw: Any) -> dict[str, Any]:
    """``[training]``: the trainer settings the spec sets (each checked as TrainConfig checks it), in the order of
    :data:`TRAINING_KEYS`."""
    t = _keys("[training]", raw, TRAINING_KEYS)
    out: dict[str, Any] = {}
    for key in TRAINING_KEYS:
        if key not in t:
            continue
        value = t[key]
        if key in ("epochs", "batch_size"):
            out[key] = check_int("[training]", key, value, low=1, error=SpecError)
        elif key in ("patience", "warmup_steps"):
            out[key] = check_int("[training]", key, value, low=0, error=SpecError)
        elif key in ("lr", "embedding_lr"):
            out[key] = check_number("[training]", key, value, above=0, error=SpecError)
        elif key == "lr_schedule":
            out[key] = check_choice("[training]", key, value, LR_SCHEDULES, error=SpecError)
        else:
            out[key] = check_number("[training]", key, value, low=0, error=SpecError)
    return out

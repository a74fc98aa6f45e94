"""Whether a spec fits a table: every column it reads exists with a type its kind can take, and features that share
embedding rows hash their values alike. :meth:`Spec.validate <podtarget.model.spec.Spec.validate>` raises with
every problem this finds; a trained model keeps the schema's fingerprint, its contract with scoring.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from .spec import Spec


def schema_problems(spec: Spec, schema: pa.Schema) -> list[str]:
    """Every way ``spec`` does not fit a table of ``schema``, one line each, naming the spec's entry (with the
    closest column names where a column is missing); empty when it fits."""
    problems: list[str] = []
    names = schema.names

    def missing(what: str, column: str) -> str:
        close = difflib.get_close_matches(column, names, n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        return f"{what}: column not in the table; {hint or 'expected one of ' + listed}".rstrip()

    def check(what: str, column: str, ok, expected: str, hint=lambda typ: "") -> None:
        if column not in names:
            problems.append(missing(what, column))
            return
        typ = schema.field(column).type
        if not ok(typ):
            problems.append(f"{what}: expected {expected} column, found {typ}{hint(typ)}")

    if spec.source_column is not None:
        check(f"source column {spec.source_column!r}", spec.source_column, _is_string, "a string or dictionary")
    for f in spec.active_features:
        what = f"feature {f.name!r} in group {f.group!r}"
        if f.kind == "categorical" and f.floats:
            check(what, f.name, _is_float_categorical, "a string, integer, boolean, floating-point or dictionary")
        elif f.kind == "categorical":

            def floats_hint(typ: pa.DataType) -> str:
                floating = pa.types.is_floating(typ)
                return "; a float column of codes or ids is taken with {floats = true}" if floating else ""

            check(what, f.name, _is_categorical, "a string, integer, boolean or dictionary", floats_hint)
        elif f.kind == "multi_categorical":
            check(what, f.name, _is_multi, "a list of strings or integers")
        else:
            check(what, f.name, _is_numeric, "an integer, floating-point or boolean")
    problems += _share_problems(spec, schema)
    for t in spec.tasks:
        check(f"task {t.name!r} label {t.label!r}", t.label, _is_label, "an integer or boolean")
    if spec.slice_column:
        check(f"slice column {spec.slice_column!r}", spec.slice_column, _is_categorical, "an integer or string")
    return problems


def _share_problems(spec: Spec, schema: pa.Schema) -> list[str]:
    """Features that share rows must hash their values alike: strings with strings, integers with integers."""
    problems = []
    for f in spec.active_features:
        if f.share is None or f.name not in schema.names or f.share not in schema.names:
            continue
        mine, theirs = _hash_kind(schema.field(f.name).type), _hash_kind(schema.field(f.share).type)
        if mine != theirs:
            problems.append(
                f"feature {f.name!r} shares the rows of {f.share!r}: expected {theirs} values like it, found {mine}"
            )
    return problems


def _hash_kind(t: pa.DataType) -> str:
    """How a column's values hash: as strings or as integers (lists by their values; floats as the integers they
    hold)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    return "string" if _is_string(t) else "integer"


def schema_text(spec: Spec, schema: pa.Schema) -> str:
    return ";".join(f"{c}:{schema.field(c).type if c in schema.names else 'absent'}" for c in spec.columns)


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_string(t: pa.DataType) -> bool:
    t = _value_type(t)
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_categorical(t: pa.DataType) -> bool:
    return _is_string(t) or pa.types.is_integer(_value_type(t)) or pa.types.is_boolean(t)


def _is_float_categorical(t: pa.DataType) -> bool:
    return _is_categorical(t) or pa.types.is_floating(t)


def _is_multi(t: pa.DataType) -> bool:
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    return _is_string(t.value_type) or pa.types.is_integer(_value_type(t.value_type))


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_label(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_boolean(t)

"""Reconciliation: the counts of a daily run must add up before any of its partitions is committed.

A :class:`Ledger` is one row of figures a run counted (rows read, used, dead-lettered, filtered; campaigns active,
scored; ...) with the :class:`Balance` identities that must hold between them (``total = sum(parts)``).
:func:`reconcile` adds, per balance, what does not add up (0 when balanced); a run whose reconciliation has any
non-zero difference fails (:meth:`Reconciliation.require_balanced`) instead of committing.

The pipelines differ only in their ledgers, passed in as data: the features and examples runs keep one per input
table (:func:`rows_ledgers`), scoring one for campaigns and one for pairs.

    >>> ledger = Ledger({"read": 10, "used": 7, "dead_lettered": 2, "filtered": 1}, ROWS_BALANCE)
    >>> reconcile({"click": ledger}).rows
    {'click': {'read': 10, 'used': 7, 'dead_lettered': 2, 'filtered': 1, 'unaccounted': 0}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Balance:
    """``total`` must equal the sum of ``parts`` (figures of one ledger); the difference is reported as ``name``."""

    name: str
    total: str
    parts: tuple[str, ...]

    def difference(self, figures: Mapping[str, int]) -> int:
        return figures[self.total] - sum(figures[part] for part in self.parts)


@dataclasses.dataclass(frozen=True)
class Ledger:
    """One row of figures and the balances they must satisfy."""

    figures: Mapping[str, int]
    balances: tuple[Balance, ...]

    def __post_init__(self) -> None:
        named = {name for b in self.balances for name in (b.total, *b.parts)}
        missing = sorted(named - set(self.figures))
        if missing:
            raise ValueError(f"ledger {dict(self.figures)} lacks the figures {missing} that its balances name")


# Every input row of a table the run owns: used, dead-lettered (rejected with a reason) or filtered (with a reason).
ROWS_BALANCE = (Balance("unaccounted", "read", ("used", "dead_lettered", "filtered")),)


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    """The ledgers' figures with each balance's difference (``rows``, as saved in ``_SUCCESS.json``), and the
    differences that are not 0 (``problems``: ledger -> balance -> difference)."""

    rows: dict[str, dict[str, int]]
    problems: dict[str, dict[str, int]]

    def require_balanced(self, what: str) -> None:
        """Raise when anything does not add up: nothing of ``what`` (e.g. "features of 2026-03-05") is committed."""
        if self.problems:
            raise RuntimeError(
                f"{what} do not reconcile: {self.problems}; nothing committed\n{format_reconciliation(self.rows)}"
            )


def reconcile(ledgers: Mapping[str, Ledger]) -> Reconciliation:
    """Each ledger's figures followed by its balances' differences, in the ledgers' order."""
    rows, problems = {}, {}
    for name, ledger in ledgers.items():
        differences = {b.name: b.difference(ledger.figures) for b in ledger.balances}
        rows[name] = {**ledger.figures, **differences}
        unbalanced = {balance: diff for balance, diff in differences.items() if diff}
        if unbalanced:
            problems[name] = unbalanced
    return Reconciliation(rows, problems)


def rows_ledgers(tables: Mapping[str, Mapping]) -> dict[str, Ledger]:
    """Per input table of a run's counts (``tables``: table -> ``read``, ``written`` or ``accepted`` (the rows used),
    ``dead_letter`` and ``filtered`` by reason), in table order: read = used + dead-lettered + filtered."""
    ledgers = {}
    for table, c in sorted(tables.items()):
        figures = {
            "read": c.get("read", 0),
            "used": c.get("written", c.get("accepted", 0)),
            "dead_lettered": sum(c.get("dead_letter", {}).values()),
            "filtered": sum(c.get("filtered", {}).values()),
        }
        ledgers[table] = Ledger(figures, ROWS_BALANCE)
    return ledgers


def format_reconciliation(rows: Mapping[str, Mapping[str, int]]) -> str:
    """The reconciliation as a table: a line per ledger, a column per figure (a ledger with other figures than the
    one above it gets a header line of its own).

    >>> print(format_reconciliation({"click": {"read": 3, "dead_lettered": 1, "unaccounted": 0}}))
                              read  dead-lettered  unaccounted
    click                        3              1            0
    """
    lines, header = [], None
    for name, row in rows.items():
        if tuple(row) != header:
            header = tuple(row)
            labels = [figure.replace("_", "-") for figure in header]
            widths = [max(12, len(label) + 2) for label in labels]
            lines.append(" " * 18 + "".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)))
        lines.append(f"{name:<18}" + "".join(f"{value:>{w},}" for value, w in zip(row.values(), widths, strict=True)))
    return "\n".join(lines)

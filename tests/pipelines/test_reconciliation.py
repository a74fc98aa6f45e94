"""One reconciliation for every daily run: ledgers of figures with the balances they must satisfy."""

import pytest

from podtarget.pipelines.reconciliation import (
    ROWS_BALANCE,
    Balance,
    Ledger,
    format_reconciliation,
    reconcile,
    rows_ledgers,
)
from podtarget.pipelines.score import scoring_ledgers


def test_a_balanced_run_has_no_problems_and_may_commit():
    balance = reconcile({"stream": Ledger({"read": 5, "used": 4, "dead_lettered": 0, "filtered": 1}, ROWS_BALANCE)})
    assert balance.problems == {}
    balance.require_balanced("features of 2026-03-03")  # does not raise


def test_an_unbalanced_count_fails_naming_the_ledger_and_the_difference():
    balance = reconcile(
        {
            "click": Ledger({"read": 10, "used": 6, "dead_lettered": 2, "filtered": 0}, ROWS_BALANCE),
            "stream": Ledger({"read": 5, "used": 4, "dead_lettered": 0, "filtered": 1}, ROWS_BALANCE),
        }
    )
    assert balance.problems == {"click": {"unaccounted": 2}}
    expected = r"examples of 2026-03-03 do not reconcile: \{'click': \{'unaccounted': 2\}\}; nothing committed"
    with pytest.raises(RuntimeError, match=expected):
        balance.require_balanced("examples of 2026-03-03")


def test_a_ledger_may_hold_several_balances_each_reported_by_name():
    """Scoring's pair ledger: considered = eligible + ineligible, eligible = scored, eligible = in audiences."""
    counts = {
        "campaigns": {"active": 3, "scored": 2, "dead_letter": {"untrained_head": 1}},
        "pairs": {"considered": 10, "eligible": 6, "ineligible": {"targeting": 3}, "scored": 5},
        "per_campaign": {"1": {"eligible": 4}, "2": {"eligible": 2}},
    }
    balance = reconcile(scoring_ledgers(counts))
    assert balance.rows["campaigns"] == {"active": 3, "scored": 2, "dead_lettered": 1, "unaccounted": 0}
    assert balance.rows["pairs"] == {
        "considered": 10,
        "eligible": 6,
        "ineligible": 3,
        "scored": 5,
        "in_audiences": 6,
        "unaccounted": 1,
        "unscored": 1,
        "eligible_not_in_audiences": 0,
    }
    assert balance.problems == {"pairs": {"unaccounted": 1, "unscored": 1}}


def test_a_balance_naming_a_figure_the_ledger_lacks_is_refused():
    with pytest.raises(ValueError, match=r"lacks the figures \['written'\] that its balances name"):
        Ledger({"read": 1}, (Balance("unaccounted", "read", ("written",)),))


def test_the_table_shows_every_figure_of_every_ledger():
    text = format_reconciliation(
        {
            "click": {"read": 1_200, "used": 1_000, "unaccounted": 200},
            "campaigns": {"active": 3, "scored": 3, "unaccounted": 0},
        }
    )
    lines = text.splitlines()
    assert lines[0].split() == ["read", "used", "unaccounted"]
    assert lines[1].split() == ["click", "1,200", "1,000", "200"]
    assert lines[2].split() == ["active", "scored", "unaccounted"]  # another ledger shape: its own header
    assert lines[3].split() == ["campaigns", "3", "3", "0"]


def test_reconcile_reports_what_is_unaccounted():
    counts = {
        "tables": {
            "click": {"read": 10, "accepted": 6, "dead_letter": {"null_user_id": 2}, "filtered": {}},
            "stream": {"read": 5, "accepted": 4, "filtered": {"duplicate": 1}},
        }
    }
    assert reconcile(rows_ledgers(counts["tables"])).rows == {
        "click": {"read": 10, "used": 6, "dead_lettered": 2, "filtered": 0, "unaccounted": 2},
        "stream": {"read": 5, "used": 4, "dead_lettered": 0, "filtered": 1, "unaccounted": 0},
    }

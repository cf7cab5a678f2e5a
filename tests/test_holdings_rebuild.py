"""etl holdings rebuild: repairs holdings from transactions, and is a no-op on a consistent database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.db import rows, scalar
from support.runner import run_etl


@pytest.fixture
def generated(db):
    """Two mock accounts with cash-only history, holdings consistent."""
    assert run_etl("generate_mock_transactions", "--accounts", "2", "--months", "3", "--per-month", "6",
                   "--seed", "7", "--cash-only") == 0
    return [row[0] for row in rows(db, "SELECT account_id FROM accounts ORDER BY account_id")]


def exit_code(*argv: str) -> int:
    try:
        return run_etl(*argv)
    except SystemExit as exc:  # argparse rejects bad arguments this way
        return exc.code


def holdings_snapshot(db) -> list[tuple]:
    """Every holdings and holdings_monthly row, updated_at included."""
    return (rows(db, "SELECT * FROM holdings ORDER BY account_id, symbol, asset_type")
            + rows(db, "SELECT * FROM holdings_monthly ORDER BY account_id, symbol, asset_type, month"))


def cash_balance(db, account) -> Decimal:
    return scalar(db, "SELECT total_balance FROM holdings WHERE account_id = %s AND symbol = 'USD'", (account,))


def live_sum(db, account) -> Decimal:
    return scalar(db, "SELECT sum(credit - debit) FROM transactions WHERE account_id = %s AND deleted_at IS NULL",
                  (account,))


def test_rebuild_restores_a_corrupted_holdings_row(db, generated):
    alice = generated[0]
    db.cursor().execute("UPDATE holdings SET total_balance = 123456.78 WHERE account_id = %s", (alice,))
    assert run_etl("holdings", "rebuild") == 0
    assert cash_balance(db, alice) == live_sum(db, alice)


def test_rebuild_restores_missing_and_wrong_monthly_rows(db, generated):
    before = holdings_snapshot(db)
    with db.cursor() as cur:
        cur.execute("DELETE FROM holdings_monthly WHERE month = (SELECT min(month) FROM holdings_monthly)")
        cur.execute("UPDATE holdings_monthly SET total_balance = total_balance + 1 "
                    "WHERE month = date_trunc('month', current_date)")
    assert run_etl("holdings", "rebuild") == 0
    after = holdings_snapshot(db)
    assert [r[:6] for r in after] == [r[:6] for r in before]


def test_rebuild_on_a_consistent_database_changes_nothing(db, generated, capsys):
    before = holdings_snapshot(db)
    capsys.readouterr()
    assert run_etl("holdings", "rebuild") == 0
    assert holdings_snapshot(db) == before
    assert "nothing changed" in capsys.readouterr().out


def test_rebuild_with_account_id_repairs_only_that_account(db, generated):
    alice, bob = generated
    db.cursor().execute("UPDATE holdings SET total_balance = 1")
    assert run_etl("holdings", "rebuild", "--account-id", alice) == 0
    assert cash_balance(db, alice) == live_sum(db, alice)
    assert cash_balance(db, bob) == Decimal(1)


def test_rebuild_drops_holdings_of_accounts_without_live_transactions(db, generated):
    alice = generated[0]
    db.cursor().execute("UPDATE transactions SET deleted_at = now() WHERE account_id = %s", (alice,))
    assert run_etl("holdings", "rebuild") == 0
    assert rows(db, "SELECT * FROM holdings WHERE account_id = %s", (alice,)) == []
    assert rows(db, "SELECT * FROM holdings_monthly WHERE account_id = %s", (alice,)) == []


def test_a_malformed_account_id_exits_2_with_a_clear_line(etl_env, capsys):
    assert exit_code("holdings", "rebuild", "--account-id", "not-a-uuid") == 2
    assert "'not-a-uuid' is not a UUID" in capsys.readouterr().err


def test_holdings_rebuild_has_help(etl_env, capsys):
    assert exit_code("holdings", "rebuild", "--help") == 0
    assert "recomputes both tables" in capsys.readouterr().out

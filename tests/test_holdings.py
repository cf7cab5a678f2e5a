"""apply_transactions: holdings and holdings_monthly recomputed from live transactions."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date
from decimal import Decimal

import psycopg2
import pytest

from etl.holdings import apply_transactions, rebuild_holdings
from support.db import row_count, rows, scalar

ALICE = uuid.UUID("11111111-1111-4111-8111-111111111111")
BOB = uuid.UUID("22222222-2222-4222-8222-222222222222")


@pytest.fixture
def ledger(db, database_url, schema):
    """A transactional connection to the test schema with two accounts and AAPL / USD assets."""
    with db.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK'), ('USD', 'CASH')")
        cur.execute("INSERT INTO accounts (account_id) VALUES (%s), (%s)", (str(ALICE), str(BOB)))
    conn = psycopg2.connect(database_url, options=f"-c search_path={schema}")
    yield conn
    conn.close()


def months_ago(db, months: int, day: int = 1) -> date:
    return scalar(db, "SELECT (date_trunc('month', current_date) - make_interval(months => %s))::date + %s - 1",
                  (months, day))


def add(conn, account, day: date, symbol: str, credit="0", debit="0") -> int:
    asset_type = "CASH" if symbol == "USD" else "STOCK"
    unit = "USD" if symbol == "USD" else "SHARES"
    with conn.cursor() as cur:
        cur.execute("INSERT INTO transactions (account_id, date, symbol, asset_type, credit, debit, unit) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING transaction_id",
                    (str(account), day, symbol, asset_type, Decimal(credit), Decimal(debit), unit))
        return cur.fetchone()[0]


def apply(conn, *accounts) -> None:
    apply_transactions(conn, accounts)
    conn.commit()


def holding(db, account, symbol: str):
    return rows(db, "SELECT total_balance, date, unit FROM holdings WHERE account_id = %s AND symbol = %s",
                (str(account), symbol))


def monthly(db, account, symbol: str) -> list[tuple[date, Decimal]]:
    return rows(db, "SELECT month, total_balance FROM holdings_monthly WHERE account_id = %s AND symbol = %s "
                    "ORDER BY month", (str(account), symbol))


def test_holdings_are_the_sums_of_live_transactions_dated_by_the_last_one(db, ledger):
    add(ledger, ALICE, months_ago(db, 2, 3), "USD", credit="1000.00")
    add(ledger, ALICE, months_ago(db, 1, 5), "USD", debit="250.50")
    add(ledger, ALICE, months_ago(db, 1, 5), "AAPL", credit="2.5")
    apply(ledger, ALICE)
    assert holding(db, ALICE, "USD") == [(Decimal("749.50"), months_ago(db, 1, 5), "USD")]
    assert holding(db, ALICE, "AAPL") == [(Decimal("2.5"), months_ago(db, 1, 5), "SHARES")]


def test_monthly_rows_run_through_the_current_month_carrying_the_balance_forward(db, ledger):
    add(ledger, ALICE, months_ago(db, 3, 10), "USD", credit="100.00")
    add(ledger, ALICE, months_ago(db, 2, 28), "USD", debit="40.00")
    apply(ledger, ALICE)
    assert monthly(db, ALICE, "USD") == [(months_ago(db, 3), Decimal("100.00")), (months_ago(db, 2), Decimal("60.00")),
                                         (months_ago(db, 1), Decimal("60.00")), (months_ago(db, 0), Decimal("60.00"))]


def test_a_back_dated_transaction_changes_every_later_month(db, ledger):
    add(ledger, ALICE, months_ago(db, 2, 1), "USD", credit="100.00")
    apply(ledger, ALICE)
    add(ledger, ALICE, months_ago(db, 4, 15), "USD", credit="5.00")
    apply(ledger, ALICE)
    assert monthly(db, ALICE, "USD") == [(months_ago(db, 4), Decimal("5.00")), (months_ago(db, 3), Decimal("5.00")),
                                         (months_ago(db, 2), Decimal("105.00")), (months_ago(db, 1), Decimal("105.00")),
                                         (months_ago(db, 0), Decimal("105.00"))]
    assert holding(db, ALICE, "USD")[0][:2] == (Decimal("105.00"), months_ago(db, 2, 1))


def test_a_soft_deleted_transaction_is_excluded_after_apply(db, ledger):
    add(ledger, ALICE, months_ago(db, 3, 2), "USD", credit="10.00")
    add(ledger, ALICE, months_ago(db, 1, 2), "USD", credit="20.00")
    bought = add(ledger, ALICE, months_ago(db, 1, 2), "AAPL", credit="1")
    apply(ledger, ALICE)
    with ledger.cursor() as cur:
        cur.execute("UPDATE transactions SET deleted_at = now() WHERE transaction_id = %s OR date = %s",
                    (bought, months_ago(db, 3, 2)))
    apply(ledger, ALICE)
    assert holding(db, ALICE, "USD")[0][:2] == (Decimal("20.00"), months_ago(db, 1, 2))
    assert monthly(db, ALICE, "USD") == [(months_ago(db, 1), Decimal("20.00")), (months_ago(db, 0), Decimal("20.00"))]
    assert holding(db, ALICE, "AAPL") == [] and monthly(db, ALICE, "AAPL") == []


def test_only_the_given_accounts_are_recomputed(db, ledger):
    add(ledger, ALICE, months_ago(db, 1, 1), "USD", credit="1.00")
    add(ledger, BOB, months_ago(db, 1, 1), "USD", credit="2.00")
    apply(ledger, ALICE)
    assert row_count(db, "holdings", "account_id = %s", (str(BOB),)) == 0
    assert row_count(db, "holdings_monthly", "account_id = %s", (str(BOB),)) == 0
    assert holding(db, ALICE, "USD")[0][0] == Decimal("1.00")


def test_the_update_is_part_of_the_callers_transaction(db, ledger):
    add(ledger, ALICE, months_ago(db, 1, 1), "USD", credit="1.00")
    apply_transactions(ledger, [ALICE])
    ledger.rollback()
    assert row_count(db, "transactions") == 0
    assert row_count(db, "holdings") == 0
    assert row_count(db, "holdings_monthly") == 0


def test_recomputing_a_consistent_account_rewrites_nothing(db, ledger):
    add(ledger, ALICE, months_ago(db, 2, 1), "USD", credit="100.00")
    apply(ledger, ALICE)
    change = apply_transactions(ledger, [ALICE])
    ledger.commit()
    assert change.unchanged


def test_a_negative_balance_is_refused_by_the_schema(db, ledger):
    add(ledger, ALICE, months_ago(db, 1, 1), "USD", debit="1.00")
    with pytest.raises(psycopg2.errors.CheckViolation):
        apply_transactions(ledger, [ALICE])
    ledger.rollback()


def test_backends_find_the_update_in_db_utils():
    from etl.utils import db_utils

    assert db_utils.apply_transactions is apply_transactions



def waiting_on_a_lock(db, conn) -> bool:
    return scalar(db, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                  (conn.get_backend_pid(),)) is True


class InBackground(threading.Thread):
    """apply(conn, *accounts) on its own thread; `error` holds what it raised."""

    def __init__(self, conn, *accounts):
        super().__init__(daemon=True)
        self.conn, self.accounts, self.error = conn, accounts, None
        self.start()

    def run(self):
        try:
            apply(self.conn, *self.accounts)
        except Exception as exc:  # reported by finish()
            self.error = exc

    def wait_until_blocked(self, db) -> None:
        while self.is_alive() and not waiting_on_a_lock(db, self.conn):
            time.sleep(0.01)
        assert self.is_alive(), f"the second update should have waited for the first one ({self.error})"

    def finish(self) -> None:
        self.join()
        assert self.error is None, self.error


@pytest.fixture
def other(database_url, schema):
    """A second transactional connection to the test schema, as another backend would hold."""
    conn = psycopg2.connect(database_url, options=f"-c search_path={schema} -c lock_timeout=20s")
    yield conn
    conn.close()


def test_two_concurrent_updates_of_one_account_both_count(db, ledger, other):
    add(ledger, ALICE, months_ago(db, 1, 1), "USD", credit="10.00")
    apply(ledger, ALICE)
    add(ledger, ALICE, months_ago(db, 0, 1), "USD", credit="100.00")
    add(other, ALICE, months_ago(db, 0, 1), "USD", credit="50.00")
    apply_transactions(ledger, [ALICE])                 # not committed yet
    second = InBackground(other, ALICE)
    second.wait_until_blocked(db)
    ledger.commit()
    second.finish()
    assert holding(db, ALICE, "USD")[0][0] == Decimal("160.00")
    assert monthly(db, ALICE, "USD")[-1] == (months_ago(db, 0), Decimal("160.00"))


def test_an_update_does_not_wait_for_open_inserts_into_its_accounts(db, ledger, other):
    with ledger.cursor() as cur:
        cur.execute("SET lock_timeout = '20s'")
    add(other, ALICE, months_ago(db, 0, 1), "USD", credit="3.00")    # open, not yet applied
    add(ledger, ALICE, months_ago(db, 0, 1), "USD", credit="1.00")
    add(ledger, BOB, months_ago(db, 0, 1), "USD", credit="4.00")
    apply(ledger, BOB, ALICE)
    assert holding(db, ALICE, "USD")[0][0] == Decimal("1.00")
    add(other, BOB, months_ago(db, 0, 1), "USD", credit="2.00")
    apply(other, ALICE, BOB)
    assert holding(db, ALICE, "USD")[0][0] == Decimal("4.00")
    assert holding(db, BOB, "USD")[0][0] == Decimal("6.00")


def test_the_monthly_rebuild_gives_an_idle_account_its_row_for_the_new_month(db, ledger):
    add(ledger, ALICE, months_ago(db, 1, 20), "USD", credit="70.00")
    apply(ledger, ALICE)
    next_month = months_ago(db, -1)
    rebuild_holdings(ledger, today=next_month)      # what the crontab's run on the 1st does
    ledger.commit()
    assert monthly(db, ALICE, "USD")[-2:] == [(months_ago(db, 0), Decimal("70.00")), (next_month, Decimal("70.00"))]

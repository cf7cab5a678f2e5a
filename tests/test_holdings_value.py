"""holdings_monthly_value and `etl holdings value`: what holdings were worth at each month's end."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import psycopg2.errors
import pytest

from support.db import rows
from support.runner import run_etl

EUR_ACCOUNT = "00000000-0000-4000-8000-00000000000e"
USD_ACCOUNT = "00000000-0000-4000-8000-00000000000d"
NO_CURRENCY_ACCOUNT = "00000000-0000-4000-8000-00000000000f"

# A small EUR account built by inserting its transactions, as a backend would (no kind, no description):
# a US stock, a UK stock priced in GBP and BTC; rates EUR/USD and GBP/USD (the latter only from February).
SMALL_ACCOUNTS = f"""
    INSERT INTO asset (symbol, asset_type, currency) VALUES
        ('AAPL', 'STOCK', 'USD'), ('VOD', 'STOCK', 'GBP'), ('BTC', 'CRYPTO', NULL), ('NEWCO', 'STOCK', 'USD'),
        ('EUR', 'CASH', 'EUR'), ('EUR/USD', 'FOREX', 'USD'), ('GBP/USD', 'FOREX', 'USD');
    INSERT INTO accounts (account_id, currency) VALUES
        ('{EUR_ACCOUNT}', 'EUR'), ('{USD_ACCOUNT}', 'USD'), ('{NO_CURRENCY_ACCOUNT}', NULL);
    INSERT INTO transactions (account_id, date, symbol, asset_type, credit, debit, unit) VALUES
        ('{EUR_ACCOUNT}', '2024-01-10', 'EUR', 'CASH', 1000.00, 0, 'EUR'),
        ('{EUR_ACCOUNT}', '2024-01-15', 'AAPL', 'STOCK', 2, 0, 'SHARES'),
        ('{EUR_ACCOUNT}', '2024-01-15', 'VOD', 'STOCK', 100, 0, 'SHARES'),
        ('{EUR_ACCOUNT}', '2024-02-05', 'BTC', 'CRYPTO', 0.5, 0, 'COINS'),
        ('{EUR_ACCOUNT}', '2024-02-05', 'EUR', 'CASH', 0, 300.00, 'EUR'),
        ('{USD_ACCOUNT}', '2024-01-20', 'VOD', 'STOCK', 10, 0, 'SHARES'),
        ('{USD_ACCOUNT}', '2024-01-20', 'NEWCO', 'STOCK', 3, 0, 'SHARES'),
        ('{NO_CURRENCY_ACCOUNT}', '2024-02-01', 'AAPL', 'STOCK', 1, 0, 'SHARES');
    INSERT INTO market_data (symbol, asset_type, date, price, currency, source, as_of) VALUES
        ('AAPL', 'STOCK', '2024-01-31', 180.00, 'USD', 'test', now()),
        ('AAPL', 'STOCK', '2024-02-29', 190.50, 'USD', 'test', now()),
        ('AAPL', 'STOCK', '2024-03-01', 200.00, 'USD', 'test', now()),
        ('VOD', 'STOCK', '2024-01-30', 0.75, 'GBP', 'test', now()),
        ('VOD', 'STOCK', '2024-02-28', 0.80, 'GBP', 'test', now()),
        ('BTC', 'CRYPTO', '2024-02-29', 60000, NULL, 'test', now()),
        ('BTC', 'CRYPTO', '2024-03-01', 62000, NULL, 'test', now()),
        ('NEWCO', 'STOCK', '2024-02-15', 12.00, 'USD', 'test', now()),
        ('EUR/USD', 'FOREX', '2024-01-31', 1.25, 'USD', 'test', now()),
        ('EUR/USD', 'FOREX', '2024-02-29', 1.20, 'USD', 'test', now()),
        ('GBP/USD', 'FOREX', '2024-02-01', 1.50, 'USD', 'test', now())
"""

VALUE_COLUMNS = "price, price_date, currency, value, account_currency, value_account_currency, missing"


@pytest.fixture
def small_accounts(db):
    db.cursor().execute(SMALL_ACCOUNTS)
    assert run_etl("holdings", "rebuild") == 0
    return db


def valued(db, account: str, month: str) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in rows(
        db, f"SELECT symbol, {VALUE_COLUMNS} FROM holdings_monthly_value WHERE account_id = %s AND month = %s",
        (account, month))}


def test_a_small_eur_account_is_valued_as_computed_by_hand(small_accounts):
    january = valued(small_accounts, EUR_ACCOUNT, "2024-01-01")
    no_gbp_rate = ("no GBP→EUR rate on or before 2024-01-31 (GBP/EUR, EUR/GBP, or both legs through USD)")
    assert january == {
        "EUR": (1, None, "EUR", Decimal("1000.00"), "EUR", Decimal("1000.00"), None),
        "AAPL": (Decimal("180.00"), date(2024, 1, 31), "USD", Decimal("360.00"), "EUR", Decimal(288), None),
        "VOD": (Decimal("0.75"), date(2024, 1, 30), "GBP", Decimal("75.00"), "EUR", None, no_gbp_rate),
    }
    february = valued(small_accounts, EUR_ACCOUNT, "2024-02-01")
    assert february == {
        "EUR": (1, None, "EUR", Decimal("700.00"), "EUR", Decimal("700.00"), None),
        # USD → EUR through the inverse pair: 381 ÷ 1.20
        "AAPL": (Decimal("190.50"), date(2024, 2, 29), "USD", Decimal("381.00"), "EUR", Decimal("317.5"), None),
        # GBP → EUR through USD: 80 × 1.50 ÷ 1.20
        "VOD": (Decimal("0.80"), date(2024, 2, 28), "GBP", Decimal("80.00"), "EUR", Decimal(100), None),
        # crypto is priced in USD: 30000 ÷ 1.20
        "BTC": (Decimal(60000), date(2024, 2, 29), "USD", Decimal(30000), "EUR", Decimal(25000), None),
    }


def test_the_current_month_takes_the_latest_price_and_rate(small_accounts):
    current = rows(small_accounts, f"""
        SELECT symbol, {VALUE_COLUMNS} FROM holdings_monthly_value
         WHERE account_id = %s AND month = date_trunc('month', current_date)""", (EUR_ACCOUNT,))
    by_symbol = {row[0]: row[1:] for row in current}
    assert by_symbol["AAPL"][:4] == (Decimal("200.00"), date(2024, 3, 1), "USD", Decimal("400.00"))
    assert abs(by_symbol["AAPL"][5] - Decimal(400) / Decimal("1.2")) < Decimal("1e-12"), "unrounded"
    assert by_symbol["BTC"][3] == Decimal(31000)


def test_a_direct_pair_a_missing_price_and_an_account_without_currency(small_accounts):
    february = valued(small_accounts, USD_ACCOUNT, "2024-02-01")
    assert february["VOD"][3:] == (Decimal("8.00"), "USD", Decimal("12.0000"), None), "GBP/USD direct: 8 × 1.50"
    january = valued(small_accounts, USD_ACCOUNT, "2024-01-01")
    assert january["NEWCO"] == (None, None, "USD", None, "USD", None,
                                "no price of NEWCO:STOCK on or before 2024-01-31")
    assert valued(small_accounts, NO_CURRENCY_ACCOUNT, "2024-02-01")["AAPL"][3:] == (
        Decimal("190.50"), None, None, "account has no currency (set accounts.currency)")


def test_etl_holdings_value_prints_each_accounts_monthly_total_as_json(small_accounts, capsys):
    capsys.readouterr()
    assert run_etl("holdings", "value", "--account-id", EUR_ACCOUNT, "--format", "json") == 0
    totals = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {t["account_id"] for t in totals} == {EUR_ACCOUNT}
    january, february = totals[0], totals[1]
    assert (january["month"], january["currency"], january["total"]) == ("2024-01-01", "EUR", None)
    assert january["missing"] == ["VOD:STOCK: no GBP→EUR rate on or before 2024-01-31 "
                                  "(GBP/EUR, EUR/GBP, or both legs through USD)"]
    assert february["month"] == "2024-02-01" and february["missing"] == []
    assert Decimal(february["total"]) == Decimal("700") + Decimal("317.5") + Decimal("100") + Decimal("25000")
    assert len(totals) == len(rows(small_accounts, "SELECT DISTINCT month FROM holdings_monthly "
                                                   "WHERE account_id = %s", (EUR_ACCOUNT,)))


def test_etl_holdings_value_prints_a_table_by_default(small_accounts, capsys):
    capsys.readouterr()
    assert run_etl("holdings", "value") == 0
    lines = capsys.readouterr().out.splitlines()
    february = [line for line in lines if line.startswith(f"{EUR_ACCOUNT}  2024-02")]
    assert len(february) == 1 and "26,117.50 EUR" in february[0]
    january = [line for line in lines if line.startswith(f"{EUR_ACCOUNT}  2024-01")][0]
    assert "—" in january and "not valued: VOD:STOCK: no GBP→EUR rate" in january
    assert {line.split()[0] for line in lines} == {EUR_ACCOUNT, USD_ACCOUNT, NO_CURRENCY_ACCOUNT}


def test_mock_accounts_are_stored_with_their_currency(db):
    assert run_etl("generate_mock_transactions", "--accounts", "2", "--months", "1", "--per-month", "2",
                   "--seed", "3", "--currency", "EUR", "--cash-only") == 0
    assert rows(db, "SELECT DISTINCT currency FROM accounts") == [("EUR",)]


def test_holdings_value_has_help_and_refuses_an_unknown_format(etl_env, capsys):
    with pytest.raises(SystemExit) as help_exit:
        run_etl("holdings", "value", "--help")
    assert help_exit.value.code == 0 and "holdings_monthly_value" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad_exit:
        run_etl("holdings", "value", "--format", "csv")
    assert bad_exit.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err


def test_migration_0010_applies_again_to_a_database_in_use(small_accounts):
    from etl.utils.db_utils import migration_files

    [statements] = [text for version, text in migration_files() if version.startswith("0010_")]
    before = rows(small_accounts, f"SELECT account_id, symbol, month, {VALUE_COLUMNS} FROM holdings_monthly_value "
                                  "ORDER BY 1, 2, 3")
    small_accounts.cursor().execute(statements)
    after = rows(small_accounts, f"SELECT account_id, symbol, month, {VALUE_COLUMNS} FROM holdings_monthly_value "
                                 "ORDER BY 1, 2, 3")
    assert before and after == before
    with pytest.raises(psycopg2.errors.CheckViolation, match="transactions_kind_known"):
        small_accounts.cursor().execute(
            f"INSERT INTO transactions (account_id, date, symbol, asset_type, credit, unit, kind) "
            f"VALUES ('{EUR_ACCOUNT}', '2024-03-01', 'EUR', 'CASH', 1, 'EUR', 'gift')")

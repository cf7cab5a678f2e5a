"""The schema's integrity: the database itself refuses rows that break the rules."""

from __future__ import annotations

import psycopg2
import psycopg2.errorcodes as codes
import pytest

from support.db import scalar

ACCOUNT = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
def seeded(db):
    execute(db, "INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK'), ('USD', 'CASH')")
    execute(db, "INSERT INTO accounts (account_id) VALUES (%s)", (ACCOUNT,))
    return db


def execute(db, statement, params=()):
    with db.cursor() as cur:
        cur.execute(statement, params)


def rejected(db, statement, params=()) -> str:
    """The SQLSTATE with which the database refuses `statement`."""
    with pytest.raises(psycopg2.Error) as refused:
        execute(db, statement, params)
    return refused.value.pgcode


def market_row(price="10", high="11", low="9", symbol="AAPL", asset_type="STOCK"):
    return ("INSERT INTO market_data (symbol, asset_type, date, price, high, low, source, as_of) "
            "VALUES (%s, %s, '2024-01-02', %s, %s, %s, 'test', now())", (symbol, asset_type, price, high, low))


def transaction_row(credit="0", debit="5"):
    return ("INSERT INTO transactions (account_id, date, symbol, asset_type, credit, debit, unit) "
            "VALUES (%s, '2024-01-02', 'USD', 'CASH', %s, %s, 'USD')", (ACCOUNT, credit, debit))


def test_a_valid_market_row_and_transaction_are_accepted(seeded):
    execute(seeded, *market_row())
    execute(seeded, *transaction_row())
    assert scalar(seeded, "SELECT count(*) FROM market_data") == 1


def test_negative_price_is_a_check_violation(seeded):
    assert rejected(seeded, *market_row(price="-1")) == codes.CHECK_VIOLATION


def test_zero_price_is_a_check_violation(seeded):
    assert rejected(seeded, *market_row(price="0")) == codes.CHECK_VIOLATION


def test_nan_price_is_a_check_violation(seeded):
    assert rejected(seeded, *market_row(price="NaN")) == codes.CHECK_VIOLATION


def test_high_below_low_is_a_check_violation(seeded):
    assert rejected(seeded, *market_row(high="8", low="9")) == codes.CHECK_VIOLATION


def test_negative_credit_is_a_check_violation(seeded):
    assert rejected(seeded, *transaction_row(credit="-5", debit="0")) == codes.CHECK_VIOLATION


def test_negative_debit_is_a_check_violation(seeded):
    assert rejected(seeded, *transaction_row(credit="5", debit="-1")) == codes.CHECK_VIOLATION


def test_unknown_asset_type_is_a_check_violation(seeded):
    assert rejected(seeded, "INSERT INTO asset (symbol, asset_type) VALUES ('GOLD', 'BOND')") \
        == codes.CHECK_VIOLATION


def test_duplicate_asset_is_a_unique_violation(seeded):
    assert rejected(seeded, "INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK')") \
        == codes.UNIQUE_VIOLATION


def test_duplicate_market_day_is_a_unique_violation(seeded):
    execute(seeded, *market_row())
    assert rejected(seeded, *market_row(price="12")) == codes.UNIQUE_VIOLATION


def test_market_row_for_an_unregistered_asset_is_a_foreign_key_violation(seeded):
    assert rejected(seeded, *market_row(symbol="NOPE")) == codes.FOREIGN_KEY_VIOLATION


def test_missing_price_is_a_not_null_violation(seeded):
    assert rejected(seeded, "INSERT INTO market_data (symbol, asset_type, date, source, as_of) "
                            "VALUES ('AAPL', 'STOCK', '2024-01-02', 'test', now())") == codes.NOT_NULL_VIOLATION


def test_insane_date_is_a_check_violation(seeded):
    assert rejected(seeded, "INSERT INTO market_data (symbol, asset_type, date, price, source, as_of) "
                            "VALUES ('AAPL', 'STOCK', '1800-01-01', 1, 'test', now())") == codes.CHECK_VIOLATION


def test_unknown_job_status_is_a_check_violation(seeded):
    assert rejected(seeded, "INSERT INTO etl_job_runs (job, status) VALUES ('x', 'done')") == codes.CHECK_VIOLATION


def test_money_columns_are_numeric_and_times_timestamptz(seeded):
    types = dict(seeded_types(seeded))
    assert {types[("market_data", c)] for c in ("price", "open", "high", "low", "adj_close", "volume")} \
        == {"numeric"}
    assert {types[("transactions", c)] for c in ("credit", "debit")} == {"numeric"}
    assert types[("holdings", "total_balance")] == "numeric"
    assert {types[("market_data", "as_of")], types[("etl_outbox", "created_at")]} == {"timestamp with time zone"}


def seeded_types(db):
    with db.cursor() as cur:
        cur.execute("SELECT (table_name, column_name), data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema()")
        return [(tuple(k.strip("()").split(",")), t) for k, t in cur.fetchall()]


def test_latest_view_gives_each_assets_newest_row(seeded):
    for day in ("2024-01-02", "2024-01-05", "2024-01-03"):
        execute(seeded, "INSERT INTO market_data (symbol, asset_type, date, price, source, as_of) "
                        "VALUES ('AAPL', 'STOCK', %s, 1, 'test', now())", (day,))
    assert str(scalar(seeded, "SELECT date FROM market_data_latest WHERE symbol = 'AAPL'")) == "2024-01-05"


def test_infinite_price_is_a_check_violation(seeded):
    assert rejected(seeded, *market_row(price="Infinity", high=None, low=None)) == codes.CHECK_VIOLATION


def test_nan_credit_is_a_check_violation(seeded):
    assert rejected(seeded, *transaction_row(credit="NaN")) == codes.CHECK_VIOLATION


# ---- value bounds (migration 0011): the same as etl/validate.py's ----

@pytest.mark.parametrize("column, value", [("price", "1e12"), ("price", "1e-13"), ("volume", "1e400"),
                                           ("volume", "1e15"), ("adj_close", "1e400"), ("change", "-1e12"),
                                           ("percent_change", "1e9")])
def test_a_number_outside_its_bounds_is_a_check_violation(seeded, column, value):
    values = {"price": "10", column: value}
    statement = (f"INSERT INTO market_data (symbol, asset_type, date, source, as_of, {', '.join(values)}) "
                 f"VALUES ('AAPL', 'STOCK', '2024-01-02', 'test', now(), {', '.join(['%s'] * len(values))})")
    assert rejected(seeded, statement, tuple(values.values())) == codes.CHECK_VIOLATION


def test_a_tiny_crypto_price_and_a_huge_volume_inside_the_bounds_are_accepted(seeded):
    execute(seeded, "INSERT INTO asset (symbol, asset_type) VALUES ('SHIB', 'CRYPTO')")
    execute(seeded, "INSERT INTO market_data (symbol, asset_type, date, price, volume, source, as_of) "
                    "VALUES ('SHIB', 'CRYPTO', '2024-01-02', 0.0000000123, 999999999999999, 'test', now())")
    assert scalar(seeded, "SELECT count(*) FROM market_data") == 1

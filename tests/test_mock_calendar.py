"""Mock accounts keep a believable calendar: markets' trading days, salary on payday, nothing in the future."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from etl.mock.trading_days import first_business_day, month_end, rows_in_month, trading_flags
from support.db import rows, scalar
from support.runner import run_etl

# Weekdays on which the market of the fixture was closed: no stored bar for AAPL and VOO.
CLOSED_WEEKDAYS = """
    SELECT d::date FROM generate_series(current_date - interval '11 months', current_date - interval '3 days',
                                        interval '17 days') AS d
     WHERE extract(isodow FROM d) < 6"""


@pytest.fixture
def market_with_holidays(db):
    """AAPL and VOO stored on weekdays but a few market holidays; BTC every day; a year and a half back."""
    with db.cursor() as cur:
        cur.execute("""
            INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK'), ('VOO', 'ETF'), ('BTC', 'CRYPTO');
            INSERT INTO market_data (symbol, asset_type, date, price, source, as_of)
            SELECT a.symbol, a.asset_type, d::date, round((a.base * (1 + 0.1 * sin(extract(doy FROM d))))::numeric, 2),
                   'test', now()
              FROM (VALUES ('AAPL', 'STOCK', 180.0), ('VOO', 'ETF', 450.0), ('BTC', 'CRYPTO', 60000.0))
                   AS a(symbol, asset_type, base)
             CROSS JOIN generate_series(current_date - interval '18 months', current_date, interval '1 day') AS d
             WHERE a.asset_type = 'CRYPTO' OR extract(isodow FROM d) < 6""")
        cur.execute(f"DELETE FROM market_data WHERE asset_type <> 'CRYPTO' AND date IN ({CLOSED_WEEKDAYS})")
    return db


def test_a_generated_year_for_20_accounts_keeps_the_calendar(market_with_holidays):
    db = market_with_holidays
    assert run_etl("generate_mock_transactions", "--accounts", "20", "--months", "12", "--per-month", "20",
                   "--seed", "13") == 0
    today = scalar(db, "SELECT current_date")
    closed = [row[0] for row in rows(db, CLOSED_WEEKDAYS)]
    assert closed, "the fixture has market holidays"

    stock_legs = rows(db, "SELECT date FROM transactions WHERE asset_type IN ('STOCK', 'ETF')")
    assert len(stock_legs) > 300
    assert [d for (d,) in stock_legs if d.isoweekday() > 5] == [], "no stock or ETF leg on a weekend"
    assert [d for (d,) in stock_legs if d in closed] == [], "no stock or ETF leg on a day the market was closed"
    assert scalar(db, "SELECT count(*) FROM transactions WHERE asset_type = 'CRYPTO' "
                      "AND extract(isodow FROM date) > 5") > 0, "crypto trades at weekends"
    assert scalar(db, "SELECT count(*) FROM transactions WHERE kind IN ('deposit', 'withdrawal') "
                      "AND description <> 'Opening deposit' AND extract(isodow FROM date) > 5") > 0, \
        "cash moves at weekends"

    assert scalar(db, "SELECT max(date) FROM transactions") <= today, "nothing after today"
    month = today.replace(day=1)
    per_account = rows(db, """
        SELECT account_id, count(*), min(date), max(date) FROM transactions
         WHERE date >= %s AND kind NOT IN ('dividend', 'split') GROUP BY account_id""", (month,))
    expected = rows_in_month(20, month, today)
    assert len(per_account) == (20 if expected else 0)
    for _, count, first, last in per_account:
        assert count == expected, "the current month gets round(K × days elapsed ÷ days in the month) rows"
        assert month <= first and last <= today

    assert scalar(db, "SELECT count(*) FROM transactions WHERE kind IS NULL OR description IS NULL "
                      "OR description = ''") == 0, "every row has a kind and a description"
    salaries = rows(db, "SELECT date, description, count(*) FROM transactions WHERE kind = 'salary' "
                        "GROUP BY date, description ORDER BY date")
    assert all(day == first_business_day(day.replace(day=1)) for day, _, _ in salaries)
    assert all(description == "Salary" and count == 20 for _, description, count in salaries)
    assert len(salaries) in (11, 12), "one payday a month (this month's may be still to come)"


def test_trades_describe_themselves(market_with_holidays):
    db = market_with_holidays
    assert run_etl("generate_mock_transactions", "--accounts", "2", "--months", "2", "--per-month", "20",
                   "--seed", "4") == 0
    kinds = {row[0] for row in rows(db, "SELECT DISTINCT kind FROM transactions")}
    assert {"deposit", "salary", "buy", "sell"} <= kinds
    legs = rows(db, """
        SELECT a.kind, a.description, a.symbol, a.credit + a.debit, c.credit + c.debit FROM transactions a
          JOIN transactions c ON c.transaction_id = a.transaction_id + 1
         WHERE a.asset_type <> 'CASH' AND a.kind IN ('buy', 'sell')""")
    assert legs
    for kind, description, symbol, quantity, cash in legs:
        verb, shown, name, at, price = description.split(" ")
        assert (verb, name, at) == (kind.capitalize(), symbol, "@")
        assert float(shown) == float(quantity)
        assert abs(float(price) * float(quantity) - float(cash)) <= 0.006 * max(1.0, float(quantity))
    assert rows(db, "SELECT DISTINCT description FROM transactions WHERE kind = 'deposit' ORDER BY 1") == [
        ("Deposit",), ("Opening deposit",)]


def test_a_stock_trades_on_its_bar_days_then_weekdays_after_the_newest_bar():
    friday, saturday, monday = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 4)
    bars = {date(2024, 2, 29), monday}                    # Friday the 1st was a holiday
    flags = trading_flags("STOCK", friday, 10, bars)
    days = [friday + timedelta(days=i) for i in range(10)]
    assert [d for d, open_ in zip(days, flags) if open_] == [monday, date(2024, 3, 5), date(2024, 3, 6),
                                                             date(2024, 3, 7), date(2024, 3, 8)]
    assert trading_flags("STOCK", saturday, 2) == [False, False], "no bars at all: weekdays"
    assert trading_flags("CRYPTO", saturday, 2) == [True, True]


def test_the_current_month_gets_its_share_of_the_rows():
    june = date(2024, 6, 1)
    assert rows_in_month(20, june, date(2024, 6, 1)) == 1          # 20 × 1/30 = 0.67
    assert rows_in_month(20, june, date(2024, 6, 15)) == 10
    assert rows_in_month(20, june, date(2024, 6, 30)) == 20
    assert rows_in_month(20, june, date(2024, 8, 2)) == 20          # a past month
    assert rows_in_month(3, june, date(2024, 6, 5)) == 1             # 0.5 rounds half up
    assert month_end(date(2024, 2, 1)) == date(2024, 2, 29)


def test_salary_comes_on_the_first_business_day():
    assert first_business_day(date(2024, 6, 1)) == date(2024, 6, 3)   # a Saturday
    assert first_business_day(date(2024, 7, 1)) == date(2024, 7, 1)

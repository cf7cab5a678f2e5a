"""Mock accounts live through stored splits and dividends: extra shares and cash, holdings consistent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from etl.mock.actions import ratio_text
from support.db import rows
from support.runner import run_etl
from test_mock_transactions import violations

# AAPL as traded: about 600 before its 4:1 split (ex-date about 90 days back), about 150 from it on;
# a dividend of 0.25 (ex-date about 40 days back). Stored on weekdays for 8 months.
MARKET = """
    INSERT INTO asset (symbol, asset_type, currency) VALUES ('AAPL', 'STOCK', 'USD');
    CREATE TEMP TABLE ex_dates AS
    SELECT (SELECT min(d)::date FROM generate_series(current_date - 90, current_date, interval '1 day') d
             WHERE extract(isodow FROM d) < 6) AS split_date,
           (SELECT min(d)::date FROM generate_series(current_date - 40, current_date, interval '1 day') d
             WHERE extract(isodow FROM d) < 6) AS dividend_date;
    INSERT INTO market_data (symbol, asset_type, date, price, currency, source, as_of)
    SELECT 'AAPL', 'STOCK', d::date,
           round((150 * (1 + 0.05 * sin(extract(doy FROM d))))::numeric, 2)
               * CASE WHEN d < (SELECT split_date FROM ex_dates) THEN 4 ELSE 1 END,
           'USD', 'test', now()
      FROM generate_series(current_date - interval '8 months', current_date, interval '1 day') AS d
     WHERE extract(isodow FROM d) < 6;
    INSERT INTO corporate_actions (symbol, asset_type, date, kind, ratio, amount, currency, source)
    SELECT 'AAPL', 'STOCK', split_date, 'split', 4, NULL, NULL, 'test' FROM ex_dates
    UNION ALL
    SELECT 'AAPL', 'STOCK', dividend_date, 'dividend', NULL, 0.25, 'USD', 'test' FROM ex_dates
"""

# Per account: AAPL held at the start of each ex-date, and the split and dividend rows it got.
ACCOUNTS_AT_EX_DATES = """
    SELECT a.account_id,
           (SELECT coalesce(sum(credit - debit), 0) FROM transactions t
             WHERE t.account_id = a.account_id AND t.symbol = 'AAPL' AND t.date < %(split)s),
           (SELECT array_agg(ROW(t.date, t.credit, t.debit, t.description)::text) FROM transactions t
             WHERE t.account_id = a.account_id AND t.kind = 'split'),
           (SELECT coalesce(sum(credit - debit), 0) FROM transactions t
             WHERE t.account_id = a.account_id AND t.symbol = 'AAPL' AND t.date < %(dividend)s),
           (SELECT array_agg(ROW(t.date, t.symbol, t.credit, t.debit)::text) FROM transactions t
             WHERE t.account_id = a.account_id AND t.kind = 'dividend')
      FROM accounts a ORDER BY a.account_id"""


@pytest.fixture
def market_with_actions(db):
    db.cursor().execute(MARKET)
    return db


def test_holders_get_the_extra_shares_and_the_dividend_and_holdings_stay_consistent(market_with_actions, capsys):
    db = market_with_actions
    split, dividend = rows(db, "SELECT split_date, dividend_date FROM ex_dates")[0]
    assert run_etl("generate_mock_transactions", "--symbols", "AAPL:STOCK", "--accounts", "8", "--months", "6",
                   "--per-month", "20", "--seed", "21") == 0
    found = rows(db, ACCOUNTS_AT_EX_DATES, {"split": split, "dividend": dividend})
    split_holders = dividend_holders = 0
    for _, held_at_split, splits, held_at_dividend, dividends in found:
        if held_at_split > 0:
            split_holders += 1
            assert splits == [f'({split},{held_at_split * 3:.4f},0.0000,"Split 4:1 AAPL")']
        else:
            assert splits is None
        cash = (held_at_dividend * Decimal("0.25")).quantize(Decimal("0.01"))
        if cash > 0:
            dividend_holders += 1
            assert dividends == [f"({dividend},USD,{cash},0.00)"]
        else:
            assert dividends is None
    assert split_holders >= 2 and dividend_holders >= 2, "the fixture's accounts held AAPL on both ex-dates"
    assert violations(db) == {}

    capsys.readouterr()
    assert run_etl("holdings", "rebuild") == 0
    assert "nothing changed" in capsys.readouterr().out


def test_split_ratios_read_as_people_write_them():
    assert [ratio_text(Decimal(r)) for r in ("4", "0.1", "1.5")] == ["4:1", "1:10", "3:2"]

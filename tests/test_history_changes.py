"""History rows carry their change: the move from the previous stored trading day, on the adjusted basis."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from support.db import rows
from support.runner import run_etl
from support.yahoo_server import YahooServer, close_price

JOB = "fetch_historical_market_data"
START, END = date(2024, 1, 1), date(2024, 3, 29)
SPLIT_DAY = date(2024, 2, 14)  # SPLT trades 2:1 from this day on


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    return YahooServer(fake_api, holidays={date(2024, 1, 15)})


def backfill(*symbols: str, start: date = START, end: date = END) -> int:
    return run_etl(JOB, "--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", end.isoformat())


def history(db, symbol: str) -> list[tuple]:
    return rows(db, "SELECT date, price, adj_close, change, percent_change FROM market_data "
                    "WHERE symbol = %s ORDER BY date", (symbol,))


def expected_move(previous: tuple, row: tuple) -> tuple[Decimal, Decimal]:
    """(change, percent_change) of `row` after `previous`, as the issue defines them."""
    _, _, prev_adj, _, _ = previous
    _, price, adj, _, _ = row
    move = adj / prev_adj - 1
    percent = (move * 100).quantize(Decimal("0.000001"))
    change = (price * move / (1 + move)).quantize(Decimal(1).scaleb(price.as_tuple().exponent - 4))
    return change, percent


def test_after_a_backfill_every_row_but_each_assets_first_has_its_change(yahoo, db):
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 0
    for symbol in ("AAPL", "MSFT"):
        stored = history(db, symbol)
        assert len(stored) > 50
        assert stored[0][3:] == (None, None)
        for previous, row in zip(stored, stored[1:]):
            assert row[3:] == expected_move(previous, row), row[0]


def test_across_a_split_the_change_is_the_market_move_not_the_split(yahoo, db):
    yahoo.splits["SPLT"] = [(SPLIT_DAY, 2, 1)]
    for day in yahoo.trading_days("SPLT", START, SPLIT_DAY - timedelta(days=1)):
        yahoo.closes[("SPLT", day)] = close_price("SPLT", day) * 2   # as traded: twice the later scale
    assert backfill("SPLT:STOCK") == 0
    stored = {row[0]: row for row in history(db, "SPLT")}
    before, on = stored[SPLIT_DAY - timedelta(days=1)], stored[SPLIT_DAY]
    assert on[1] < before[1] / Decimal("1.5")            # the as-traded price halved…
    change, percent = on[3], on[4]
    assert abs(percent) < 10                             # …but the day moved a few percent
    assert (change, percent) == expected_move(before, on)
    assert percent == ((on[1] / (before[1] / 2) - 1) * 100).quantize(Decimal("0.000001"))


def test_an_earlier_day_arriving_later_fixes_the_next_days_change(yahoo, db):
    assert backfill("AAPL:STOCK", start=date(2024, 2, 14)) == 0
    first = history(db, "AAPL")[0]
    assert first[0] == date(2024, 2, 14) and first[3:] == (None, None)

    assert backfill("AAPL:STOCK", start=date(2024, 2, 12)) == 0
    stored = {row[0]: row for row in history(db, "AAPL")}
    assert stored[date(2024, 2, 12)][3:] == (None, None)
    assert stored[date(2024, 2, 14)][3:] == expected_move(stored[date(2024, 2, 13)], stored[date(2024, 2, 14)])


def test_a_day_refetched_with_a_new_close_fixes_the_day_after_it(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    with db.cursor() as cur:
        cur.execute("DELETE FROM market_data WHERE symbol = 'AAPL' AND date = '2024-02-14'")
        cur.execute("UPDATE market_data SET change = 99, percent_change = 99 "
                    "WHERE symbol = 'AAPL' AND date = '2024-02-15'")
    assert backfill("AAPL:STOCK") == 0
    stored = {row[0]: row for row in history(db, "AAPL")}
    assert stored[date(2024, 2, 15)][3:] == expected_move(stored[date(2024, 2, 14)], stored[date(2024, 2, 15)])


def test_the_moves_a_first_backfill_writes_are_those_the_statement_computes_from_what_is_stored(yahoo, db):
    yahoo.splits["SPLT"] = [(SPLIT_DAY, 2, 1)]
    yahoo.dividends["DIVD"] = [(date(2024, 2, 20), Decimal("1.25"))]
    assert backfill("AAPL:STOCK", "SPLT:STOCK", "DIVD:STOCK", "BTC:CRYPTO") == 0
    written = rows(db, "SELECT symbol, date, change, percent_change, xmin::text FROM market_data ORDER BY 1, 2")
    assert sum(1 for row in written if row[2] is not None) > 200
    for symbol, asset_type in (("AAPL", "STOCK"), ("SPLT", "STOCK"), ("DIVD", "STOCK"), ("BTC", "CRYPTO")):
        assert fill(db, symbol, asset_type, START, END, today=END + timedelta(days=1)) == 0, symbol
    assert rows(db, "SELECT symbol, date, change, percent_change, xmin::text FROM market_data ORDER BY 1, 2") \
        == written


# --- the statement itself, on rows written directly ------------------------------------------

def write_rows(db, symbol: str, asset_type: str, days: list[tuple]) -> None:
    with db.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (symbol, asset_type))
        for day, price, adj, change, percent in days:
            cur.execute("INSERT INTO market_data (symbol, asset_type, date, price, adj_close, change, "
                        "percent_change, source, as_of) VALUES (%s, %s, %s, %s, %s, %s, %s, 'test', now())",
                        (symbol, asset_type, day, price, adj, change, percent))


def fill(db, symbol: str, asset_type: str, first: date, last: date, today: date) -> int:
    from etl.models import Asset
    from etl.pipeline.bar_rows import fill_history_changes

    with db.cursor() as cur:
        return fill_history_changes(cur, [(Asset(symbol, asset_type), first, last)], today=today)


def changes(db, symbol: str) -> list[tuple]:
    return rows(db, "SELECT change, percent_change FROM market_data WHERE symbol = %s ORDER BY date", (symbol,))


D1, D2, D3 = date(2024, 5, 6), date(2024, 5, 7), date(2024, 5, 8)


def test_without_an_adjusted_close_the_move_is_the_price_move(db):
    write_rows(db, "EUR/USD", "FOREX", [(D1, Decimal("1.0800"), None, None, None),
                                        (D2, Decimal("1.0854"), None, None, None)])
    assert fill(db, "EUR/USD", "FOREX", D1, D2, today=D3) == 1
    assert changes(db, "EUR/USD") == [(None, None), (Decimal("0.00540000"), Decimal("0.500000"))]


def test_todays_row_keeps_the_change_its_live_quote_gave_it_until_the_day_is_past(db):
    write_rows(db, "AAPL", "STOCK", [(D1, Decimal("100.00"), Decimal("100.00"), None, None),
                                     (D2, Decimal("110.00"), Decimal("110.00"), Decimal("9.50"), Decimal("9.454"))])
    assert fill(db, "AAPL", "STOCK", D1, D2, today=D2) == 0
    assert changes(db, "AAPL")[1] == (Decimal("9.50"), Decimal("9.454"))
    assert fill(db, "AAPL", "STOCK", D1, D2, today=D3) == 1
    assert changes(db, "AAPL")[1] == (Decimal("10.000000"), Decimal("10.000000"))


def test_a_second_run_over_the_same_rows_rewrites_nothing(db):
    write_rows(db, "BTC", "CRYPTO", [(D1, Decimal("60000"), None, None, None),
                                     (D2, Decimal("61200"), None, None, None),
                                     (D3, Decimal("59976"), None, None, None)])
    assert fill(db, "BTC", "CRYPTO", D1, D3, today=D3 + timedelta(days=1)) == 2
    assert changes(db, "BTC")[1:] == [(Decimal("1200.0000"), Decimal("2.000000")),
                                      (Decimal("-1224.0000"), Decimal("-2.000000"))]
    assert fill(db, "BTC", "CRYPTO", D1, D3, today=D3 + timedelta(days=1)) == 0


def test_a_move_beyond_the_tables_bounds_is_left_null_instead_of_failing_the_asset(db):
    write_rows(db, "TINY", "CRYPTO", [(D1, Decimal("1E-12"), None, None, None),
                                      (D2, Decimal("0.01"), None, None, None)])
    write_rows(db, "ODD", "STOCK", [(D1, Decimal("100"), Decimal("100"), None, None),
                                    (D2, Decimal("100000000000"), Decimal("1"), None, None)])
    assert fill(db, "TINY", "CRYPTO", D1, D2, today=D3) == 1
    assert fill(db, "ODD", "STOCK", D1, D2, today=D3) == 1
    change, percent = changes(db, "TINY")[1]
    assert percent is None and change == Decimal("0.010000")
    assert changes(db, "ODD")[1] == (None, Decimal("-99.000000"))

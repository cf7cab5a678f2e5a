"""Synthetic prices: one random walk per asset, the same for every run, seed and account."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from etl.mock.accounts import seed_account_ids
from etl.mock.synthetic import EPOCH, synthetic_price, synthetic_prices
from support.db import rows
from support.runner import run_etl

# The price of each AAPL trade of some accounts, from its description ("Buy 3 AAPL @ 187.44"), by day.
TRADED_PRICES = """
    SELECT DISTINCT date, split_part(description, ' @ ', 2)::numeric FROM transactions
     WHERE symbol = 'AAPL' AND kind IN ('buy', 'sell') AND account_id = ANY(%s::uuid[])"""


def traded_prices(db, seed: int, accounts: int) -> dict[date, Decimal]:
    found = rows(db, TRADED_PRICES, ([str(a) for a in seed_account_ids(seed, accounts)],))
    assert len({day for day, _ in found}) == len(found), "one price a day"
    return dict(found)


def test_two_runs_with_different_seeds_trade_aapl_at_the_same_price_on_the_same_day(db):
    db.cursor().execute("INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK')")
    for seed, months in ((1, "4"), (2, "2")):
        assert run_etl("generate_mock_transactions", "--accounts", "4", "--months", months, "--per-month", "30",
                       "--seed", str(seed), "--stocks-only") == 0
    first_run, second_run = traded_prices(db, 1, 4), traded_prices(db, 2, 4)
    both = [day for day in second_run if day in first_run]
    assert len(both) > 5, "the runs traded on some of the same days"
    assert all(first_run[day] == second_run[day] for day in both)
    for day, price in second_run.items():
        assert price == synthetic_price("AAPL", "STOCK", day)
    assert len(set(second_run.values())) > 5, "the price moves from day to day"


def test_a_synthetic_price_is_a_function_of_symbol_type_and_day_alone():
    day = date(2025, 3, 14)
    assert synthetic_price("AAPL", "STOCK", day) == synthetic_price("AAPL", "STOCK", day)
    assert synthetic_price("AAPL", "STOCK", day) != synthetic_price("AAPL", "ETF", day)
    assert synthetic_price("AAPL", "STOCK", day) != synthetic_price("MSFT", "STOCK", day)
    walked = list(synthetic_prices("AAPL", "STOCK", day - timedelta(days=9), day))
    assert walked[-1] == synthetic_price("AAPL", "STOCK", day), "walking a span gives the same prices"
    assert len(walked) == 10 and len(set(walked)) > 5


def test_synthetic_levels_are_plausible_for_each_kind_of_asset():
    days = [EPOCH + timedelta(days=365 * years) for years in range(0, 30, 3)]
    for symbol in ("AAPL", "KO", "NVDA", "ZZZZ"):
        assert all(Decimal(5) < synthetic_price(symbol, "STOCK", d) < Decimal(1500) for d in days), symbol
    for pair in ("EUR/USD", "GBP/USD", "USD/JPY"):
        assert all(Decimal("0.3") < synthetic_price(pair, "FOREX", d) < Decimal(4) for d in days), pair
    btc, doge = synthetic_price("BTC", "CRYPTO", days[-1]), synthetic_price("DOGE", "CRYPTO", days[-1])
    assert Decimal(5_000) < btc < Decimal(500_000) and Decimal("0.01") < doge < Decimal(2)
    magnitudes = {synthetic_price(coin, "CRYPTO", days[-1]).adjusted() for coin in ("AAA", "BBB", "CCC", "DDD",
                                                                                        "EEE", "FFF", "GGG")}
    assert len(magnitudes) >= 3, "each coin its own order of magnitude"


def test_synthetic_prices_are_exact_decimals_above_zero():
    for symbol, asset_type in (("AAPL", "STOCK"), ("SHIB", "CRYPTO"), ("EUR/USD", "FOREX")):
        for price in synthetic_prices(symbol, asset_type, date(2024, 1, 1), date(2024, 3, 1)):
            assert isinstance(price, Decimal) and price > 0
    assert synthetic_price("AAPL", "STOCK", date(2024, 1, 1)).as_tuple().exponent == -2
    assert synthetic_price("EUR/USD", "FOREX", date(2024, 1, 1)).as_tuple().exponent == -4

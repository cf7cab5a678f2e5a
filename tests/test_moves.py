"""pipeline.moves: the first guess of a new history row's change, from the bar before it in the batch."""

import random
from datetime import date, timedelta
from decimal import Decimal

from etl.models import Asset, Bar
from etl.pipeline import store
from etl.pipeline.moves import batch_moves

D1, D2, D3, D4 = date(2024, 5, 6), date(2024, 5, 7), date(2024, 5, 8), date(2024, 5, 9)


def bar(day: date, price: str, adj: str | None = None, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, "STOCK", day, Decimal(price), "yahoo", adj_close=Decimal(adj) if adj else None)


def test_each_bar_after_the_first_moves_on_the_adjusted_basis_rounded_half_up():
    moves = batch_moves([bar(D2, "55.00", "55.00"), bar(D1, "100.00", "50.00")], today=D4)
    assert moves == {("AAPL", "STOCK", D2): (Decimal("5.000000"), Decimal("10.000000"))}
    moves = batch_moves([bar(D1, "3"), bar(D2, "3.0000001")], today=D4)   # 3.33333335e-6 %
    assert moves[("AAPL", "STOCK", D2)] == (Decimal("0.0000001"), Decimal("0.000003"))


def test_without_both_adjusted_closes_the_prices_move():
    moves = batch_moves([bar(D1, "100", "40"), bar(D2, "110")], today=D4)
    assert moves[("AAPL", "STOCK", D2)][1] == Decimal("10.000000")


def test_assets_do_not_mix_and_today_is_left_to_the_quotes():
    moves = batch_moves([bar(D1, "10"), bar(D2, "11"), bar(D3, "12"), bar(D1, "20", symbol="MSFT")], today=D3)
    assert set(moves) == {("AAPL", "STOCK", D2)}


def test_a_move_beyond_the_tables_bounds_is_none():
    moves = batch_moves([bar(D1, "0.000000000001"), bar(D2, "0.01")], today=D4)
    assert moves[("AAPL", "STOCK", D2)] == (Decimal("0.010000"), None)


def random_price(rng: random.Random) -> Decimal:
    """A price with 0 to 8 decimals anywhere from 1e-6 to 1e7, or a near-tie of word boundaries."""
    if rng.random() < 0.2:
        return Decimal(rng.choice(["1", "1.0000", "9999", "10000", "10000.5", "0.0001", "99.99", "100", "1E+2"]))
    places = rng.randint(0, 8)
    return Decimal(rng.randint(1, 10 ** rng.randint(1, 12))).scaleb(-places).max(Decimal("0.000001")).min(Decimal("1E+11"))


def test_the_moves_are_those_postgresql_computes_digit_for_digit(db):
    """batch_moves is final for a new asset's rows (fill_history_changes is skipped for them), so on
    thousands of random prices and adjusted closes of every scale it must equal the statement's result."""
    rng = random.Random(20261201)
    days = [D1 + timedelta(days=i) for i in range(600)]
    bars = []
    for symbol in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        for day in days:
            price = random_price(rng)
            adj = random_price(rng) if rng.random() < 0.8 else None
            bars.append(Bar(symbol, "STOCK", day, price, "yahoo", adj_close=adj))
    assets = [Asset(symbol, "STOCK") for symbol in ("AAA", "BBB", "CCC", "DDD", "EEE")]
    today = days[-1] + timedelta(days=1)
    with db.cursor() as cur:
        cur.executemany("INSERT INTO asset (symbol, asset_type) VALUES (%s, 'STOCK')", [(a.symbol,) for a in assets])
        cur.executemany("INSERT INTO market_data (symbol, asset_type, date, price, adj_close, source, as_of) "
                        "VALUES (%s, %s, %s, %s, %s, 'yahoo', now())",
                        [(b.symbol, b.asset_type, b.date, b.price, b.adj_close) for b in bars])
        store.fill_history_changes(cur, [(asset, days[0], days[-1]) for asset in assets], today=today)
        cur.execute("SELECT symbol, asset_type, date, change, percent_change FROM market_data "
                    "WHERE change IS NOT NULL OR percent_change IS NOT NULL")
        stored = {(symbol, kind, day): (change, percent) for symbol, kind, day, change, percent in cur.fetchall()}
    expected = batch_moves(bars, today=today)
    assert len(stored) > 2900
    assert {key: value for key, value in expected.items() if value != (None, None)} == stored

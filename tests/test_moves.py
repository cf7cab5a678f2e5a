"""pipeline.moves: the first guess of a new history row's change, from the bar before it in the batch."""

from datetime import date
from decimal import Decimal

from etl.models import Bar
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

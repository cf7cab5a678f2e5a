"""A new history row's change, computed while it is written (bar_rows.upsert_bars) from the rows written
with it: for an asset with nothing stored it is final, the very value fill_history_changes would set."""

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from etl.assets import register_assets
from etl.models import Asset, Bar
from etl.pipeline.bar_rows import encode_bars, fill_history_changes, upsert_bars
from support.db import rows

D1 = date(2024, 5, 6)
FETCHED_AT = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
ASSETS = [Asset(symbol, "STOCK") for symbol in ("AAA", "BBB", "CCC", "DDD", "EEE")]


def random_price(rng: random.Random) -> Decimal:
    """A price with 0 to 8 decimals anywhere from 1e-6 to 1e11, or a near-tie of numeric's base-10000 words."""
    if rng.random() < 0.2:
        return Decimal(rng.choice(["1", "1.0000", "9999", "10000", "10000.5", "0.0001", "99.99", "100", "1E+2"]))
    places = rng.randint(0, 8)
    return Decimal(rng.randint(1, 10 ** rng.randint(1, 12))).scaleb(-places).max(Decimal("0.000001")).min(
        Decimal("1E+11"))


def random_history(rng: random.Random, days: list[date]) -> dict[tuple[str, str], list[Bar]]:
    return {(asset.symbol, asset.asset_type): [
        Bar(asset.symbol, asset.asset_type, day, random_price(rng), "yahoo",
            adj_close=random_price(rng) if rng.random() < 0.8 else None) for day in days] for asset in ASSETS}


def changes(db) -> dict:
    return {(symbol, day): (change, percent) for symbol, day, change, percent in
            rows(db, "SELECT symbol, date, change, percent_change FROM market_data")}


def test_a_new_assets_changes_are_those_fill_history_changes_sets(db):
    """Thousands of random prices and adjusted closes of every scale (numeric division picks its scale
    from the operands): the changes written with the rows equal those computed again afterwards."""
    rng = random.Random(20261201)
    days = [D1 + timedelta(days=i) for i in range(600)]
    history = random_history(rng, days)
    with db.cursor() as cur:
        register_assets(cur, ASSETS)
        written, inserted = upsert_bars(cur, {key: encode_bars(bars, FETCHED_AT) for key, bars in history.items()},
                                        new_assets=history)
        assert (written, inserted) == (3000, set(history))
        upserted = changes(db)
        cur.execute("UPDATE market_data SET change = NULL, percent_change = NULL")
        fill_history_changes(cur, [(asset, days[0], days[-1]) for asset in ASSETS], today=days[-1])
    assert sum(1 for value in upserted.values() if value != (None, None)) > 2900
    assert changes(db) == upserted


def test_each_row_after_an_assets_first_moves_on_the_adjusted_basis_rounded_half_up(db):
    bars = [Bar("AAA", "STOCK", D1, Decimal("100.00"), "yahoo", adj_close=Decimal("50.00")),
            Bar("AAA", "STOCK", D1 + timedelta(days=1), Decimal("55.00"), "yahoo", adj_close=Decimal("55.00")),
            Bar("AAA", "STOCK", D1 + timedelta(days=2), Decimal("3"), "yahoo"),
            Bar("AAA", "STOCK", D1 + timedelta(days=3), Decimal("3.0000001"), "yahoo"),
            Bar("BBB", "STOCK", D1 + timedelta(days=1), Decimal("0.000000000001"), "yahoo"),
            Bar("BBB", "STOCK", D1 + timedelta(days=2), Decimal("0.01"), "yahoo")]
    with db.cursor() as cur:
        register_assets(cur, ASSETS)
        upsert_bars(cur, {("AAA", "STOCK"): encode_bars(bars[:4], FETCHED_AT),
                          ("BBB", "STOCK"): encode_bars(bars[4:], FETCHED_AT)}, new_assets=[("AAA", "STOCK")])
    assert rows(db, "SELECT symbol, change, percent_change FROM market_data ORDER BY symbol, date") == [
        ("AAA", None, None), ("AAA", Decimal("5.000000"), Decimal("10.000000")),       # on adjusted closes
        ("AAA", Decimal("-52.000000"), Decimal("-94.545455")),                          # one lacks one: prices
        ("AAA", Decimal("0.0000001"), Decimal("0.000003")),                             # 3.33333335e-6 %
        ("BBB", None, None), ("BBB", Decimal("0.010000"), None)]                        # beyond the bounds: NULL

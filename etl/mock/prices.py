"""The prices mock trades are made at: `market_data`, or a logged synthetic price.

A trade on day D uses the asset's `market_data.price` (as traded that day) of
the nearest trading day on or before D, and happens only on a day the asset
trades (etl.mock.trading_days). An asset with some history is not traded
before its first known day. An asset with no history at all trades at its
synthetic price (etl.mock.synthetic: the same in every run), logged, because
mock trades at invented prices should never pass unnoticed.

`price_currencies` says what currency each asset is priced in, so that a cash
leg is never paid in another currency than the asset's price.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from etl.mock.synthetic import synthetic_prices
from etl.mock.trading_days import trading_flags
from etl.models import Asset

log = logging.getLogger(__name__)

_PRICES_STATEMENT = """
    SELECT m.symbol, m.asset_type, m.date, m.price
      FROM market_data m
      JOIN unnest(%(symbols)s::text[], %(types)s::text[]) AS wanted(symbol, asset_type)
           USING (symbol, asset_type)
     WHERE m.date <= %(last_day)s
       AND m.date >= coalesce((SELECT max(e.date) FROM market_data e
                                WHERE e.symbol = m.symbol AND e.asset_type = m.asset_type
                                  AND e.date <= %(first_day)s), %(first_day)s)
     ORDER BY m.symbol, m.asset_type, m.date
"""


# The currency of each asset's newest price that names one, else the asset table's currency.
_CURRENCIES_STATEMENT = """
    SELECT w.symbol, w.asset_type,
           coalesce((SELECT m.currency FROM market_data m
                      WHERE m.symbol = w.symbol AND m.asset_type = w.asset_type AND m.currency IS NOT NULL
                      ORDER BY m.date DESC LIMIT 1),
                    a.currency)
      FROM unnest(%(symbols)s::text[], %(types)s::text[]) AS w(symbol, asset_type)
      LEFT JOIN asset a USING (symbol, asset_type)
"""


@dataclass(frozen=True)
class PriceBook:
    """Per asset and day from `first_day`: the price (None before its first known one) and whether it trades."""

    first_day: date
    by_asset: dict[Asset, list[Decimal | None]]
    synthetic: frozenset[Asset] = frozenset()
    trading: dict[Asset, list[bool]] = field(default_factory=dict)

    def price(self, asset: Asset, day: date) -> Decimal | None:
        return self.by_asset[asset][(day - self.first_day).days]

    def trades(self, asset: Asset, day: date) -> Decimal | None:
        """The asset's price when it trades on `day`, else None (a closed market, no price yet)."""
        offset = (day - self.first_day).days
        flags = self.trading.get(asset)
        if flags is not None and not flags[offset]:
            return None
        return self.by_asset[asset][offset]


def load_price_book(conn, assets: list[Asset], first_day: date, last_day: date) -> PriceBook:
    """Prices and trading days of `assets` for [first_day, last_day], from market_data or synthetic."""
    known: dict[Asset, dict[date, Decimal]] = {a: {} for a in assets}
    index = {(a.symbol, a.asset_type): a for a in assets}
    with conn.cursor() as cur:
        cur.execute(_PRICES_STATEMENT, {"symbols": [a.symbol for a in assets],
                                        "types": [a.asset_type for a in assets],
                                        "first_day": first_day, "last_day": last_day})
        for symbol, asset_type, day, price in cur:
            known[index[(symbol, asset_type)]][day] = price
    days = (last_day - first_day).days + 1
    by_asset: dict[Asset, list[Decimal | None]] = {}
    trading: dict[Asset, list[bool]] = {}
    synthetic = []
    for asset in assets:
        if known[asset]:
            by_asset[asset] = carried_forward(known[asset], first_day, days)
            bar_days = {day for day in known[asset] if day >= first_day}
        else:
            by_asset[asset] = list(synthetic_prices(asset.symbol, asset.asset_type, first_day, last_day))
            bar_days = set()
            synthetic.append(asset)
        trading[asset] = trading_flags(asset.asset_type, first_day, days, bar_days)
    if synthetic:
        log.warning("no price in market_data up to %s for %s: trading at synthetic prices (a random walk per "
                    "asset, the same in every run; load history with fetch_historical_market_data for real "
                    "prices)", last_day, ", ".join(a.spec for a in synthetic))
    return PriceBook(first_day, by_asset, frozenset(synthetic), trading)


def price_currencies(conn, assets: list[Asset]) -> dict[tuple[str, str], str | None]:
    """(symbol, asset_type) → the currency the asset is priced in, or None when nothing says."""
    with conn.cursor() as cur:
        cur.execute(_CURRENCIES_STATEMENT, {"symbols": [a.symbol for a in assets],
                                            "types": [a.asset_type for a in assets]})
        return {(symbol, asset_type): currency for symbol, asset_type, currency in cur.fetchall()}


def carried_forward(prices: dict[date, Decimal], first_day: date, days: int) -> list[Decimal | None]:
    """The price of each day: that day's, else the nearest earlier one's, else None."""
    ordered = sorted(prices.items())
    result: list[Decimal | None] = []
    current = None
    position = 0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        while position < len(ordered) and ordered[position][0] <= day:
            current = ordered[position][1]
            position += 1
        result.append(current)
    return result

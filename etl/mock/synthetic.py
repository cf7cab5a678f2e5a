"""Synthetic prices: what a mock trade pays for an asset with no stored price.

The price of an asset on day D is a pure function of (symbol, asset type, D):
a random walk from a fixed epoch (2000-01-03), the same for every run, seed,
`--months` and account, so two runs on one database trade AAPL at the same
price on the same day, and values move over time like a market's. Each walk
starts at a level plausible for the asset (stocks tens to hundreds, each coin
its own order of magnitude, forex near 1) and is pulled gently back towards
it, so decades of steps never drift to absurd levels.

Everything is integer arithmetic on 1e-8 units, with the steps drawn from a
Mersenne Twister seeded by the asset's name (`random.Random(str)` seeds
through SHA-512, stable across Python versions and platforms): no float, no
hash randomization, the same digits everywhere.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterator

EPOCH = date(2000, 1, 3)

_UNIT = 10**8           # prices are walked as integers of 1e-8
_PPM = 10**6
_REVERSION_PPM = 2_000  # each day 0.2 % of the distance to the level is undone (half-life about a year)

# Daily step bound in parts per million: a uniform step in ±bound has a standard deviation of bound / √3.
_STEP_PPM = {"STOCK": 26_000, "ETF": 17_000, "CRYPTO": 60_000, "FOREX": 7_000, "INDEX": 17_000}

# Levels of well-known coins, so BTC looks like BTC; other coins get a level of their own from their name.
_COIN_LEVELS = {"BTC": 60_000, "ETH": 3_000, "BNB": 500, "SOL": 150, "XRP": Decimal("0.6"), "ADA": Decimal("0.45"),
                "DOGE": Decimal("0.15"), "DOT": 7, "LTC": 80, "AVAX": 35, "LINK": 15, "TRX": Decimal("0.12"),
                "USDT": 1, "USDC": 1, "DAI": 1}
_STABLECOINS = frozenset({"USDT", "USDC", "DAI"})


def synthetic_price(symbol: str, asset_type: str, day: date) -> Decimal:
    """The synthetic price of the asset on `day` (days before the epoch get the epoch's price)."""
    price = None
    for price in synthetic_prices(symbol, asset_type, EPOCH, max(day, EPOCH)):
        pass
    return price


def synthetic_prices(symbol: str, asset_type: str, first_day: date, last_day: date) -> Iterator[Decimal]:
    """synthetic_price of every day of [first_day, last_day], in order, walking the series once."""
    level = _level(symbol, asset_type)
    bound = 0 if symbol in _STABLECOINS and asset_type == "CRYPTO" else _STEP_PPM.get(asset_type, 26_000)
    steps = random.Random(f"synthetic-price:{asset_type}:{symbol}")
    price = level
    day = EPOCH
    while day <= last_day:
        if day >= first_day:
            yield _as_decimal(price, asset_type)
        noise = (steps.getrandbits(32) * (2 * bound + 1) >> 32) - bound
        price += price * noise // _PPM - (price - level) * _REVERSION_PPM // _PPM
        price = max(price, level // 20)
        day += timedelta(days=1)


def _level(symbol: str, asset_type: str) -> int:
    """The asset's starting (and long-run) level in 1e-8 units."""
    draw = int.from_bytes(hashlib.sha256(f"{asset_type}:{symbol}".encode()).digest()[:8], "big")
    if asset_type == "CRYPTO":
        known = _COIN_LEVELS.get(symbol)
        if known is not None:
            return int(Decimal(known) * _UNIT)
        exponent = draw % 6 - 2                          # 0.01 … 1,000 per coin
        mantissa = 100 + (draw >> 8) % 900               # 1.00 … 9.99
        return mantissa * 10**(6 + exponent)
    if asset_type == "FOREX":
        return (60 + (draw >> 8) % 100) * _UNIT // 100   # 0.60 … 1.59
    if asset_type == "INDEX":
        return (1_000 + (draw >> 8) % 30_000) * _UNIT
    low, high = (50, 600) if asset_type == "ETF" else (10, 500)
    return (low * 100 + (draw >> 8) % ((high - low) * 100)) * _UNIT // 100


def _as_decimal(price: int, asset_type: str) -> Decimal:
    """Cents for prices of 1 and more (forex: 4 decimals), six significant digits below 1 (a coin worth 0.000123)."""
    value = Decimal(price).scaleb(-8)
    if asset_type == "FOREX":
        return value.quantize(Decimal("0.0001"))
    if value >= 1:
        return value.quantize(Decimal("0.01"))
    digits = max(2, 6 - value.adjusted() - 1)
    return value.quantize(Decimal(1).scaleb(-min(digits, 8)))

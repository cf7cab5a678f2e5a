"""Each bar's move from the bar before it in the same batch, computed digit for digit as
`store.fill_history_changes` computes it in PostgreSQL (`pg_numeric`), so that rows inserted
by a backfill carry their change from the start.

For an asset whose rows all come from one batch (nothing stored before it) the values
are final; otherwise they are a first guess that `store.fill_history_changes`, run after
the upsert, corrects from the rows as stored (a stored day between two bars of the
batch, an adjusted close filled later).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Iterable

from etl.models import Bar
from etl.pipeline.pg_numeric import _POWERS, Scaled, divide, round_half_up, scaled, to_decimal

MAX_CHANGE = Decimal("1e12")           # market_data's bounds (migration 0011): beyond them, NULL
MAX_PERCENT_CHANGE = Decimal("1e9")
PERCENT_PLACES = 6
CHANGE_EXTRA_PLACES = 4                # the change keeps four more decimals than the price

Key = tuple[str, str, date]


def batch_moves(bars: Iterable[Bar], *, today: date) -> dict[Key, tuple[Decimal | None, Decimal | None]]:
    """(change, percent_change) per (symbol, asset_type, date) of every bar that follows another bar
    of the same asset in `bars` and is dated before `today` (today's row is the quotes' until it is past)."""
    latest: dict[Key, Bar] = {}
    for bar in bars:  # a repeated day keeps its last bar, as the upsert does
        latest[(bar.symbol, bar.asset_type, bar.date)] = bar
    moves: dict[Key, tuple[Decimal | None, Decimal | None]] = {}
    previous: tuple[str, str, Scaled, Scaled | None] | None = None
    for key in sorted(latest):
        bar = latest[key]
        if not bar.price:
            previous = None
            continue
        current = (bar.symbol, bar.asset_type, scaled(bar.price), scaled(bar.adj_close) if bar.adj_close else None)
        if previous is not None and previous[:2] == current[:2] and bar.date < today:
            moves[key] = _move(previous[2:], current[2:])
        previous = current
    return moves


def _move(previous: tuple[Scaled, Scaled | None], current: tuple[Scaled, Scaled | None]) \
        -> tuple[Decimal | None, Decimal | None]:
    """The move of a day's (price, adj_close) over the day before's, as fill_history_changes computes it:
    r on adjusted closes when both have one, else on prices; percent = round(100 r, 6) and
    change = round(price r / (1 + r), scale(price) + 4)."""
    (price_before, adj_before), (price, adj) = previous, current
    ratio = divide(adj, adj_before) if adj and adj_before else divide(price, price_before)
    ratio_digits, ratio_scale = ratio
    rate = ratio_digits - _POWERS[ratio_scale]                  # r = ratio - 1, and 1 + r is the ratio
    percent = to_decimal(round_half_up((rate * 100, ratio_scale), PERCENT_PLACES))
    change = to_decimal(round_half_up(divide((price[0] * rate, price[1] + ratio_scale), ratio),
                                      price[1] + CHANGE_EXTRA_PLACES))
    return (change if abs(change) < MAX_CHANGE else None,
            percent if abs(percent) < MAX_PERCENT_CHANGE else None)

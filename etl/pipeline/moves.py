"""Each bar's move from the bar before it in the same batch, computed as `store.fill_history_changes`
computes it, so that rows inserted by a backfill carry their change from the start.

This is only a first guess that saves rewriting every new row: the set-based
statement in `store.fill_history_changes`, run after the upsert, computes the
stored values from the rows as stored and corrects any the guess got wrong (a
stored day between two bars of the batch, an adjusted close filled later).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Iterable

from etl.models import Bar

MAX_CHANGE = Decimal("1e12")           # market_data's bounds (migration 0011): beyond them, NULL
MAX_PERCENT_CHANGE = Decimal("1e9")
PERCENT_PLACES = Decimal("0.000001")

Key = tuple[str, str, date]


def batch_moves(bars: Iterable[Bar], *, today: date) -> dict[Key, tuple[Decimal | None, Decimal | None]]:
    """(change, percent_change) per (symbol, asset_type, date) of every bar that follows another bar
    of the same asset in `bars` and is dated before `today` (today's row is the quotes' until it is past)."""
    latest: dict[Key, Bar] = {}
    for bar in bars:  # a repeated day keeps its last bar, as the upsert does
        latest[(bar.symbol, bar.asset_type, bar.date)] = bar
    moves: dict[Key, tuple[Decimal | None, Decimal | None]] = {}
    previous: Bar | None = None
    for key in sorted(latest):
        bar = latest[key]
        if (previous is not None and (previous.symbol, previous.asset_type) == key[:2] and bar.date < today
                and bar.price and previous.price):
            moves[key] = move(previous, bar)
        previous = bar
    return moves


def move(previous: Bar, bar: Bar) -> tuple[Decimal | None, Decimal | None]:
    """The move of `bar` over `previous`: on adjusted closes when both have one, else on prices;
    rounded half away from zero like PostgreSQL's round()."""
    with localcontext() as context:
        context.prec = 40
        if bar.adj_close and previous.adj_close:
            rate = bar.adj_close / previous.adj_close - 1
        else:
            rate = bar.price / previous.price - 1
        percent = (rate * 100).quantize(PERCENT_PLACES, rounding=ROUND_HALF_UP)
        places = Decimal(1).scaleb(min(bar.price.as_tuple().exponent, 0) - 4)
        change = (bar.price * rate / (1 + rate)).quantize(places, rounding=ROUND_HALF_UP)
    return (change if abs(change) < MAX_CHANGE else None,
            percent if abs(percent) < MAX_PERCENT_CHANGE else None)

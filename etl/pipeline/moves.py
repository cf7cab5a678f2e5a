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
from etl.pipeline.pg_numeric import EXACT, divide, round_half_up, scale

MAX_CHANGE = Decimal("1e12")           # market_data's bounds (migration 0011): beyond them, NULL
MAX_PERCENT_CHANGE = Decimal("1e9")
PERCENT_PLACES = 6
CHANGE_EXTRA_PLACES = 4                # the change keeps four more decimals than the price
_ONE, _HUNDRED = Decimal(1), Decimal(100)

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
    """The move of `bar` over `previous`, as fill_history_changes computes it: on adjusted closes when
    both have one, else on prices; percent = round(100 r, 6), change = round(price r / (1 + r), scale + 4)."""
    if bar.adj_close and previous.adj_close:
        rate = EXACT.subtract(divide(bar.adj_close, previous.adj_close), _ONE)
    else:
        rate = EXACT.subtract(divide(bar.price, previous.price), _ONE)
    percent = round_half_up(EXACT.multiply(rate, _HUNDRED), PERCENT_PLACES)
    change = round_half_up(divide(EXACT.multiply(bar.price, rate), EXACT.add(_ONE, rate)),
                           scale(bar.price) + CHANGE_EXTRA_PLACES)
    return (change if abs(change) < MAX_CHANGE else None,
            percent if abs(percent) < MAX_PERCENT_CHANGE else None)

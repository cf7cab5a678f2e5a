"""Which days a mock account may do what: the calendar of a believable account.

Stocks and ETFs trade only on days their market traded: the days with a
stored bar, up to the newest one stored; after it (and for assets priced
synthetically) every weekday. Crypto trades every day; cash moves any day.
Salary arrives on the month's first business day (Monday to Friday). Nothing
is dated after today, and the current month gets its share of the month's
rows: round(K × days elapsed ÷ days in the month), half up.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Collection

EVERY_DAY_TYPES = frozenset({"CRYPTO", "CASH"})


def is_business_day(day: date) -> bool:
    return day.weekday() < 5


def first_business_day(month_start: date) -> date:
    day = month_start
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def trading_flags(asset_type: str, first_day: date, days: int, bar_days: Collection[date] = ()) -> list[bool]:
    """For each day from first_day, whether the asset trades: see the module docstring."""
    if asset_type in EVERY_DAY_TYPES:
        return [True] * days
    last_bar = max(bar_days, default=None)
    flags = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if last_bar is not None and day <= last_bar:
            flags.append(day in bar_days)
        else:
            flags.append(is_business_day(day))
    return flags


def month_end(month_start: date) -> date:
    return month_start.replace(day=calendar.monthrange(month_start.year, month_start.month)[1])


def rows_in_month(per_month: int, month_start: date, today: date) -> int:
    """per_month for a past month; the current month's share of it, rounded half up, for the days elapsed."""
    last = month_end(month_start)
    if today >= last:
        return per_month
    elapsed, length = (today - month_start).days + 1, last.day
    return (2 * per_month * elapsed + length) // (2 * length)

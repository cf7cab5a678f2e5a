"""Corporate-action arithmetic: prices as traded, and the factors that put adjusted closes on one basis.

Pure: no I/O. A split's `ratio` is shares after per share before (4 for 4:1,
0.1 for 1:10); it takes effect on its ex-date, so it changes the basis of every
day before that date. A provider whose prices are split-adjusted has divided
each day's prices by the ratio of every later split (and multiplied its
volume); multiplying back gives the prices as traded.

The adjusted close of a day is its price times the factor of every action after
it: 1 / ratio for a split, 1 − amount / (close of the trading day before the
ex-date) for a dividend, the method Yahoo and CRSP use. Bringing a stored
adjusted close onto the basis of newly learned actions multiplies it by the
factors of those actions alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable, Mapping, Sequence

from etl.models import Bar, CorporateAction, PriceBasis

log = logging.getLogger(__name__)

ONE = Decimal(1)
WHOLE = Decimal(1)


def splits_after(day: date, splits: Iterable[CorporateAction]) -> Decimal:
    """The product of the ratios of every split whose ex-date is after `day`."""
    factor = ONE
    for split in splits:
        if split.kind == "split" and split.date > day:
            factor *= split.ratio
    return factor


def as_traded_bars(bars: Sequence[Bar], basis: PriceBasis, splits: Sequence[CorporateAction]) -> list[Bar]:
    """`bars` of a provider with price basis `basis`, their prices and volume as traded that day.

    The adjusted close stays as the provider gave it. A dividend-adjusted basis
    cannot be undone from the splits alone: such a provider is refused.
    """
    if basis.dividends:
        raise ValueError("prices adjusted for dividends cannot be turned back into prices as traded; "
                         "declare the provider as traded or split-adjusted")
    if not basis.splits or not splits:
        return list(bars)
    converted = []
    for bar in bars:
        factor = splits_after(bar.date, splits)
        if factor == ONE:
            converted.append(bar)
            continue
        converted.append(replace(
            bar,
            price=_times(bar.price, factor), open=_times(bar.open, factor), high=_times(bar.high, factor),
            low=_times(bar.low, factor), volume=_shares(bar.volume, factor)))
    return converted


def _times(value: Decimal | None, factor: Decimal) -> Decimal | None:
    return None if value is None or not value.is_finite() else value * factor


def _shares(volume: Decimal | None, factor: Decimal) -> Decimal | None:
    """Volume on the basis before the splits: divided by their factor, whole shares when it was whole."""
    if volume is None or not volume.is_finite():
        return volume
    shares = volume / factor
    return shares.quantize(WHOLE, rounding=ROUND_HALF_EVEN) if volume == volume.to_integral_value() else shares


def as_traded_actions(actions: Iterable[CorporateAction], basis: PriceBasis,
                      splits: Sequence[CorporateAction]) -> list[CorporateAction]:
    """Dividend amounts reported on a split-adjusted basis (like the provider's prices) as traded."""
    if not basis.splits:
        return list(actions)
    return [replace(action, amount=action.amount * splits_after(action.date, splits))
            if action.kind == "dividend" else action for action in actions]


def action_factor(action: CorporateAction, previous_close: Decimal | None) -> Decimal | None:
    """What `action` multiplies the adjusted close of every earlier day by; None when it cannot be
    known (a dividend with no close before its ex-date, or one as large as that close)."""
    if action.kind == "split":
        return ONE / action.ratio
    if previous_close is None or not previous_close > action.amount:
        if previous_close is not None:
            log.warning("%s:%s: dividend of %s on %s is not below the close before it (%s); left out of "
                        "the adjusted close — check corporate_actions", action.symbol, action.asset_type,
                        action.amount, action.date, previous_close)
        return None
    return ONE - action.amount / previous_close


def segments(factors: Iterable[tuple[date, Decimal]], *, complete: bool = False) -> list[tuple[date, date, Decimal]]:
    """(from, until, factor) ranges for one UPDATE: the days from `from` up to (not including) `until`
    are multiplied by the product of every factor dated after them. Ranges whose factor is 1 are
    left out, unless `complete`, which also gives the days on or after the last date (factor 1)."""
    by_date: dict[date, Decimal] = {}
    for day, factor in factors:
        by_date[day] = by_date.get(day, ONE) * factor
    ranges = []
    cumulative, until = ONE, date.max
    for day in sorted(by_date, reverse=True):
        if complete or cumulative != ONE:
            ranges.append((day, until, cumulative))
        cumulative *= by_date[day]
        until = day
    if complete or cumulative != ONE:
        ranges.append((date.min, until, cumulative))
    return ranges


def split_list(actions: Iterable[CorporateAction]) -> list[CorporateAction]:
    return [action for action in actions if action.kind == "split"]


def factors_of(actions: Iterable[CorporateAction],
               previous_closes: Mapping[date, Decimal | None]) -> list[tuple[date, Decimal]]:
    """(ex-date, factor) of each action whose factor is known; `previous_closes` by ex-date."""
    known = []
    for action in actions:
        factor = action_factor(action, previous_closes.get(action.date))
        if factor is not None:
            known.append((action.date, factor))
    return known

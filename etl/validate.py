"""Checks every provider's rows pass before anything is loaded. Pure: no I/O.

Providers parse what the API said into `Bar`/`Quote` records as faithfully as
they can (a null stays None); this module decides which of those rows are fit
to store, and counts the others by reason so a run can say what it dropped.

Close-outside-range tolerance: a close may sit outside [low, high] by up to
`CLOSE_TOLERANCE` (0.5 %) of the range's bounds. Providers round OHLC and the
close independently (Yahoo's daily close comes from a different feed than the
day's high/low), so a strict check would throw away good rows; anything
further out is a broken row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Generic, Iterable, TypeVar

from etl.models import Bar, Quote

CLOSE_TOLERANCE = Decimal("0.005")
# A quote's trading date is in its exchange's time zone, up to a day ahead of the
# UTC date the jobs call today (Tokyo, Sydney and Auckland after their midnight).
QUOTE_DATE_AHEAD = timedelta(days=1)

# Minor currency units (hundredths) as providers spell them, and their major currency.
# Case matters: "GBp" is pence but "GBP" is pounds, so spellings are matched before upper-casing.
MINOR_UNITS = {"GBp": "GBP", "GBX": "GBP", "GBx": "GBP", "ZAc": "ZAR", "ZAC": "ZAR", "ILA": "ILS", "ILs": "ILS"}
_HUNDRED = Decimal(100)

Row = TypeVar("Row", Bar, Quote)


@dataclass(frozen=True)
class Validated(Generic[Row]):
    """The rows fit to load, and how many were dropped for which reason."""

    rows: list[Row]
    dropped: int = 0
    reasons: Counter = field(default_factory=Counter)


def to_decimal(value: object) -> Decimal | None:
    """The one place a JSON value (Decimal, int, numeric text, None) becomes a Decimal.

    Text that is not a number, booleans and containers give None; "NaN" and
    "Infinity" are kept as such so validation can count them as bad prices. A
    float means the JSON was parsed without `parse_float=Decimal` and digits may
    already be lost, so it is refused loudly rather than guessed at.
    """
    if isinstance(value, float):
        raise TypeError(f"to_decimal got the float {value!r}: parse JSON with parse_float=Decimal "
                        "(fetch_utils.get_json does) so prices keep every digit")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return Decimal(text)
        except InvalidOperation:
            return None
    return None


def to_major_unit(value: Decimal | None, currency: str | None) -> tuple[Decimal | None, str | None]:
    """A price in a minor unit (GBp/GBX pence, ZAc cents, ILA agorot) in its major currency.

    Other currencies come back unchanged, upper-cased.
    """
    if currency is None:
        return value, None
    major = MINOR_UNITS.get(currency.strip())
    if major is None:
        return value, currency.strip().upper()
    return (None if value is None else value / _HUNDRED), major


def is_good_price(value: Decimal | None) -> bool:
    """Present, finite and above zero."""
    return value is not None and value.is_finite() and value > 0


def _bar_problem(bar: Bar, start: date, end: date, today: date) -> str | None:
    """Why `bar` cannot be loaded, in a few words, or None when it can."""
    if bar.date > today:
        return "future date"
    if bar.date < start or bar.date > end:
        return "outside requested range"
    if bar.price is None:
        return "missing price"
    if not bar.price.is_finite():
        return "non-finite price"
    if bar.price <= 0:
        return "non-positive price"
    if bar.adj_close is not None and not is_good_price(bar.adj_close):
        return "bad adjusted close"
    for value in (bar.open, bar.high, bar.low):
        if value is not None and not is_good_price(value):
            return "bad open/high/low"
    if bar.high is not None and bar.low is not None:
        if bar.high < bar.low:
            return "high below low"
        if not _within(bar.price, bar.low, bar.high):
            return "close outside low-high"
    if bar.volume is not None and (not bar.volume.is_finite() or bar.volume < 0):
        return "bad volume"
    return None


def _within(value: Decimal, low: Decimal, high: Decimal) -> bool:
    return low * (1 - CLOSE_TOLERANCE) <= value <= high * (1 + CLOSE_TOLERANCE)


def validate_bars(bars: Iterable[Bar], start: date, end: date, today: date) -> Validated[Bar]:
    """Daily bars fit to load: one per date (the last one given wins), sorted by date."""
    reasons: Counter = Counter()
    by_date: dict[date, Bar] = {}
    for bar in bars:
        problem = _bar_problem(bar, start, end, today)
        if problem:
            reasons[problem] += 1
            continue
        if bar.date in by_date:
            reasons["duplicate date"] += 1
        by_date[bar.date] = bar
    rows = [by_date[day] for day in sorted(by_date)]
    return Validated(rows=rows, dropped=sum(reasons.values()), reasons=reasons)


def _quote_problem(quote: Quote, today: date) -> str | None:
    if quote.date > today + QUOTE_DATE_AHEAD:
        return "future date"
    if quote.price is None:
        return "missing price"
    if not quote.price.is_finite():
        return "non-finite price"
    if quote.price <= 0:
        return "non-positive price"
    for value in (quote.open, quote.high, quote.low):
        if value is not None and not is_good_price(value):
            return "bad open/high/low"
    if quote.high is not None and quote.low is not None and quote.high < quote.low:
        return "high below low"
    return None


def _without_bad_extras(quote: Quote) -> Quote:
    """The quote with unusable optional figures (non-finite change, negative volume …) left out.

    The price is what a quote is for; a broken change or volume beside a good price
    is dropped on its own rather than costing the whole quote.
    """
    fixes = {}
    for name in ("change", "percent_change"):
        value = getattr(quote, name)
        if value is not None and not value.is_finite():
            fixes[name] = None
    if quote.volume is not None and (not quote.volume.is_finite() or quote.volume < 0):
        fixes["volume"] = None
    return replace(quote, **fixes) if fixes else quote


def validate_quotes(quotes: Iterable[Quote], today: date) -> Validated[Quote]:
    """Quotes fit to load: one per (symbol, asset_type), the newest `as_of` wins."""
    reasons: Counter = Counter()
    newest: dict[tuple[str, str], Quote] = {}
    for quote in quotes:
        problem = _quote_problem(quote, today)
        if problem:
            reasons[problem] += 1
            continue
        quote = _without_bad_extras(quote)
        key = (quote.symbol, quote.asset_type)
        held = newest.get(key)
        if held is not None:
            reasons["duplicate quote"] += 1
            if quote.as_of < held.as_of:
                continue
        newest[key] = quote
    return Validated(rows=list(newest.values()), dropped=sum(reasons.values()), reasons=reasons)

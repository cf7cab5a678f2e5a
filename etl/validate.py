"""Checks every provider's rows pass before anything is loaded. Pure: no I/O.

Providers parse what the API said into `Bar`/`Quote` records as faithfully as
they can (a null stays None); this module decides which of those rows are fit
to store, and counts the others by reason so a run can say what it dropped.

Every number has bounds (MIN_PRICE … MAX_PRICE, MAX_VOLUME, …; the same as
the CHECK constraints of migration 0011), and no check here can raise: a value
that cannot be compared is a dropped row, and arithmetic runs in a local
context with no trapped signal.

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
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Generic, Iterable, TypeVar

from etl.models import Bar, Quote

CLOSE_TOLERANCE = Decimal("0.005")
# The bounds of every number stored (migration 0011 has the same as CHECK constraints). Prices from
# 1e-12 (the tiniest crypto tokens trade around 1e-8 USD) to under a trillion; volumes from 0 to under
# 1e15 shares or coins; a percent change under a billion percent either way; split ratios from 1e-9
# and dividends from 1e-12, both to under 1e9 (as the corporate_actions table allows).
MIN_PRICE = Decimal("1e-12")
MAX_PRICE = Decimal("1e12")
MAX_VOLUME = Decimal("1e15")
MAX_PERCENT_CHANGE = Decimal("1e9")
MIN_DIVIDEND = Decimal("1e-12")
MAX_DIVIDEND = Decimal("1e9")
MIN_SPLIT_RATIO = Decimal("1e-9")
MAX_SPLIT_RATIO = Decimal("1e9")
OLDEST_DATE = date(1900, 1, 1)
PERCENT_PLACES = Decimal("0.000001")
# The context of every computation here: wide enough that no bounded value overflows or loses a
# digit that matters, with no signal trapped, so arithmetic on any input gives a value (NaN or
# Infinity at worst, which the bounds then refuse) instead of raising.
ARITHMETIC = Context(prec=60, Emax=999_999, Emin=-999_999, traps=[])
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
    rejected: list[tuple[Row, str]] = field(default_factory=list)   # each dropped row and why


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
    if value is None:
        return None, major
    with localcontext(ARITHMETIC):
        return value / _HUNDRED, major


def is_good_price(value: Decimal | None) -> bool:
    """Present, finite and inside [MIN_PRICE, MAX_PRICE)."""
    return value is not None and value.is_finite() and MIN_PRICE <= value < MAX_PRICE


def _within_bounds(value: Decimal, low: Decimal, high: Decimal) -> bool:
    """`low <= value < high` for a finite `value` (NaN and infinities are outside; comparing never raises)."""
    return value.is_finite() and low <= value < high


def _within_either_way(value: Decimal, bound: Decimal) -> bool:
    """`-bound < value < bound` for a finite `value` (no context arithmetic, so it never raises)."""
    return value.is_finite() and -bound < value < bound


def is_good_volume(value: Decimal | None) -> bool:
    return value is not None and _within_bounds(value, Decimal(0), MAX_VOLUME)


def percent_change(price: Decimal | None, previous: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """(change, percent change) of `price` over `previous`, or (None, None) when either is not a
    good price; computed in a local context, so no input makes the arithmetic raise."""
    if not (is_good_price(price) and is_good_price(previous)):
        return None, None
    with localcontext(ARITHMETIC):
        change = price - previous
        percent = (change / previous * 100).quantize(PERCENT_PLACES)
    return change, (percent if _within_either_way(percent, MAX_PERCENT_CHANGE) else None)


def is_good_dividend(amount: Decimal | None) -> bool:
    """A dividend per share inside [MIN_DIVIDEND, MAX_DIVIDEND)."""
    return amount is not None and _within_bounds(amount, MIN_DIVIDEND, MAX_DIVIDEND)


def sane_ratio(numerator: Decimal | None, denominator: Decimal | None) -> Decimal | None:
    """A split's ratio numerator / denominator, or None when it is missing or outside
    [MIN_SPLIT_RATIO, MAX_SPLIT_RATIO) (no real split is; the arithmetic cannot raise)."""
    if numerator is None or denominator is None or not (numerator.is_finite() and denominator.is_finite()):
        return None
    if not (numerator > 0 and denominator > 0):
        return None
    with localcontext(ARITHMETIC):
        ratio = numerator / denominator
    return ratio if _within_bounds(ratio, MIN_SPLIT_RATIO, MAX_SPLIT_RATIO) else None


def _range_problem(price: Decimal, low: Decimal | None, high: Decimal | None) -> str | None:
    if high is not None and low is not None:
        if high < low:
            return "high below low"
        if not _within(price, low, high):
            return "close outside low-high"
    return None


def _bar_problem(bar: Bar, start: date, end: date, today: date) -> str | None:
    """Why `bar` cannot be loaded, in a few words, or None when it can."""
    if bar.date > today:
        return "future date"
    if bar.date < start or bar.date > end:
        return "outside requested range"
    problem = _price_problem(bar.price)
    if problem:
        return problem
    if bar.adj_close is not None and not is_good_price(bar.adj_close):
        return "bad adjusted close"
    for value in (bar.open, bar.high, bar.low):
        if value is not None and not is_good_price(value):
            return "bad open/high/low"
    problem = _range_problem(bar.price, bar.low, bar.high)
    if problem:
        return problem
    if bar.volume is not None and not is_good_volume(bar.volume):
        return "bad volume"
    return None


def _price_problem(price: Decimal | None) -> str | None:
    if price is None:
        return "missing price"
    if not price.is_finite():
        return "non-finite price"
    if price <= 0:
        return "non-positive price"
    if not is_good_price(price):
        return "price out of bounds"
    return None


def _within(value: Decimal, low: Decimal, high: Decimal) -> bool:
    with localcontext(ARITHMETIC):
        return low * (1 - CLOSE_TOLERANCE) <= value <= high * (1 + CLOSE_TOLERANCE)


def _checked(problem_of, row) -> str | None:
    """`problem_of(row)`, where a value no check can read (not a Decimal) is a problem, not a crash."""
    try:
        return problem_of(row)
    except (ArithmeticError, TypeError, ValueError, AttributeError):
        return "unreadable value"


def validate_bars(bars: Iterable[Bar], start: date, end: date, today: date) -> Validated[Bar]:
    """Daily bars fit to load: one per date (the last one given wins), sorted by date."""
    bars = list(bars)
    reasons: Counter = Counter()
    rejected: list[tuple[Bar, str]] = []
    by_date: dict[date, Bar] = {}
    for bar, plainly_good in zip(bars, _plainly_good(bars, start, end, today)):
        problem = None if plainly_good else _checked(lambda b: _bar_problem(b, start, end, today), bar)
        if problem:
            reasons[problem] += 1
            rejected.append((bar, problem))
            continue
        if bar.date in by_date:
            reasons["duplicate date"] += 1
        by_date[bar.date] = bar
    rows = [by_date[day] for day in sorted(by_date)]
    return Validated(rows=rows, dropped=sum(reasons.values()), reasons=reasons, rejected=rejected)


def _plainly_good(bars: list[Bar], start: date, end: date, today: date) -> list[bool]:
    """For each bar, whether it is plainly fit to load, which most are: a date in range, low <= close <=
    high all Decimals inside the price bounds, and each other value absent or a Decimal inside its own.
    A bar that is not plainly fit may still be (a close within the tolerance of its range, say):
    `_bar_problem` decides. This only saves calling it. The comparisons run in ARITHMETIC, where
    comparing a NaN is false instead of raising, so the bounds refuse NaN and infinities as well."""
    if not type(start) is type(end) is type(today) is date:
        return [False] * len(bars)
    last = min(end, today)
    with localcontext(ARITHMETIC):
        return [type(bar) is Bar and type(bar.date) is date and start <= bar.date <= last
                and type(bar.price) is type(bar.low) is type(bar.high) is Decimal
                and MIN_PRICE <= bar.low <= bar.price <= bar.high < MAX_PRICE
                and (bar.adj_close is None or type(bar.adj_close) is Decimal and MIN_PRICE <= bar.adj_close < MAX_PRICE)
                and (bar.open is None or type(bar.open) is Decimal and MIN_PRICE <= bar.open < MAX_PRICE)
                and (bar.volume is None or type(bar.volume) is Decimal and 0 <= bar.volume < MAX_VOLUME)
                for bar in bars]


def _quote_problem(quote: Quote, today: date) -> str | None:
    if quote.date > today + QUOTE_DATE_AHEAD:
        return "future date"
    if quote.date < OLDEST_DATE:
        return "date out of range"
    problem = _price_problem(quote.price)
    if problem:
        return problem
    for value in (quote.open, quote.high, quote.low):
        if value is not None and not is_good_price(value):
            return "bad open/high/low"
    return _range_problem(quote.price, quote.low, quote.high)


def _without_bad_extras(quote: Quote) -> Quote:
    """The quote with unusable optional figures (non-finite or out-of-bounds change, negative
    volume …) left out.

    The price is what a quote is for; a broken change or volume beside a good price
    is dropped on its own rather than costing the whole quote.
    """
    fixes = {}
    if quote.change is not None and not _within_either_way(quote.change, MAX_PRICE):
        fixes["change"] = None
    if quote.percent_change is not None and not _within_either_way(quote.percent_change, MAX_PERCENT_CHANGE):
        fixes["percent_change"] = None
    if quote.volume is not None and not is_good_volume(quote.volume):
        fixes["volume"] = None
    return replace(quote, **fixes) if fixes else quote


def validate_quotes(quotes: Iterable[Quote], today: date) -> Validated[Quote]:
    """Quotes fit to load: one per (symbol, asset_type), the newest `as_of` wins."""
    reasons: Counter = Counter()
    newest: dict[tuple[str, str], Quote] = {}
    rejected: list[tuple[Quote, str]] = []
    for quote in quotes:
        problem = _checked(lambda q: _quote_problem(q, today), quote)
        if problem is None:
            try:
                quote = _without_bad_extras(quote)
            except (ArithmeticError, TypeError, ValueError, AttributeError):
                problem = "unreadable value"
        if problem:
            reasons[problem] += 1
            rejected.append((quote, problem))
            continue
        key = (quote.symbol, quote.asset_type)
        held = newest.get(key)
        if held is not None:
            reasons["duplicate quote"] += 1
            if quote.as_of < held.as_of:
                continue
        newest[key] = quote
    return Validated(rows=list(newest.values()), dropped=sum(reasons.values()), reasons=reasons, rejected=rejected)

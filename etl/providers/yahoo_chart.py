"""Reading Yahoo's chart answers, for history (`yahoo`) and chart quotes (`yahoo_quotes`) alike.

Errors arrive inside a 200 (or a 400) as `chart.error` `{code, description}`;
a window entirely before an asset's first trading day is an empty answer, not
an error. A bar's trading date is its timestamp in the exchange's time zone.

A history of years is read a column at a time (`chart_columns`) when its
arrays hold what Yahoo sends (integer stamps, numbers and nulls): the values
are those that reading row by row gives, in a fraction of the time.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, localcontext
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import FatalError, NotFoundError, RateLimitedError, RetryableError
from etl.models import AnswerMeta
from etl.validate import ARITHMETIC, MINOR_UNITS, to_decimal, to_major_unit

log = logging.getLogger(__name__)

NAME = "yahoo"
NO_DATA_FOR_RANGE = "Data doesn't exist for startDate"


# ---- errors inside a 200 ----

def raise_for_api_error(error: Any, where: str) -> None:
    """Turn Yahoo's `{code, description}` error object into the matching typed error."""
    if not error:
        return
    if isinstance(error, dict):
        code, description = str(error.get("code") or ""), str(error.get("description") or "")
    else:
        code, description = str(error), ""
    detail = f"{code}: {description}" if description else code
    lowered = code.lower()
    if "not found" in lowered or "delisted" in description.lower():
        raise NotFoundError(f"{NAME}: {where} — unknown or delisted symbol ({detail}); check the symbol "
                            f"or set asset.provider_symbol")
    if "too many" in lowered or "rate" in lowered:
        raise RateLimitedError(f"{NAME}: rate-limited for {where} ({detail}) — try again later")
    if lowered == "bad request":
        raise FatalError(f"{NAME}: 400 for {where} — the request was refused ({detail}); check the symbol "
                         "and the dates asked for")
    raise RetryableError(f"{NAME}: error for {where} ({detail}) — try again later or use another provider")


def is_no_data_for_range(error: Any) -> bool:
    """Whether a chart error says the asked window has no data (it lies before the first trade)."""
    return isinstance(error, dict) and str(error.get("description") or "").startswith(NO_DATA_FOR_RANGE)


# ---- time ----

def exchange_zone(meta: dict) -> tzinfo:
    """The exchange's time zone: its IANA name when Yahoo gives a known one, else its UTC offset."""
    name = meta.get("exchangeTimezoneName")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.debug("unknown time zone %r; using gmtoffset", name)
    return timezone(timedelta(seconds=int(meta.get("gmtoffset") or 0)))


# Seconds from 1970 to the year 10000, where Python's dates end. A stamp beyond has no date; it is refused
# before int(), which would spend minutes writing out the digits of a stamp such as 1e999999999.
_LAST_STAMP = 253_402_300_800


def trading_date(timestamp: int, zone: tzinfo) -> date:
    if not -_LAST_STAMP < timestamp < _LAST_STAMP:
        raise OverflowError(f"timestamp {timestamp} is out of range")
    return datetime.fromtimestamp(int(timestamp), zone).date()


_DATES: dict[tzinfo, dict[int, date]] = {}  # per zone, the trading date of each stamp met lately
_ZONES_KEPT, _STAMPS_KEPT = 16, 20_000


def trading_dates(stamps: list[int], zone: tzinfo) -> list[date]:
    """`trading_date` of each of `stamps`, remembered per zone: the answers from one exchange repeat the
    same session-opening stamps (a backfill of 500 symbols over five years meets 1,300), so each date is
    worked out once. A stamp no date has raises as `trading_date` does."""
    known = _DATES.get(zone)
    if known is None or len(known) > _STAMPS_KEPT:
        if len(_DATES) >= _ZONES_KEPT:
            _DATES.clear()
        known = _DATES[zone] = {}
    dates = list(map(known.get, stamps))
    if None in dates:
        for index, stamp in enumerate(stamps):
            if dates[index] is None:
                dates[index] = known[stamp] = trading_date(stamp, zone)
    return dates


# ---- the chart ----

def chart_path(symbol: str) -> str:
    """The chart path of a Yahoo symbol, escaped whole (^N225 → %5EN225, EURUSD=X → EURUSD%3DX)."""
    return f"/v8/finance/chart/{quote(symbol, safe='')}"


def chart_result(payload: Any, where: str) -> dict | None:
    """`chart.result[0]`, None when the window has no data, or the typed error the payload reports instead."""
    chart = payload.get("chart") if isinstance(payload, dict) else None
    if not isinstance(chart, dict):
        raise RetryableError(f"{NAME}: unexpected answer for {where} (no 'chart' object) — try again later")
    if is_no_data_for_range(chart.get("error")):
        return None
    raise_for_api_error(chart.get("error"), where)
    results = chart.get("result")
    if not results:
        raise NotFoundError(f"{NAME}: no chart result for {where} — unknown or delisted symbol")
    return results[0]


def major_price(value: Any, currency: str | None) -> Decimal | None:
    return to_major_unit(to_decimal(value), currency)[0]


# ---- the chart a column at a time ----

_DECIMAL_OR_NULL = frozenset({Decimal, type(None)})
_NUMBER = frozenset({Decimal, int})
_NUMBER_OR_NULL = _NUMBER | {type(None)}
_HUNDRED = Decimal(100)


def chart_columns(stamps: Any, zone: tzinfo, arrays: Any, adjclose: Any, currency: str | None) -> dict | None:
    """The date, prices and volume of every bar of a chart (`arrays` is `indicators.quote[0]`), as
    `trading_date`, `major_price` and `to_decimal` read them value by value; None when a stamp is not an
    integer with a date or an array holds anything but numbers and nulls (read those row by row: what
    that raises or lets through is the rule)."""
    if type(stamps) is not list or not set(map(type, stamps)) <= {int} or not isinstance(arrays, dict):
        return None
    count = len(stamps)
    try:
        dates = trading_dates(stamps, zone)
    except (ArithmeticError, OSError, ValueError):
        return None
    minor = currency is not None and currency.strip() in MINOR_UNITS
    columns = {"date": dates, "volume": decimal_column(arrays.get("volume"), count)}
    for field, values in (("price", arrays.get("close")), ("adj_close", adjclose), ("open", arrays.get("open")),
                          ("high", arrays.get("high")), ("low", arrays.get("low"))):
        column = decimal_column(values, count)
        columns[field] = in_major_unit(column) if minor and column is not None else column
    return None if any(column is None for column in columns.values()) else columns


def decimal_column(values: Any, count: int) -> list[Decimal | None] | None:
    """The first `count` values of a JSON array as `to_decimal` reads them (None past its end, or for
    all when it is not an array); None when it holds anything but numbers and nulls."""
    if not isinstance(values, list):
        return [None] * count
    column = values[:count] + [None] * (count - len(values))
    kinds = set(map(type, column))
    if kinds <= _DECIMAL_OR_NULL:
        return column
    if kinds <= _NUMBER:
        return list(map(Decimal, column))
    if kinds <= _NUMBER_OR_NULL:
        return [value if value is None else Decimal(value) for value in column]
    return None


def in_major_unit(column: list[Decimal | None]) -> list[Decimal | None]:
    """Prices in a minor unit (pence, cents) in the major one, as `to_major_unit` divides them."""
    with localcontext(ARITHMETIC):
        return [value if value is None else value / _HUNDRED for value in column]


def chart_meta(meta: dict) -> AnswerMeta:
    """What a chart's (or spark's) `meta` says of the asset: `longName` (else `shortName`), the
    price's currency in its major unit, `fullExchangeName` (else `exchangeName`) and
    `exchangeTimezoneName`."""
    return AnswerMeta.of(meta.get("longName") or meta.get("shortName"), to_major_unit(None, meta.get("currency"))[1],
                         meta.get("fullExchangeName") or meta.get("exchangeName"), meta.get("exchangeTimezoneName"))

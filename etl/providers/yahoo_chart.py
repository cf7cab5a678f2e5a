"""Reading Yahoo's chart answers, for history (`yahoo`) and chart quotes (`yahoo_quotes`) alike.

Errors arrive inside a 200 (or a 400) as `chart.error` `{code, description}`;
a window entirely before an asset's first trading day is an empty answer, not
an error. A bar's trading date is its timestamp in the exchange's time zone.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import FatalError, NotFoundError, RateLimitedError, RetryableError
from etl.models import AnswerMeta
from etl.validate import to_decimal, to_major_unit

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


def trading_date(timestamp: int, zone: tzinfo) -> date:
    return datetime.fromtimestamp(int(timestamp), zone).date()


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


def chart_meta(meta: dict) -> AnswerMeta:
    """What a chart's (or spark's) `meta` says of the asset: `longName` (else `shortName`), the
    price's currency in its major unit, `fullExchangeName` (else `exchangeName`) and
    `exchangeTimezoneName`."""
    return AnswerMeta.of(meta.get("longName") or meta.get("shortName"), to_major_unit(None, meta.get("currency"))[1],
                         meta.get("fullExchangeName") or meta.get("exchangeName"), meta.get("exchangeTimezoneName"))

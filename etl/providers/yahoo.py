"""Yahoo Finance: keyless daily history and quotes for stocks, ETFs, indices, forex and crypto.

History comes from the chart endpoint, `/v8/finance/chart/{symbol}?period1&period2&interval=1d`:
`chart.result[0]` holds `meta` (currency, exchange time zone, market price…),
`timestamp[]` and the parallel arrays of `indicators.quote[0]` (open, high, low,
close, volume, with nulls for missing values) and `indicators.adjclose[0]`.
A daily bar's timestamp is that session's opening time, so its trading date is
the date in the exchange's time zone (`exchangeTimezoneName`, else `gmtoffset`).
`meta` also names the asset (`chart_meta`: longName, currency, fullExchangeName).

Quotes come from the spark endpoint, or the chart endpoint when spark is
refused (`yahoo_quotes`). Errors arrive either as an HTTP status (404 for an
unknown symbol) or inside a 200 as `chart.error` / `spark.error` `{code,
description}` with a null result. Yahoo is reached as a browser (curl_cffi
impersonating YAHOO_IMPERSONATE) and sends the cookie and crumb of its session
(`yahoo_auth`) once it has asked for them; its 401 and 403 are never fatal.

A window entirely before an asset's first trading day is answered with HTTP 400
and `chart.error` {"code": "Bad Request", "description": "Data doesn't exist for
startDate = …, endDate = …"}. That is an answer, not a failure: the history of
that span is empty (which proves nothing: the next run asks again). Yahoo states
the first trading day as `meta.firstTradeDate`.

Prices are split-adjusted as of the day fetched, `adjclose` also for dividends.
`result.events` holds `splits` {"<unix>": {date, numerator, denominator,
splitRatio}} and `dividends` {"<unix>": {date, amount}} (amounts split-adjusted,
in the price's unit). The window runs through today, so every later split is
reported (still one request).

Yahoo publishes no rate limit for these endpoints; 60 requests a minute is our
own, polite ceiling.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol, Sequence

from etl.errors import AccessRefusedError, ProviderUnavailableError
from etl.models import SPLIT_ADJUSTED, Asset, Bar, CorporateAction, HistoryAnswer, bars_from_columns
from etl.providers.answers import answer_parser
from etl.providers.base import Limits, Provider, ProviderSettings, QuoteBatch, unix_seconds
from etl.providers.yahoo_auth import DEFAULT_COOKIE_URL, SessionStore, YahooAuth
from etl.providers.yahoo_chart import (NAME, chart_columns, chart_meta, chart_path, chart_result, exchange_zone,
                                       major_price, trading_date)
from etl.providers.yahoo_quotes import SPARK_MAX_SYMBOLS, YahooQuotes
from etl.utils.fetch_utils import ProviderSession
from etl.validate import is_good_dividend, sane_ratio, to_decimal, to_major_unit

log = logging.getLogger(__name__)

# Yahoo's edge answers a client it refuses with plain-text 429s and no Retry-After; after this many in a
# row (one request's retries, by default) Yahoo is down for the run and the chain asks the next provider.
EDGE_429S_BEFORE_DOWN = 5

# Exchange suffixes Yahoo appends to listings outside the US (VOD.L, 7203.T, SAP.DE …).
# A dotted symbol whose suffix is not one of these is a share class (BRK.B), which Yahoo
# writes with a dash (BRK-B).
EXCHANGE_SUFFIXES = frozenset({
    "L", "IL", "T", "F", "V", "TO", "CN", "NE", "DE", "BE", "DU", "HM", "HA", "MU", "SG", "PA", "AS", "BR",
    "LS", "MI", "MC", "VI", "SW", "ST", "OL", "CO", "HE", "IC", "IR", "AT", "WA", "PR", "BD", "IS", "TA",
    "HK", "SS", "SZ", "TW", "TWO", "KS", "KQ", "SI", "KL", "JK", "BK", "AX", "NZ", "NS", "BO", "SA", "MX",
    "BA", "SN", "LM", "JO", "SR", "QA", "KW", "CA", "VN", "RG", "TL", "VS", "XC",
})


# ---- symbols ----

def to_yahoo_symbol(asset: Asset) -> str:
    """Canonical symbol → Yahoo's: BTC → BTC-USD, EUR/USD → EURUSD=X, BRK.B → BRK-B."""
    symbol = asset.symbol.upper()
    if asset.asset_type == "CRYPTO":
        return f"{symbol}-USD"
    if asset.asset_type == "FOREX":
        base, quote = symbol.split("/")
        return f"{base}{quote}=X"
    if asset.asset_type in ("STOCK", "ETF") and "." in symbol:
        stem, suffix = symbol.rsplit(".", 1)
        if suffix not in EXCHANGE_SUFFIXES:
            return f"{stem}-{suffix}"
    return symbol


def from_yahoo_symbol(yahoo_symbol: str, asset_type: str) -> str:
    """Yahoo's symbol → canonical: BTC-USD → BTC, EURUSD=X → EUR/USD, JPY=X → USD/JPY, BRK-B → BRK.B."""
    symbol = yahoo_symbol.upper()
    if asset_type == "CRYPTO" and symbol.endswith("-USD"):
        return symbol[:-4]
    if asset_type == "FOREX" and symbol.endswith("=X"):
        pair = symbol[:-2]
        return f"USD/{pair}" if len(pair) == 3 else f"{pair[:3]}/{pair[3:]}"
    if asset_type in ("STOCK", "ETF") and "-" in symbol:
        stem, suffix = symbol.rsplit("-", 1)
        if suffix.isalpha() and len(suffix) <= 2:
            return f"{stem}.{suffix}"
    return symbol


# ---- history ----

def chart_window(start: date, end: date, today: date) -> tuple[int, int]:
    """period1 and period2 of a chart request for `start`..`end` and through today (so the answer
    reports every later split), widened by a day on each side because sessions start up to 14 hours
    either side of UTC midnight."""
    return unix_seconds(start - timedelta(days=1)), unix_seconds(max(end, today) + timedelta(days=2))


def fetch_history(auth: YahooAuth, base_url: str, symbol: str, start: date, end: date,
                  today: date | None = None) -> dict:
    """The chart payload for `symbol` covering `start`..`end` and through `today` (default: UTC today),
    with dividends and splits; `history()` keeps only the requested dates."""
    period1, period2 = chart_window(start, end, today or datetime.now(timezone.utc).date())
    params = {
        "period1": period1,
        "period2": period2,
        "interval": "1d",
        "events": "div,split",
        "includeAdjustedClose": "true",
    }
    return auth.get_json(f"{base_url}{chart_path(symbol)}", params, json_statuses=(400,))


def _column(values: Any, index: int) -> Any:
    return values[index] if isinstance(values, list) and index < len(values) else None


@answer_parser(NAME)
def parse_history(payload: Any, asset: Asset, where: str = "") -> list[Bar]:
    """Bars from a chart payload, one per timestamp, prices in the major currency.

    Nulls stay None (validation drops those rows); nothing is filtered here. A
    window with no data at all gives no bars. The arrays are read a column at a
    time when they hold what Yahoo sends, else row by row (the same bars, or the
    same error, more slowly).
    """
    result = chart_result(payload, where or asset.spec)
    if result is None:
        return []
    meta = result.get("meta") or {}
    raw_currency = meta.get("currency")
    currency = to_major_unit(None, raw_currency)[1]
    zone = exchange_zone(meta)
    indicators = result.get("indicators") or {}
    arrays = (indicators.get("quote") or [{}])[0] or {}
    adjclose = ((indicators.get("adjclose") or [{}])[0] or {}).get("adjclose")
    stamps = result.get("timestamp") or []
    columns = chart_columns(stamps, zone, arrays, adjclose, raw_currency)
    if columns is not None:
        return bars_from_columns(len(stamps), columns, symbol=asset.symbol, asset_type=asset.asset_type,
                                 currency=currency, source=NAME)
    return [Bar(
        symbol=asset.symbol,
        asset_type=asset.asset_type,
        date=trading_date(stamp, zone),
        price=major_price(_column(arrays.get("close"), i), raw_currency),
        adj_close=major_price(_column(adjclose, i), raw_currency),
        open=major_price(_column(arrays.get("open"), i), raw_currency),
        high=major_price(_column(arrays.get("high"), i), raw_currency),
        low=major_price(_column(arrays.get("low"), i), raw_currency),
        volume=to_decimal(_column(arrays.get("volume"), i)),
        currency=currency,
        source=NAME,
    ) for i, stamp in enumerate(stamps)]


@answer_parser(NAME)
def parse_actions(payload: Any, asset: Asset) -> list[CorporateAction]:
    """The splits and dividends in a chart payload's `events`, dated in the exchange's time zone.

    Dividend amounts are as Yahoo gives them (split-adjusted), converted to the major
    currency unit like prices; a split without a usable ratio is left out.
    """
    result = chart_result(payload, asset.spec)
    if result is None:
        return []
    meta = result.get("meta") or {}
    raw_currency = meta.get("currency")
    zone = exchange_zone(meta)
    events = result.get("events") or {}
    actions = []
    for event in (events.get("splits") or {}).values():
        ratio = split_ratio(event)
        if ratio is not None and event.get("date") is not None:
            actions.append(CorporateAction(asset.symbol, asset.asset_type, trading_date(event["date"], zone),
                                           "split", NAME, ratio=ratio))
    for event in (events.get("dividends") or {}).values():
        amount, currency = to_major_unit(to_decimal(event.get("amount")), raw_currency)
        if is_good_dividend(amount) and event.get("date") is not None:
            actions.append(CorporateAction(asset.symbol, asset.asset_type, trading_date(event["date"], zone),
                                           "dividend", NAME, amount=amount, currency=currency))
    return actions


def split_ratio(event: dict) -> Decimal | None:
    """Shares after per share before: numerator / denominator (4 for "4:1", 0.1 for "1:10")."""
    numerator, denominator = to_decimal(event.get("numerator")), to_decimal(event.get("denominator"))
    if numerator is None or denominator is None:
        before, _, after = str(event.get("splitRatio") or "").partition(":")
        numerator, denominator = to_decimal(before), to_decimal(after)
    return sane_ratio(numerator, denominator)


@answer_parser(NAME)
def first_trade_date(payload: Any) -> date | None:
    """The first trading day Yahoo states for the symbol (`meta.firstTradeDate`), if any."""
    result = chart_result(payload, "")
    meta = (result or {}).get("meta") or {}
    stamp = meta.get("firstTradeDate")
    valid = isinstance(stamp, (int, Decimal)) and not isinstance(stamp, bool)
    return trading_date(stamp, exchange_zone(meta)) if valid else None


class YahooSettings(ProviderSettings, Protocol):
    yahoo_cookie_url: str  # where the session's consent cookie is fetched (YAHOO_COOKIE_URL)


class YahooProvider(Provider):
    """Yahoo as a browser (curl_cffi), with its cookie-and-crumb session (`yahoo_auth`) shared
    through the database, and quotes from spark or, when refused, the chart (`yahoo_quotes`)."""

    name = NAME
    base_url_variable = "YAHOO_BASE_URL"
    default_base_url = "https://query1.finance.yahoo.com"
    asset_types = frozenset({"STOCK", "ETF", "INDEX", "FOREX", "CRYPTO"})
    limits = Limits(per_minute=60, max_batch=SPARK_MAX_SYMBOLS)
    price_basis = SPLIT_ADJUSTED
    gives_adj_close = True
    reports_actions = frozenset({"STOCK", "ETF"})
    browser = True
    down_after_429s = EDGE_429S_BEFORE_DOWN

    def __init__(self, session: ProviderSession, base_url: str, api_key: str | None = None, *,
                 cookie_url: str = DEFAULT_COOKIE_URL, saved: SessionStore | None = None):
        super().__init__(session, base_url, api_key)
        self.auth = YahooAuth(session, self.base_url, cookie_url, saved)
        self._quotes = None

    @classmethod
    def from_settings(cls, session: ProviderSession, settings: YahooSettings, saved: SessionStore | None = None):
        return cls(session, settings.base_url(NAME), cookie_url=settings.yahoo_cookie_url, saved=saved)

    def map_symbol(self, asset: Asset) -> str:
        return to_yahoo_symbol(asset)

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        return self.history_answer(asset, start, end).bars

    def history_answer(self, asset: Asset, start: date, end: date, *, actions: bool = True) -> HistoryAnswer:
        symbol = self.provider_symbol(asset)
        try:
            payload = fetch_history(self.auth, self.base_url, symbol, start, end)
        except AccessRefusedError as exc:
            raise ProviderUnavailableError(f"{exc} — Yahoo refuses its chart to this client; not asked again "
                                           "in this run") from exc
        result = chart_result(payload, chart_path(symbol))
        if result is None:
            log.info("yahoo: %s has no data for %s..%s (before its first trading day)", asset.spec, start, end)
            return HistoryAnswer([])
        bars = parse_history(payload, asset, where=chart_path(symbol))
        days = [bar.date for bar in bars]
        return HistoryAnswer([bar for bar in bars if start <= bar.date <= end], parse_actions(payload, asset),
                             answered=(min(days), max(days)) if days else None,
                             listed_from=first_trade_date(payload),
                             checked_actions=asset.asset_type in self.reports_actions,
                             meta=chart_meta(result.get("meta") or {}))

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        if self._quotes is None:

            self._quotes = YahooQuotes(self.auth, self.base_url, self.provider_symbol)
        return self._quotes.quotes(assets)

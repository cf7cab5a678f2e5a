"""Every provider's API on one loopback server: healthy for any symbol and days, breakable one symbol at a time.

Yahoo (`/v8/finance/chart/…` for history and, with `range=1d`, a quote; `/v7/finance/spark`), Twelve Data (`/time_series`,
`/quote`), CoinGecko (`/coins/{id}/market_chart/range`, `/simple/price`),
Frankfurter (`/{start}..{end}`, `/latest`) and Alpha Vantage (`/query`
TIME_SERIES_DAILY and GLOBAL_QUOTE) answer in their documented formats (as the
recorded fixtures under tests/fixtures/<provider>/ show), so every provider's
base URL can point at the same server. Each answer is built from neutral rows:
a `Day` per trading day (weekdays; every day for crypto) and a `Tick` per quote,
with deterministic prices (`yahoo_server.close_price`), so a test knows exactly
what a healthy answer stores.

`spoil(provider, symbol, Spoil(...))` breaks what one symbol (as the provider
names it) is answered: the whole answer of every request about it, its days or
its quote before they are written out, or the shape of its part of the answer.
Numbers are written as the API writes them (JSON numbers, or text for Twelve
Data and Alpha Vantage), so Decimal('NaN'), Decimal('Infinity') and
Decimal('1E+400') reach the provider as the bare tokens or strings an API could send.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import unquote

from support.fake_api import FakeApi, Request, Response
from support.yahoo_server import close_price

DAY = timedelta(days=1)
OPEN_UTC = time(14, 30)           # a New York session's opening time, as Yahoo stamps daily bars
NUMBER = "__number__:"            # how a Decimal travels through json.dumps until it is written bare


@dataclass(frozen=True)
class Day:
    """One trading day as every API can say it (a value may be None, NaN, out of bounds …)."""

    date: date
    close: Decimal | None
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    volume: Decimal | None


@dataclass(frozen=True)
class Tick:
    """One live quote as every API can say it."""

    time: datetime
    price: Decimal | None
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    volume: Decimal | None
    previous_close: Decimal | None


def healthy_day(symbol: str, day: date) -> Day:
    close = close_price(symbol, day)
    return Day(day, close, close - 1, close + 2, close - 2, Decimal(1_000_000 + day.toordinal() % 1000))


def healthy_tick(symbol: str, now: datetime) -> Tick:
    price = close_price(symbol, now.date())
    return Tick(now, price, price - 1, price + 1, price - 1, Decimal(4_200_000), price - Decimal("1.5"))


@dataclass(frozen=True)
class Spoil:
    """How one symbol's answers are broken; by default they are not.

    `answer` replaces the whole answer to every request about the symbol (a batch
    included); `days` and `tick` rewrite its rows before they are written out;
    `malformed` writes its part of the answer in a shape the API never documented.
    """

    answer: Response | None = None
    days: Callable[[list[Day]], list[Day]] = lambda days: days
    tick: Callable[[Tick], list[Tick]] = lambda tick: [tick]
    malformed: bool = False


def json_text(body: Any) -> str:
    """`body` as JSON, every Decimal written as a bare number token (NaN and Infinity included)."""
    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            return NUMBER + str(value)
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value
    return re.sub(r'"' + re.escape(NUMBER) + r'([^"]*)"', r"\1", json.dumps(mark(body)))


def text_number(value: Decimal | None, places: int) -> str | None:
    """A number as Twelve Data and Alpha Vantage write it: text with fixed decimals ("183.05000")."""
    if value is None:
        return None
    return f"{value:.{places}f}" if value.is_finite() else str(value)


def weekdays(first: date, last: date) -> list[date]:
    return [first + DAY * i for i in range((last - first).days + 1) if (first + DAY * i).weekday() < 5]


def every_day(first: date, last: date) -> list[date]:
    return [first + DAY * i for i in range((last - first).days + 1)]


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def utc_day(seconds: str | int) -> date:
    return datetime.fromtimestamp(int(seconds), timezone.utc).date()


@dataclass
class MarketApis:
    """The five APIs on `api`, with the spoils tests set and a log of which symbols each request was about."""

    api: FakeApi
    spoils: dict[tuple[str, str], Spoil] = field(default_factory=dict)
    asked: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)   # (provider, symbols) per request

    def __post_init__(self):
        for provider, path, handler in (
                ("yahoo", re.compile(r"/v8/finance/chart/(.+)"), self._yahoo_chart),
                ("yahoo", "/v7/finance/spark", self._yahoo_spark),
                ("twelvedata", "/time_series", self._twelvedata_series),
                ("twelvedata", "/quote", self._twelvedata_quote),
                ("coingecko", re.compile(r"/coins/([^/]+)/market_chart/range"), self._coingecko_chart),
                ("coingecko", "/simple/price", self._coingecko_price),
                ("frankfurter", re.compile(r"/(\d{4}-\d\d-\d\d)\.\.(\d{4}-\d\d-\d\d)"), self._frankfurter_series),
                ("frankfurter", "/latest", self._frankfurter_latest),
                ("alphavantage", "/query", self._alphavantage_query)):
            self.api.route(path, self._answering(provider, handler))

    @property
    def base_url(self) -> str:
        return self.api.base_url

    # ---- what tests ask ----

    def spoil(self, provider: str, symbol: str, spoil: Spoil) -> None:
        self.spoils[(provider, symbol)] = spoil

    def heal(self) -> None:
        self.spoils.clear()
        self.asked.clear()

    def requests_about(self, provider: str, symbol: str) -> int:
        return sum(1 for name, symbols in self.asked if name == provider and symbol in symbols)

    @staticmethod
    def closes(provider: str, symbol: str, first: date, last: date) -> dict[date, Decimal]:
        """The close of each day from `first` to `last` a healthy answer gives."""
        days = every_day(first, last) if provider == "coingecko" else weekdays(first, last)
        return {day: close_price(symbol, day) for day in days}

    @staticmethod
    def price(symbol: str) -> Decimal:
        """The price a healthy quote gives today."""
        return close_price(symbol, datetime.now(timezone.utc).date())

    # ---- building answers ----

    def _answering(self, provider: str, handler: Callable[[Request, list[str]], Any]):
        """A route that finds the symbols a request is about, answers a spoiled whole answer, or the handler's."""
        def answer(request: Request) -> Response:
            symbols = SYMBOLS_OF[provider](request)
            self.asked.append((provider, tuple(symbols)))
            for symbol in symbols:
                spoil = self.spoils.get((provider, symbol))
                if spoil is not None and spoil.answer is not None:
                    return spoil.answer
            return Response(body=json_text(handler(request, symbols)))
        return answer

    def _spoil(self, provider: str, symbol: str) -> Spoil:
        return self.spoils.get((provider, symbol), Spoil())

    def _days(self, provider: str, symbol: str, days: list[date]) -> list[Day]:
        return self._spoil(provider, symbol).days([healthy_day(symbol, day) for day in days])

    def _ticks(self, provider: str, symbol: str) -> list[Tick]:
        return self._spoil(provider, symbol).tick(healthy_tick(symbol, datetime.now(timezone.utc)))

    def _malformed(self, provider: str, symbol: str) -> bool:
        return self._spoil(provider, symbol).malformed

    # ---- Yahoo ----

    def _yahoo_chart(self, request: Request, symbols: list[str]) -> dict:
        symbol = symbols[0]
        if "period1" not in request.query:  # `range=1d`: the day's quote (asked when spark is refused)
            return self._yahoo_chart_quote(symbol)
        first, end = utc_day(request.query["period1"]), utc_day(request.query["period2"])
        days = self._days("yahoo", symbol, weekdays(first, end - DAY))
        closes = [d.close for d in days]
        result: dict = {
            "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
                     "firstTradeDate": 345479400, "regularMarketTime": epoch(datetime.now(timezone.utc)),
                     "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                     "regularMarketPrice": close_price(symbol, end), "dataGranularity": "1d", "range": ""},
            "indicators": {"quote": [{}], "adjclose": [{}]},
        }
        if days:
            result["timestamp"] = [epoch(datetime.combine(d.date, OPEN_UTC, timezone.utc)) for d in days]
            result["indicators"] = {
                "quote": [{"open": [d.open for d in days], "high": [d.high for d in days],
                           "low": [d.low for d in days], "close": closes, "volume": [d.volume for d in days]}],
                "adjclose": [{"adjclose": [_adjusted(close) for close in closes]}]}
        if self._malformed("yahoo", symbol):
            result["indicators"]["adjclose"] = [7, {}]
        return {"chart": {"result": [result], "error": None}}

    def _yahoo_spark(self, request: Request, symbols: list[str]) -> dict:
        results = [{"symbol": symbol, "response": [7] if self._malformed("yahoo", symbol) else [chart]}
                   for symbol in symbols for chart in self._yahoo_day_charts(symbol)]
        return {"spark": {"result": results, "error": None}}

    def _yahoo_chart_quote(self, symbol: str) -> dict:
        charts = self._yahoo_day_charts(symbol)
        if self._malformed("yahoo", symbol):
            charts = [{**chart, "meta": [7]} for chart in charts]
        return {"chart": {"result": charts[-1:], "error": None}}

    def _yahoo_day_charts(self, symbol: str) -> list[dict]:
        """The day's chart of each of the symbol's ticks: `meta` with the quote, one point of arrays."""
        charts = []
        for tick in self._ticks("yahoo", symbol):
            stamp = epoch(tick.time)
            meta = {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
                    "instrumentType": "EQUITY", "regularMarketTime": stamp, "gmtoffset": -18000,
                    "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                    "regularMarketPrice": tick.price, "regularMarketDayHigh": tick.high,
                    "regularMarketDayLow": tick.low, "regularMarketVolume": tick.volume,
                    "longName": f"{symbol} Long Name", "shortName": symbol,
                    "chartPreviousClose": tick.previous_close, "previousClose": tick.previous_close,
                    "dataGranularity": "1d", "range": "1d"}
            charts.append({"meta": meta, "timestamp": [stamp],
                           "indicators": {"quote": [{"close": [tick.price], "open": [tick.open]}]}})
        return charts

    # ---- Twelve Data ----

    def _twelvedata_series(self, request: Request, symbols: list[str]) -> dict:
        symbol = symbols[0]
        first = date.fromisoformat(request.query["start_date"])
        end = date.fromisoformat(request.query["end_date"])
        days = self._days("twelvedata", symbol, weekdays(first, end - DAY))
        values: Any = [{"datetime": d.date.isoformat(), "open": text_number(d.open, 5),
                        "high": text_number(d.high, 5), "low": text_number(d.low, 5),
                        "close": text_number(d.close, 5), "volume": text_number(d.volume, 0)}
                       for d in reversed(days)]  # newest first, as Twelve Data sends them
        if self._malformed("twelvedata", symbol):
            values = "unexpected"
        return {"meta": {"symbol": symbol, "interval": "1day", "currency": "USD",
                         "exchange_timezone": "America/New_York", "exchange": "NASDAQ", "mic_code": "XNGS",
                         "type": "Common Stock"},
                "values": values, "status": "ok"}

    def _twelvedata_quote(self, request: Request, symbols: list[str]) -> Any:
        objects: dict[str, Any] = {}
        for symbol in symbols:
            for tick in self._ticks("twelvedata", symbol):
                change = None if tick.price is None or not tick.price.is_finite() else tick.price - tick.previous_close
                objects[symbol] = {
                    "symbol": symbol, "name": f"{symbol} Inc.", "exchange": "NASDAQ", "mic_code": "XNGS",
                    "currency": "USD", "datetime": tick.time.date().isoformat(), "timestamp": epoch(tick.time),
                    "last_quote_at": epoch(tick.time), "open": text_number(tick.open, 5),
                    "high": text_number(tick.high, 5), "low": text_number(tick.low, 5),
                    "close": text_number(tick.price, 5), "volume": text_number(tick.volume, 0),
                    "previous_close": text_number(tick.previous_close, 5), "change": text_number(change, 5),
                    "is_market_open": False}
            if self._malformed("twelvedata", symbol):
                objects[symbol] = ["unexpected"]
        if len(symbols) == 1:  # one symbol: its object alone, not keyed
            return objects.get(symbols[0], {})
        return objects

    # ---- CoinGecko ----

    def _coingecko_chart(self, request: Request, symbols: list[str]) -> dict:
        """Hourly points (a range under 90 days): each day's from 01:00 through the next 00:00 UTC, the
        point that closes it, all at that day's close."""
        coin = symbols[0]
        days = self._days("coingecko", coin, every_day(utc_day(request.query["from"]), utc_day(request.query["to"])))
        points = [(epoch(datetime.combine(d.date, time(0), timezone.utc)) * 1000 + hour * 3_600_000, d)
                  for d in days for hour in range(1, 25)]
        prices: Any = [[ms, d.close] for ms, d in points]
        if self._malformed("coingecko", coin):
            prices = {"unexpected": 1}
        return {"prices": prices,
                "market_caps": [[ms, None if d.close is None else d.close * 19_000_000] for ms, d in points],
                "total_volumes": [[ms, d.volume] for ms, d in points]}

    def _coingecko_price(self, request: Request, symbols: list[str]) -> dict:
        body: dict[str, Any] = {}
        for coin in symbols:
            for tick in self._ticks("coingecko", coin):
                body[coin] = {"usd": tick.price, "usd_24h_vol": tick.volume, "usd_24h_change": Decimal("1.25"),
                              "last_updated_at": epoch(tick.time)}
            if self._malformed("coingecko", coin):
                body[coin] = ["unexpected"]
        return body

    # ---- Frankfurter ----

    def _frankfurter_series(self, request: Request, symbols: list[str]) -> dict:
        """The ECB's working days from the last one on or before the start (as the API starts a series)."""
        start, end = (date.fromisoformat(part) for part in request.path.strip("/").split(".."))
        first = start - DAY * max(0, start.weekday() - 4)
        rates: Any = {}
        for pair in symbols:
            for d in self._days("frankfurter", pair, weekdays(first, end)):
                rates.setdefault(d.date.isoformat(), {})[pair.split("/")[1]] = d.close
            if self._malformed("frankfurter", pair):
                rates = ["unexpected"]
        return {"amount": Decimal("1.0"), "base": request.query["base"], "start_date": first.isoformat(),
                "end_date": end.isoformat(), "rates": rates}

    def _frankfurter_latest(self, request: Request, symbols: list[str]) -> dict:
        """One date for the whole answer: the ECB's last working day (the latest of the pairs' quotes)."""
        rates: dict[str, Any] = {}
        day = None
        for pair in symbols:
            quote = pair.split("/")[1]
            for tick in self._ticks("frankfurter", pair):
                rates[quote] = tick.price
                day = max(day or tick.time.date(), tick.time.date())
            if self._malformed("frankfurter", pair):
                rates[quote] = {"unexpected": 1}
        day = day or datetime.now(timezone.utc).date()
        day -= DAY * max(0, day.weekday() - 4)
        return {"amount": Decimal("1.0"), "base": request.query["base"], "date": day.isoformat(), "rates": rates}

    # ---- Alpha Vantage ----

    def _alphavantage_query(self, request: Request, symbols: list[str]) -> dict:
        function, symbol = request.query.get("function"), symbols[0] if symbols else ""
        if function == "TIME_SERIES_DAILY":
            return self._alphavantage_daily(symbol)
        if function == "GLOBAL_QUOTE":
            return self._alphavantage_quote(symbol)
        return {"Error Message": "Invalid API call. Please retry or visit the documentation "
                                 "(https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY."}

    def _alphavantage_daily(self, symbol: str) -> dict:
        """`outputsize=compact`: the latest 100 trading days, newest first, whatever range was meant."""
        today = datetime.now(timezone.utc).date()
        days = self._days("alphavantage", symbol, weekdays(today - DAY * 150, today)[-100:])
        series: Any = {d.date.isoformat(): {"1. open": text_number(d.open, 4), "2. high": text_number(d.high, 4),
                                            "3. low": text_number(d.low, 4), "4. close": text_number(d.close, 4),
                                            "5. volume": text_number(d.volume, 0)}
                       for d in reversed(days)}
        if self._malformed("alphavantage", symbol):
            series = ["unexpected"]
        return {"Meta Data": {"1. Information": "Daily Prices (open, high, low, close) and Volumes",
                              "2. Symbol": symbol, "3. Last Refreshed": days[-1].date.isoformat() if days else "",
                              "4. Output Size": "Compact", "5. Time Zone": "US/Eastern"},
                "Time Series (Daily)": series}

    def _alphavantage_quote(self, symbol: str) -> dict:
        values: Any = {}
        for tick in self._ticks("alphavantage", symbol):
            values = {"01. symbol": symbol, "02. open": text_number(tick.open, 4),
                      "03. high": text_number(tick.high, 4), "04. low": text_number(tick.low, 4),
                      "05. price": text_number(tick.price, 4), "06. volume": text_number(tick.volume, 0),
                      "07. latest trading day": tick.time.date().isoformat(),
                      "08. previous close": text_number(tick.previous_close, 4)}
        if self._malformed("alphavantage", symbol):
            values = ["unexpected"]
        return {"Global Quote": values}


def _adjusted(close: Decimal | None) -> Decimal | None:
    """Yahoo's adjclose of a healthy close (no split or dividend since: 98 % of it, as yahoo_server serves)."""
    if close is None or not close.is_finite() or not 0 < close < 10**12:
        return None
    return (close * Decimal("0.98")).quantize(Decimal("0.0001"))


def _listed(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part]


# The symbols (as each provider names them) a request is about.
SYMBOLS_OF: dict[str, Callable[[Request], list[str]]] = {
    "yahoo": lambda r: ([unquote(r.path.rsplit("/", 1)[1])] if r.path.startswith("/v8/")
                        else _listed(r.query.get("symbols"))),
    "twelvedata": lambda r: _listed(r.query.get("symbol")),
    "coingecko": lambda r: ([r.path.split("/")[2]] if r.path.startswith("/coins/") else _listed(r.query.get("ids"))),
    "frankfurter": lambda r: [f"{r.query.get('base')}/{quote}" for quote in _listed(r.query.get("symbols"))],
    "alphavantage": lambda r: _listed(r.query.get("symbol")),
}

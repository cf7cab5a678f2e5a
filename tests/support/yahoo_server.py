"""Yahoo Finance answers generated for whatever a test asks, in Yahoo's exact format.

Chart (`/v8/finance/chart/{symbol}?period1&period2&interval=1d`): one bar per
weekday in [period1, period2) that is not a holiday and not before the
symbol's listing day, stamped 14:30 UTC (the New York open), with the
`meta`, `timestamp` and `indicators.quote[0]` / `indicators.adjclose[0]`
arrays Yahoo sends. Spark (`/v7/finance/spark?symbols=A,B&range=1d&interval=1d`):
`spark.result[i].response[0]` with the quote in `meta`. Unknown symbols get
Yahoo's 404 body. Prices are deterministic, so tests can compare to the cent.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from urllib.parse import unquote

from support.fake_api import FakeApi, Request, Response

OPEN_UTC = time(14, 30)
NOT_FOUND = {"chart": {"result": None,
                       "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}


def close_price(symbol: str, day: date) -> Decimal:
    """The deterministic close of `symbol` on `day` (two decimals)."""
    base = 50 + sum(map(ord, symbol)) % 200
    return Decimal(base) + Decimal(day.toordinal() % 97) / 4 + Decimal("0.25")


def adjusted_close(symbol: str, day: date) -> Decimal:
    return (close_price(symbol, day) * Decimal("0.98")).quantize(Decimal("0.0001"))


def _num(value: Decimal) -> float:
    return float(value)  # JSON numbers, as Yahoo sends them; these values are exact in binary64 text


def _day(epoch: str) -> date:
    return datetime.fromtimestamp(int(epoch), timezone.utc).date()


class YahooServer:
    def __init__(self, api: FakeApi, *, holidays=(), unknown=(), listed=None, failing=None):
        self.api = api
        self.holidays: set[date] = set(holidays)
        self.unknown: set[str] = set(unknown)
        self.listed: dict[str, date] = dict(listed or {})
        self.failing: dict[str, int] = dict(failing or {})      # yahoo symbol → HTTP status
        self.broken: set[tuple[str, date]] = set()              # (symbol, day) served with its close above its high
        self.quote_time: datetime | None = None                 # default: now
        self.quote_bump = Decimal(0)                            # added to every quote price
        self.names: dict[str, str] = {}
        self.without_day_low: set[str] = set()                  # symbols whose quote omits regularMarketDayLow
        api.route(re.compile(r"/v8/finance/chart/(.+)"), self._chart)
        api.route("/v7/finance/spark", self._spark)

    @property
    def base_url(self) -> str:
        return self.api.base_url

    # ---- what tests ask ----

    def trading_days(self, symbol: str, first: date, last: date) -> list[date]:
        days, day = [], first
        while day <= last:
            if day.weekday() < 5 and day not in self.holidays and day >= self.listed.get(symbol, date.min):
                days.append(day)
            day += timedelta(days=1)
        return days

    def chart_requests(self, symbol: str | None = None) -> list[Request]:
        prefix = "/v8/finance/chart/"
        return [r for r in self.api.requests_to(prefix) if symbol is None or unquote(r.path) == prefix + symbol]

    def requested_days(self, symbol: str) -> list[tuple[date, date]]:
        """The (first, last) day each chart request for `symbol` asked for, as the provider
        meant it (it widens the window by a day before and two after)."""
        return [(_day(r.query["period1"]) + timedelta(days=1), _day(r.query["period2"]) - timedelta(days=2))
                for r in self.chart_requests(symbol)]

    def spark_requests(self) -> list[Request]:
        return self.api.requests_to("/v7/finance/spark")

    def quote_price(self, symbol: str) -> Decimal:
        return close_price(symbol, date.today()) + self.quote_bump

    # ---- answers ----

    def _chart(self, request: Request) -> Response:
        symbol = unquote(request.path.rsplit("/", 1)[1])
        status = self.failing.get(symbol)
        if status and status != 404:
            return Response(status=status, body="<html><body>Service unavailable</body></html>",
                            content_type="text/html")
        if status == 404 or symbol in self.unknown:
            return Response(status=404, body=NOT_FOUND)
        first, end = _day(request.query["period1"]), _day(request.query["period2"])
        days = self.trading_days(symbol, first, end - timedelta(days=1))
        stamps = [int(datetime.combine(d, OPEN_UTC, timezone.utc).timestamp()) for d in days]
        closes = [close_price(symbol, d) for d in days]
        quote = {
            "open": [_num(c - 1) for c in closes],
            "high": [_num(c - 5 if (symbol, d) in self.broken else c + 2) for c, d in zip(closes, days)],
            "low": [_num(c - 6 if (symbol, d) in self.broken else c - 2) for c, d in zip(closes, days)],
            "close": [_num(c) for c in closes],
            "volume": [1_000_000 + d.toordinal() % 1000 for d in days],
        }
        result = {
            "meta": self._meta(symbol, closes[-1] if closes else close_price(symbol, end)),
            "indicators": {"quote": [quote], "adjclose": [{"adjclose": [_num(adjusted_close(symbol, d)) for d in days]}]},
        }
        if days:
            result["timestamp"] = stamps
        return Response(body={"chart": {"result": [result], "error": None}})

    def _meta(self, symbol: str, price: Decimal) -> dict:
        stamp = self.quote_time or datetime.now(timezone.utc)
        meta = {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
            "instrumentType": "INDEX" if symbol.startswith("^") else "EQUITY", "firstTradeDate": 345479400,
            "regularMarketTime": int(stamp.timestamp()), "hasPrePostMarketData": True, "gmtoffset": -18000,
            "timezone": "EST", "exchangeTimezoneName": "America/New_York", "regularMarketPrice": _num(price),
            "regularMarketDayHigh": _num(price + 1), "regularMarketDayLow": _num(price - 1),
            "regularMarketVolume": 4_200_000, "longName": self.names.get(symbol, f"{symbol} Long Name"),
            "shortName": self.names.get(symbol, symbol), "chartPreviousClose": _num(price - Decimal("1.5")),
            "previousClose": _num(price - Decimal("1.5")), "scale": 3, "priceHint": 2, "dataGranularity": "1d",
            "range": "1d",
        }
        if symbol in self.without_day_low:
            del meta["regularMarketDayLow"]
        return meta

    def _spark(self, request: Request) -> Response:
        results = []
        for symbol in request.query.get("symbols", "").split(","):
            if symbol in self.unknown or not symbol:
                continue
            price = self.quote_price(symbol)
            stamp = int((self.quote_time or datetime.now(timezone.utc)).timestamp())
            results.append({"symbol": symbol, "response": [{
                "meta": self._meta(symbol, price),
                "timestamp": [stamp],
                "indicators": {"quote": [{"close": [_num(price)], "open": [_num(price - 1)]}]},
            }]})
        return Response(body={"spark": {"result": results, "error": None}})


SPARK_BATCH = 20  # symbols per spark request, as the Yahoo provider declares (limits.max_batch)

"""Yahoo Finance answers generated for whatever a test asks, in Yahoo's exact format.

Chart (`/v8/finance/chart/{symbol}?period1&period2&interval=1d`): one bar per
weekday in [period1, period2) that is not a holiday and not before the
symbol's listing day, stamped 14:30 UTC (the New York open), with the
`meta`, `timestamp` and `indicators.quote[0]` / `indicators.adjclose[0]`
arrays Yahoo sends. Spark (`/v7/finance/spark?symbols=A,B&range=1d&interval=1d`):
`spark.result[i].response[0]` with the quote in `meta`. Unknown symbols get
Yahoo's 404 body. Prices are deterministic, so tests can compare to the cent.

Corporate actions: `splits[symbol]` [(ex-date, numerator, denominator)] and
`dividends[symbol]` [(ex-date, amount as traded)]. As Yahoo does, the chart then
serves prices and volume split-adjusted by every split configured (as if all had
already happened), `adjclose` also adjusted for the dividends (1 − amount / the
previous close), and `events.splits` / `events.dividends` for the window (amounts
split-adjusted). A symbol with no actions keeps the plain `adjusted_close`.
`meta.firstTradeDate` is the listing day when one is set. `empty_answers[symbol]`
answers that many chart requests with a result holding no bar at all.

The session: `/fc` (point YAHOO_COOKIE_URL at it) answers 404 and sets a
cookie, as https://fc.yahoo.com does; `/v1/test/getcrumb` answers that
cookie's crumb as plain text. Endpoints named in `session_required` ("spark",
"chart") then answer 401 `Invalid Cookie` / `Invalid Crumb` in Yahoo's
`finance.error` format to a request without a valid pair; `refuse_once` holds
crumbs refused once more (stale), `expire_sessions()` invalidates every
crumb given so far. `spark_refusal` (401, 403, 404 or 200) closes spark the
way Yahoo does ("User is unable to access this feature").

Like Yahoo since May 2025, `browser_only` answers any request that does not
look like a browser's (a Chrome User-Agent with its client hints) with the
edge's plain-text `429 Too Many Requests` and no Retry-After; `edge_429` does
that to every request.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from urllib.parse import unquote

from etl.pipeline.plan import EDGE_DAYS
from support.fake_api import FakeApi, Request, Response

OPEN_UTC = time(14, 30)
EDGE_429 = "Edge: Too Many Requests"
FEATURE_REFUSED = "User is unable to access this feature - https://bit.ly/yahoo-finance-api-feedback"
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
    def __init__(self, api: FakeApi, *, holidays=(), unknown=(), listed=None, failing=None, every_day=()):
        self.api = api
        self.holidays: set[date] = set(holidays)
        self.unknown: set[str] = set(unknown)
        self.listed: dict[str, date] = dict(listed or {})
        self.failing: dict[str, int] = dict(failing or {})      # yahoo symbol → HTTP status
        self.every_day: set[str] = set(every_day)               # yahoo symbols trading every day (crypto)
        self.broken: set[tuple[str, date]] = set()              # (symbol, day) served with its close above its high
        self.quote_time: datetime | None = None                 # default: now
        self.quote_bump = Decimal(0)                            # added to every quote price
        self.names: dict[str, str] = {}                         # longName (and shortName) by symbol
        self.without_long_name: set[str] = set()                # symbols whose meta has a shortName only
        self.without_day_low: set[str] = set()                  # symbols whose quote omits regularMarketDayLow
        self.closes: dict[tuple[str, date], Decimal] = {}       # as-traded closes other than close_price
        self.splits: dict[str, list[tuple[date, int, int]]] = {}
        self.dividends: dict[str, list[tuple[date, Decimal]]] = {}
        self.empty_answers: dict[str, int] = {}
        self.browser_only = False                               # 429 to clients without a browser's headers
        self.edge_429 = False                                   # 429 to every request
        self.session_required: set[str] = set()                 # "spark", "chart": need cookie and crumb
        self.sessions: dict[str, str] = {}                      # valid cookie value → its crumb
        self.refuse_once: set[str] = set()                      # crumbs refused (once) as stale
        self.refuse_first_crumb_once = False
        self.spark_refusal: int | None = None                   # spark closed to this client with this status
        self._issued = 0
        api.route(re.compile(r"/v8/finance/chart/(.+)"), self._gated(self._chart, "chart"))
        api.route("/v7/finance/spark", self._gated(self._spark, "spark"))
        api.route("/fc", self._gated(self._cookie))
        api.route("/v1/test/getcrumb", self._gated(self._crumb))

    @property
    def base_url(self) -> str:
        return self.api.base_url

    # ---- what tests ask ----

    def trading_days(self, symbol: str, first: date, last: date) -> list[date]:
        days, day = [], first
        while day <= last:
            if ((day.weekday() < 5 or symbol in self.every_day) and day not in self.holidays
                    and day >= self.listed.get(symbol, date.min)):
                days.append(day)
            day += timedelta(days=1)
        return days

    def chart_requests(self, symbol: str | None = None) -> list[Request]:
        prefix = "/v8/finance/chart/"
        return [r for r in self.api.requests_to(prefix) if symbol is None or unquote(r.path) == prefix + symbol]

    def requested_days(self, symbol: str) -> list[tuple[date, date]]:
        """The (first, last) day each chart request for `symbol` asked for, as the backfill planned
        it: the provider opens the window a day early (and closes it two days late; the last day is
        today or later, as every request runs through today), and for what does not trade every day
        (not a crypto `-USD` pair) the chain asks EDGE_DAYS early."""
        def planned(request: Request) -> date:
            edge = 0 if symbol.endswith("-USD") else EDGE_DAYS
            return _day(request.query["period1"]) + timedelta(days=1 + edge)

        return [(planned(r), _day(r.query["period2"]) - timedelta(days=2)) for r in self.chart_requests(symbol)]

    def raw_close(self, symbol: str, day: date) -> Decimal:
        """The close as traded on `day`."""
        return self.closes.get((symbol, day), close_price(symbol, day))

    def split_factor(self, symbol: str, day: date) -> Decimal:
        """The product of the ratios of the splits after `day`: what Yahoo divides that day's prices by."""
        factor = Decimal(1)
        for ex_date, numerator, denominator in self.splits.get(symbol, []):
            if ex_date > day:
                factor *= Decimal(numerator) / Decimal(denominator)
        return factor

    def served_adjclose(self, symbol: str, day: date) -> Decimal:
        """Yahoo's adjclose of `day`: the split-adjusted close times 1 − amount / previous close of every
        later dividend (both as traded); the plain `adjusted_close` for a symbol without actions."""
        if symbol not in self.splits and symbol not in self.dividends:
            return adjusted_close(symbol, day)
        value = self.raw_close(symbol, day) / self.split_factor(symbol, day)
        for ex_date, amount in self.dividends.get(symbol, []):
            if ex_date > day:
                before = max(d for d in self.trading_days(symbol, ex_date - timedelta(days=10), ex_date) if d < ex_date)
                value *= 1 - amount / self.raw_close(symbol, before)
        return value

    def spark_requests(self) -> list[Request]:
        return self.api.requests_to("/v7/finance/spark")

    def cookie_requests(self) -> list[Request]:
        return self.api.requests_to("/fc")

    def crumb_requests(self) -> list[Request]:
        return self.api.requests_to("/v1/test/getcrumb")

    @property
    def cookie_url(self) -> str:
        return f"{self.base_url}/fc"

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def quote_price(self, symbol: str) -> Decimal:
        return close_price(symbol, date.today()) + self.quote_bump

    # ---- answers ----

    def _gated(self, handler, endpoint: str | None = None):
        def answer(request: Request) -> Response:
            if self.edge_429 or (self.browser_only and not looks_like_a_browser(request)):
                return Response(status=429, body=EDGE_429, content_type="text/plain;charset=utf-8")
            if endpoint in self.session_required:
                refused = self._session_refusal(request)
                if refused:
                    return Response(status=401, body=finance_error("Unauthorized", refused))
            if endpoint == "spark" and self.spark_refusal:
                return self._spark_refused()
            return handler(request)
        return answer

    def _session_refusal(self, request: Request) -> str | None:
        cookie = cookies(request).get("A3")
        if cookie not in self.sessions:
            return "Invalid Cookie"
        crumb = request.query.get("crumb")
        if crumb != self.sessions[cookie]:
            return "Invalid Crumb"
        if crumb in self.refuse_once:
            self.refuse_once.discard(crumb)
            return "Invalid Crumb"
        return None

    def _spark_refused(self) -> Response:
        if self.spark_refusal == 404:
            return Response(status=404, body=finance_error("Not Found", "HTTP 404 Not Found"))
        code = "Forbidden" if self.spark_refusal == 403 else "Unauthorized"
        return Response(status=self.spark_refusal, body=finance_error(code, FEATURE_REFUSED))

    def _cookie(self, request: Request) -> Response:
        self._issued += 1
        value = f"d=AQABBCookieWombat{self._issued:04d}&S=AQAAAPangolin"
        self.sessions[value] = f"CrumbKestrel{self._issued:04d}"
        if self.refuse_first_crumb_once and self._issued == 1:
            self.refuse_once.add(self.sessions[value])
        return Response(status=404, body="<html><body>Not found</body></html>", content_type="text/html",
                        headers={"Set-Cookie": f"A3={value}; Expires=Tue, 1 Jun 2027 00:00:00 GMT; Path=/; "
                                               "SameSite=None; Secure; HttpOnly"})

    def _crumb(self, request: Request) -> Response:
        crumb = self.sessions.get(cookies(request).get("A3", ""))
        if crumb is None:
            return Response(status=401, body=finance_error("Unauthorized", "Invalid Cookie"))
        return Response(body=crumb, content_type="text/plain;charset=utf-8")

    def _chart(self, request: Request) -> Response:
        symbol = unquote(request.path.rsplit("/", 1)[1])
        status = self.failing.get(symbol)
        if status and status != 404:
            return Response(status=status, body="<html><body>Service unavailable</body></html>",
                            content_type="text/html")
        if status == 404 or symbol in self.unknown:
            return Response(status=404, body=NOT_FOUND)
        if request.query.get("range") == "1d":
            return self._chart_quote(symbol)
        first, end = _day(request.query["period1"]), _day(request.query["period2"])
        days = self.trading_days(symbol, first, end - timedelta(days=1))
        if self.empty_answers.get(symbol):
            self.empty_answers[symbol] -= 1
            days = []
        stamps = [int(datetime.combine(d, OPEN_UTC, timezone.utc).timestamp()) for d in days]
        factors = [self.split_factor(symbol, d) for d in days]
        closes = [self.raw_close(symbol, d) for d in days]
        quote = {
            "open": [_num((c - 1) / f) for c, f in zip(closes, factors)],
            "high": [_num((c - 5 if (symbol, d) in self.broken else c + 2) / f) for c, f, d in zip(closes, factors, days)],
            "low": [_num((c - 6 if (symbol, d) in self.broken else c - 2) / f) for c, f, d in zip(closes, factors, days)],
            "close": [_num(c / f) for c, f in zip(closes, factors)],
            "volume": [int((1_000_000 + d.toordinal() % 1000) * f) for d, f in zip(days, factors)],
        }
        result = {
            "meta": self._meta(symbol, closes[-1] if closes else close_price(symbol, end)),
            "indicators": {"quote": [quote] if days else [{}],
                           "adjclose": [{"adjclose": [_num(self.served_adjclose(symbol, d)) for d in days]} if days else {}]},
        }
        if days:
            result["timestamp"] = stamps
        events = self._events(symbol, first, end)
        if events:
            result["events"] = events
        return Response(body={"chart": {"result": [result], "error": None}})

    def _events(self, symbol: str, first: date, end: date) -> dict:
        """Yahoo's `events` for the window: keyed by the unix time of the ex-date's session open."""
        def stamp(day: date) -> int:
            return int(datetime.combine(day, OPEN_UTC, timezone.utc).timestamp())

        events: dict = {}
        for day, numerator, denominator in self.splits.get(symbol, []):
            if first <= day < end:
                events.setdefault("splits", {})[str(stamp(day))] = {
                    "date": stamp(day), "numerator": numerator, "denominator": denominator,
                    "splitRatio": f"{numerator}:{denominator}"}
        for day, amount in self.dividends.get(symbol, []):
            if first <= day < end:
                events.setdefault("dividends", {})[str(stamp(day))] = {
                    "amount": _num(amount / self.split_factor(symbol, day)), "date": stamp(day)}
        return events

    def _meta(self, symbol: str, price: Decimal) -> dict:
        stamp = self.quote_time or datetime.now(timezone.utc)
        meta = {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
            "instrumentType": "INDEX" if symbol.startswith("^") else "EQUITY",
            "firstTradeDate": (int(datetime.combine(self.listed[symbol], OPEN_UTC, timezone.utc).timestamp())
                               if symbol in self.listed else 345479400),
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
        if symbol in self.without_long_name:
            del meta["longName"]
        return meta

    def _chart_quote(self, symbol: str) -> Response:
        """`/v8/finance/chart/{symbol}?range=1d&interval=1d`: today's bar, the live quote in `meta`."""
        price = self.quote_price(symbol)
        stamp = int((self.quote_time or datetime.now(timezone.utc)).timestamp())
        result = {"meta": self._meta(symbol, price), "timestamp": [stamp],
                  "indicators": {"quote": [{"open": [_num(price - 1)], "high": [_num(price + 1)],
                                            "low": [_num(price - 1)], "close": [_num(price)],
                                            "volume": [4_200_000]}],
                                 "adjclose": [{"adjclose": [_num(price)]}]}}
        return Response(body={"chart": {"result": [result], "error": None}})

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


def finance_error(code: str, description: str) -> dict:
    return {"finance": {"result": None, "error": {"code": code, "description": description}}}


def cookies(request: Request) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header(request, "Cookie").split(";") if part.strip())
    return {name: value for name, _, value in pairs}


def header(request: Request, name: str) -> str:
    """A request header by name, whatever its case (curl sends lower-case names)."""
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), "")


def looks_like_a_browser(request: Request) -> bool:
    """What a stand-in can see of a browser: Chrome's User-Agent and its client hints (not the TLS fingerprint)."""
    agent = header(request, "User-Agent")
    return (agent.startswith("Mozilla/5.0") and "Chrome/" in agent and "financial-tracker-etl" not in agent
            and bool(header(request, "sec-ch-ua")) and bool(header(request, "Accept-Language")))


SPARK_BATCH = 20  # symbols per spark request, as the Yahoo provider declares (limits.max_batch)

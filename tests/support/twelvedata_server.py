"""Twelve Data answers generated for whatever a test asks, in Twelve Data's documented format.

`/time_series?symbol&interval=1day&start_date&end_date&outputsize&adjust`: one
bar per weekday from start_date up to (not including) end_date, the newest
`outputsize` of them, newest first, numbers as JSON strings, with `meta` and
`"status": "ok"`. As Twelve Data does, prices are split-adjusted (volume
multiplied) by every split configured unless `adjust=none`, which gives them as
traded.

`/splits?symbol&range` and `/dividends?symbol&range&adjust`: `splits[symbol]`
[(date, from_factor, to_factor)] as `{"date", "description", "ratio",
"from_factor", "to_factor"}` (a 4-for-1 split: from 4, to 1, ratio 0.25), and
`dividends[symbol]` [(ex-date, amount as paid)] as `{"ex_date", "amount"}`,
numbers as JSON numbers, newest first. As documented, the default `range` is
`last` (the newest one only; `full` gives all), and dividend amounts are
split-adjusted unless `adjust=false`. With `refused` set, both answer with the
error object of a plan without them, in a 200 or with `refused` as the HTTP status.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from support.fake_api import FakeApi, Request, Response, fixture_json

META = {"currency": "USD", "exchange_timezone": "America/New_York", "exchange": "NASDAQ", "mic_code": "XNGS"}


def close_price(symbol: str, day: date) -> Decimal:
    """The deterministic close as traded of `symbol` on `day` (two decimals)."""
    base = 50 + sum(map(ord, symbol)) % 200
    return Decimal(base) + Decimal(day.toordinal() % 97) / 4 + Decimal("0.25")


class TwelveDataServer:
    def __init__(self, api: FakeApi):
        self.api = api
        self.closes: dict[tuple[str, date], Decimal] = {}         # as-traded closes other than close_price
        self.splits: dict[str, list[tuple[date, int, int]]] = {}
        self.dividends: dict[str, list[tuple[date, Decimal]]] = {}
        self.refused: int | None = None                           # HTTP status of a plan refusal (200 inside)
        api.route("/time_series", self._time_series)
        api.route("/splits", self._splits)
        api.route("/dividends", self._dividends)

    # ---- what tests ask ----

    def raw_close(self, symbol: str, day: date) -> Decimal:
        return self.closes.get((symbol, day), close_price(symbol, day))

    def split_factor(self, symbol: str, day: date) -> Decimal:
        """The product of the ratios (shares after per share before) of the splits after `day`."""
        factor = Decimal(1)
        for ex_date, after, before in self.splits.get(symbol, []):
            if ex_date > day:
                factor *= Decimal(after) / Decimal(before)
        return factor

    def requests(self, path: str) -> list[Request]:
        return self.api.requests_to(path)

    # ---- answers ----

    def _time_series(self, request: Request) -> dict:
        symbol = request.query["symbol"]
        first = date.fromisoformat(request.query["start_date"][:10])
        until = date.fromisoformat(request.query["end_date"][:10])
        as_traded = request.query.get("adjust") == "none"
        days = [first + timedelta(days=i) for i in range((until - first).days)]
        days = [day for day in days if day.weekday() < 5][::-1][:int(request.query.get("outputsize", 30))]
        values = []
        for day in days:
            factor = Decimal(1) if as_traded else self.split_factor(symbol, day)
            close = self.raw_close(symbol, day) / factor
            values.append({"datetime": day.isoformat(), "open": f"{close * Decimal('0.99'):.5f}",
                           "high": f"{close * Decimal('1.01'):.5f}", "low": f"{close * Decimal('0.98'):.5f}",
                           "close": f"{close:.5f}", "volume": str(int(1_000_000 * factor))})
        return {"meta": {"symbol": symbol, "interval": "1day", **META, "type": "Common Stock"},
                "values": values, "status": "ok"}

    def _refusal(self, request: Request) -> Response:
        body = fixture_json("twelvedata/error_403_endpoint_plan.json")
        body["message"] = body["message"].replace("/splits", request.path)
        return Response(status=self.refused or 200, body=body)

    def _splits(self, request: Request) -> Response | dict:
        if self.refused is not None:
            return self._refusal(request)
        symbol = request.query["symbol"]
        rows = [{"date": day.isoformat(), "description": f"{after}-for-{before} split",
                 "ratio": float(Decimal(before) / Decimal(after)), "from_factor": after, "to_factor": before}
                for day, after, before in sorted(self.splits.get(symbol, []), reverse=True)]
        return {"meta": {"symbol": symbol, "name": symbol, **META},
                "splits": rows if request.query.get("range") == "full" else rows[:1]}

    def _dividends(self, request: Request) -> Response | dict:
        if self.refused is not None:
            return self._refusal(request)
        symbol = request.query["symbol"]
        as_paid = request.query.get("adjust") == "false"
        rows = [{"ex_date": day.isoformat(),
                 "amount": float(amount if as_paid else amount / self.split_factor(symbol, day))}
                for day, amount in sorted(self.dividends.get(symbol, []), reverse=True)]
        return {"meta": {"symbol": symbol, "name": symbol, **META},
                "dividends": rows if request.query.get("range") == "full" else rows[:1]}

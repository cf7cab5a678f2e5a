"""Frankfurter and CoinGecko stand-ins in their documented formats: the keyless fallbacks of the default chain."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from support.fake_api import FakeApi, Request

ECB_RATE = Decimal("1.0876")
COIN_PRICE = Decimal("7.25")


def ecb_days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1) if (first + timedelta(days=i)).weekday() < 5]


def frankfurter_series(request: Request) -> dict:
    """`/{start}..{end}?base=EUR&symbols=USD`."""
    first, last = (date.fromisoformat(p) for p in request.path.strip("/").split(".."))
    return {"amount": 1.0, "base": request.query["base"], "start_date": first.isoformat(), "end_date": last.isoformat(),
            "rates": {d.isoformat(): {request.query["symbols"]: float(ECB_RATE)} for d in ecb_days(first, last)}}


def frankfurter_latest(request: Request) -> dict:
    """`/latest?base=EUR&symbols=USD,…`."""
    return {"amount": 1.0, "base": request.query["base"], "date": date.today().isoformat(),
            "rates": {s: float(ECB_RATE) for s in request.query["symbols"].split(",")}}


def coingecko_price(request: Request) -> dict:
    """`/simple/price?ids=…&vs_currencies=usd&include_24hr_vol…&include_last_updated_at=true`."""
    stamp = int(datetime.now().timestamp())
    return {coin_id: {"usd": float(COIN_PRICE), "usd_24h_vol": 1000.5, "usd_24h_change": 1.5, "last_updated_at": stamp}
            for coin_id in request.query["ids"].split(",")}


def serve_frankfurter(api: FakeApi) -> None:
    api.route(re.compile(r"/\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}"), frankfurter_series)
    api.route("/latest", frankfurter_latest)


def serve_coingecko_prices(api: FakeApi) -> None:
    api.route("/simple/price", coingecko_price)

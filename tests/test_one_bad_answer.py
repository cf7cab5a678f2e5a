"""A fault in one asset's data is that asset's failure: the rest of the run goes on.

Each test serves one asset an answer whose shape or numbers break the parser
(the issue's reproductions), runs the real job against the loopback Yahoo
server, and checks that the healthy assets are loaded, the broken one failed
alone with an error naming the provider and the symbol, and the run ends
partial (exit 3) instead of "unexpected …" (exit 1).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from support.db import row_count, rows, scalar
from support.fake_api import Request, Response
from support.runner import run_etl
from support.yahoo_server import YahooServer

START, END = date(2024, 1, 1), date(2024, 3, 29)
RAW = "__raw_json__:"


def raw_number(text: str) -> str:
    """A marker `with_raw_numbers` writes into the JSON text as the bare number `text` (1e400, NaN …)."""
    return RAW + text


def with_raw_numbers(body: object) -> Response:
    """`body` as JSON text, each raw_number marker written as the bare token it holds."""
    text = json.dumps(body)
    text = re.sub(r'"' + re.escape(RAW) + r'([^"]*)"', r"\1", text)
    return Response(body=text)


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    return server


def break_chart(yahoo: YahooServer, symbol: str, mangle) -> None:
    """Serve `symbol`'s chart as the server would, then `mangle(result)` applied to it."""
    def answer(request: Request) -> Response:
        body = yahoo._chart(request).body
        mangle(body["chart"]["result"][0])
        return with_raw_numbers(body)
    yahoo.api.route(re.compile(r"/v8/finance/chart/" + re.escape(symbol)), answer)


def break_spark(yahoo: YahooServer, symbol: str, mangle) -> None:
    """Serve the spark answer as the server would, `mangle(meta)` applied to `symbol`'s quote."""
    def answer(request: Request) -> Response:
        body = yahoo._spark(request).body
        for item in body["spark"]["result"]:
            if item["symbol"] == symbol:
                mangle(item["response"][0]["meta"])
        return with_raw_numbers(body)
    yahoo.api.route("/v7/finance/spark", answer)


def failures(db) -> dict[str, str]:
    failed = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") or []
    return {item["symbol"]: item["error"] for item in failed}


def stored_symbols(db) -> set[str]:
    return {r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data")}


def test_an_adjclose_array_of_the_wrong_shape_fails_that_asset_alone(yahoo, db, capsys):
    break_chart(yahoo, "MSFT", lambda result: result["indicators"].__setitem__("adjclose", [7, {}]))
    code = run_etl("fetch_historical_market_data", "--symbols", "AAPL:STOCK,MSFT:STOCK,VOO:ETF",
                   "--start", START.isoformat(), "--end", END.isoformat())
    assert code == 3, capsys.readouterr().err
    assert stored_symbols(db) == {"AAPL", "VOO"}
    error = failures(db)["MSFT"]
    assert "yahoo" in error and "MSFT" in error and "unexpected" not in capsys.readouterr().err
    assert scalar(db, "SELECT status FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") == "partial"


def test_a_quote_price_of_1e400_fails_that_asset_alone(yahoo, db, capsys):
    assert run_etl("assets", "add", "AAPL:STOCK", "MSFT:STOCK", "VOO:ETF") == 0
    break_spark(yahoo, "MSFT", lambda meta: meta.__setitem__("regularMarketPrice", raw_number("1e400")))
    code = run_etl("fetch_market_data")
    assert code == 3, capsys.readouterr().err
    assert stored_symbols(db) == {"AAPL", "VOO"}
    error = failures(db)["MSFT"]
    assert "yahoo" in error and "MSFT" in error
    assert row_count(db, "market_data", "price > 1e12") == 0

"""Quotes without spark: when Yahoo refuses /v7/finance/spark, live and index quotes come from the chart endpoint."""

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from support.db import row_count, rows
from support.runner import run_etl
from support.yahoo_server import YahooServer

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    monkeypatch.setenv("YAHOO_COOKIE_URL", f"{fake_api.base_url}/fc")
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), NEW_YORK)
    return server


def chart_quote_requests(server) -> list:
    return [r for r in server.chart_requests() if r.query.get("range") == "1d"]


@pytest.mark.parametrize("status", [401, 403, 404, 200])
def test_a_refused_spark_gives_quotes_from_the_chart_one_request_per_symbol(yahoo, db, status):
    yahoo.spark_refusal = status
    assert run_etl("assets", "add", "AAPL:STOCK", "BTC:CRYPTO", "EUR/USD:FOREX") == 0
    assert run_etl("fetch_market_data") == 0
    stored = rows(db, "SELECT symbol, date, price, high, low, volume, change, as_of, source FROM market_data "
                      "WHERE symbol = 'AAPL'")
    price = yahoo.quote_price("AAPL")
    assert stored == [("AAPL", date.today(), price, price + 1, price - 1, Decimal(4_200_000), Decimal("1.5"),
                       yahoo.quote_time, "yahoo")]
    assert row_count(db, "market_data") == 3
    assert len(yahoo.spark_requests()) == 1
    assert sorted(r.path.rsplit("/", 1)[1] for r in chart_quote_requests(yahoo)) == ["AAPL", "BTC-USD", "EURUSD%3DX"]


def test_once_refused_spark_is_not_asked_again_in_the_run(yahoo, db):
    yahoo.spark_refusal = 401
    assert run_etl("fetch_market_data", "--symbols", ",".join(f"S{i:02d}:STOCK" for i in range(25))) == 0
    assert row_count(db, "market_data") == 25
    assert (len(yahoo.spark_requests()), len(chart_quote_requests(yahoo))) == (1, 25)


def test_index_quotes_come_from_the_chart_too_with_their_names(yahoo, db, monkeypatch):
    yahoo.spark_refusal = 403
    yahoo.names["^GSPC"] = "S&P 500"
    monkeypatch.setenv("MARKET_INDEX_SYMBOLS", "^GSPC")
    assert run_etl("fetch_market_index_data") == 0
    assert rows(db, "SELECT symbol, price FROM market_data") == [("^GSPC", yahoo.quote_price("^GSPC"))]
    assert rows(db, "SELECT name FROM asset WHERE symbol = '^GSPC'") == [("S&P 500",)]


def test_an_unknown_symbol_fails_alone_on_the_chart_path(yahoo, db):
    yahoo.spark_refusal = 401
    yahoo.unknown.add("NOPE")
    assert run_etl("fetch_market_data", "--symbols", "AAPL:STOCK,NOPE:STOCK") == 3
    assert rows(db, "SELECT symbol FROM market_data") == [("AAPL",)]


def test_spark_that_only_wants_a_session_is_not_refused(yahoo, db):
    yahoo.session_required.add("spark")
    assert run_etl("fetch_market_data", "--symbols", "AAPL:STOCK") == 0
    assert chart_quote_requests(yahoo) == [] and len(yahoo.spark_requests()) == 2

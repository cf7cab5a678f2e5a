"""An asset registered without a name gets its name, currency, exchange and time zone from the first answer."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from support.db import rows
from support.runner import run_etl
from support.yahoo_server import YahooServer


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    server.names["AAPL"] = "Apple Inc."
    return server


def described(db, symbol: str) -> tuple:
    return rows(db, "SELECT name, currency, exchange, exchange_timezone FROM asset WHERE symbol = %s", (symbol,))[0]


def test_an_asset_added_without_a_name_has_yahoos_long_name_after_its_first_history_fetch(yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert described(db, "AAPL") == (None, None, None, None)
    assert run_etl("fetch_historical_market_data", "--start", "2024-03-04", "--end", "2024-03-08") == 0
    assert described(db, "AAPL") == ("Apple Inc.", "USD", "NasdaqGS", "America/New_York")


def test_an_asset_added_without_a_name_has_yahoos_long_name_after_its_first_quote(yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert run_etl("fetch_market_data") == 0
    assert described(db, "AAPL") == ("Apple Inc.", "USD", "NasdaqGS", "America/New_York")


def test_what_the_user_gave_is_never_overwritten(yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK", "--name", "My Apple") == 0
    assert run_etl("fetch_market_data") == 0
    yahoo.names["AAPL"] = "Apple Renamed"
    assert run_etl("fetch_market_data") == 0
    assert described(db, "AAPL") == ("My Apple", "USD", "NasdaqGS", "America/New_York")


def test_a_dry_run_names_nothing(yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert run_etl("fetch_market_data", "--dry-run") == 0
    assert described(db, "AAPL") == (None, None, None, None)

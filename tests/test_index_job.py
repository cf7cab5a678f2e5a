"""fetch_market_index_data: the active indices plus MARKET_INDEX_SYMBOLS, new ones registered by name."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from math import ceil
from zoneinfo import ZoneInfo

import pytest

from support.db import row_count, rows, scalar
from support.runner import run_etl
from support.yahoo_server import SPARK_BATCH, YahooServer

JOB = "fetch_market_index_data"


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    monkeypatch.setenv("MARKET_INDEX_SYMBOLS", "^GSPC,^DJI")
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    server.names.update({"^GSPC": "S&P 500", "^DJI": "Dow Jones Industrial Average", "^FTSE": "FTSE 100"})
    return server


def test_configured_indices_are_registered_with_their_names(yahoo, db):
    assert run_etl(JOB) == 0
    assert rows(db, "SELECT symbol, name, active FROM asset ORDER BY symbol") == \
        [("^DJI", "Dow Jones Industrial Average", True), ("^GSPC", "S&P 500", True)]
    assert row_count(db, "market_data", "date = %s AND asset_type = 'INDEX'", (date.today(),)) == 2


def test_tracked_indices_are_added_to_the_configured_ones(yahoo, db):
    assert run_etl("assets", "add", "^FTSE:INDEX") == 0
    assert run_etl(JOB) == 0
    assert {r[0] for r in rows(db, "SELECT symbol FROM market_data")} == {"^GSPC", "^DJI", "^FTSE"}
    assert scalar(db, "SELECT name FROM asset WHERE symbol = '^FTSE'") == "FTSE 100"


def test_many_indices_are_fetched_in_batches(yahoo, db, monkeypatch):
    symbols = [f"^IX{i:02d}" for i in range(25)]
    monkeypatch.setenv("MARKET_INDEX_SYMBOLS", ",".join(symbols))
    assert run_etl(JOB) == 0
    assert len(yahoo.spark_requests()) == ceil(25 / SPARK_BATCH)
    assert row_count(db, "market_data") == 25


def test_a_second_run_the_same_day_updates_in_place(yahoo, db):
    assert run_etl(JOB) == 0
    yahoo.quote_time, yahoo.quote_bump = yahoo.quote_time + timedelta(minutes=30), Decimal("10")
    assert run_etl(JOB) == 0
    assert row_count(db, "market_data") == 2
    assert scalar(db, "SELECT price FROM market_data WHERE symbol = '^GSPC'") == yahoo.quote_price("^GSPC")


def test_named_indices_replace_the_configured_list(yahoo, db):
    assert run_etl(JOB, "--symbols", "^FTSE") == 0
    assert {r[0] for r in rows(db, "SELECT symbol FROM market_data")} == {"^FTSE"}
    assert scalar(db, "SELECT name FROM asset WHERE symbol = '^FTSE'") == "FTSE 100"


def test_dry_run_registers_and_writes_nothing(yahoo, db):
    assert run_etl(JOB, "--dry-run") == 0
    assert len(yahoo.spark_requests()) == 1
    assert row_count(db, "asset") == 0
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == 0

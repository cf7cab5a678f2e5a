"""fetch_market_data: batched live quotes upserted as today's row."""

from datetime import date, datetime, time
from decimal import Decimal
from math import ceil
from zoneinfo import ZoneInfo

import pytest

from support.db import row_count, rows, scalar
from support.fake_api import Request
from support.runner import run_etl
from support.yahoo_server import SPARK_BATCH, YahooServer

JOB = "fetch_market_data"
NEW_YORK = ZoneInfo("America/New_York")


def today_at(hour: int) -> datetime:
    return datetime.combine(date.today(), time(hour), NEW_YORK)


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    server = YahooServer(fake_api)
    server.quote_time = today_at(10)
    return server


def track(*specs: str) -> None:
    assert run_etl("assets", "add", *specs) == 0


def stored_quote(db, symbol: str) -> tuple:
    return rows(db, "SELECT date, price, as_of, source FROM market_data WHERE symbol = %s", (symbol,))[0]


def test_twenty_five_assets_take_ceil_25_over_batch_requests(yahoo, db):
    track(*[f"S{i:02d}:STOCK" for i in range(25)])
    assert run_etl(JOB) == 0
    assert len(yahoo.spark_requests()) == ceil(25 / SPARK_BATCH)
    assert row_count(db, "market_data", "date = %s", (date.today(),)) == 25


def test_every_quoted_type_is_loaded_with_its_trading_date(yahoo, db):
    track("AAPL:STOCK", "VOO:ETF", "BTC:CRYPTO", "EUR/USD:FOREX", "^GSPC:INDEX")
    assert run_etl(JOB) == 0
    loaded = {r[0] for r in rows(db, "SELECT symbol || ':' || asset_type FROM market_data")}
    assert loaded == {"AAPL:STOCK", "VOO:ETF", "BTC:CRYPTO", "EUR/USD:FOREX"}
    day, price, as_of, source = stored_quote(db, "AAPL")
    assert (day, price, as_of, source) == (date.today(), yahoo.quote_price("AAPL"), today_at(10), "yahoo")


def test_a_later_quote_the_same_day_updates_the_row_in_place(yahoo, db):
    track("AAPL:STOCK")
    assert run_etl(JOB) == 0
    yahoo.quote_time, yahoo.quote_bump = today_at(11), Decimal("3.5")
    assert run_etl(JOB) == 0
    assert row_count(db, "market_data") == 1
    assert stored_quote(db, "AAPL")[1:3] == (yahoo.quote_price("AAPL"), today_at(11))


def test_an_older_quote_does_not_overwrite_a_newer_one(yahoo, db):
    track("AAPL:STOCK")
    assert run_etl(JOB) == 0
    first_price = stored_quote(db, "AAPL")[1]
    yahoo.quote_time, yahoo.quote_bump = today_at(9), Decimal("-7")
    assert run_etl(JOB) == 0
    assert stored_quote(db, "AAPL")[1:3] == (first_price, today_at(10))


def test_change_and_percent_change_come_from_the_previous_close(yahoo, db):
    track("AAPL:STOCK")
    assert run_etl(JOB) == 0
    change, percent = rows(db, "SELECT change, percent_change FROM market_data")[0]
    assert change == Decimal("1.5")
    assert percent == (Decimal("1.5") / (yahoo.quote_price("AAPL") - Decimal("1.5")) * 100).quantize(Decimal("0.000001"))


def test_an_unknown_symbol_fails_alone_with_exit_3(yahoo, db):
    yahoo.unknown.add("NOPE")
    track("AAPL:STOCK", "NOPE:STOCK")
    assert run_etl(JOB) == 3
    assert row_count(db, "market_data") == 1
    assert [f["symbol"] for f in scalar(db, "SELECT failures FROM etl_job_runs")] == ["NOPE"]


def test_named_symbols_not_yet_tracked_are_registered(yahoo, db):
    assert run_etl(JOB, "--symbols", "TSLA:STOCK") == 0
    assert row_count(db, "asset", "symbol = 'TSLA'") == 1
    assert row_count(db, "market_data", "symbol = 'TSLA'") == 1


def test_dry_run_writes_nothing(yahoo, db):
    track("AAPL:STOCK")
    outbox_before = row_count(db, "etl_outbox")
    assert run_etl(JOB, "--dry-run") == 0
    assert len(yahoo.spark_requests()) == 1
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == outbox_before
    assert row_count(db, "etl_job_runs") == 0


def test_the_run_and_its_event_are_recorded(yahoo, db):
    track("AAPL:STOCK", "MSFT:STOCK")
    assert run_etl(JOB) == 0
    payload = scalar(db, "SELECT payload FROM etl_outbox WHERE topic LIKE %s", ("%MARKET_DATA_UPDATE_COMPLETE",))
    assert (payload["status"], sorted(payload["symbols"]), payload["rows_upserted"]) == \
        ("success", ["AAPL", "MSFT"], 2)


ECB_RATE = Decimal("1.0876")


def frankfurter_latest(request: Request) -> dict:
    """`/latest?base=EUR&symbols=USD` in Frankfurter's documented format: a rate, no open/high/low."""
    return {"amount": 1.0, "base": request.query["base"], "date": date.today().isoformat(),
            "rates": {s: float(ECB_RATE) for s in request.query["symbols"].split(",")}}


def test_a_quote_without_ohlc_keeps_the_days_stored_range_widened_to_its_price(yahoo, db, monkeypatch):
    monkeypatch.setenv("FRANKFURTER_BASE_URL", yahoo.base_url)
    monkeypatch.setenv("FOREX_PROVIDERS", "yahoo,frankfurter")
    yahoo.api.route("/latest", frankfurter_latest)
    yahoo.quote_time = today_at(7)  # before the ECB's 16:00 CET rate of the day
    track("EUR/USD:FOREX")
    assert run_etl(JOB) == 0
    open_, high, low, volume = rows(db, "SELECT open, high, low, volume FROM market_data")[0]
    assert None not in (open_, high, low, volume) and ECB_RATE < low
    yahoo.unknown.add("EURUSD=X")
    assert run_etl(JOB) == 0
    assert rows(db, "SELECT price, source FROM market_data") == [(ECB_RATE, "frankfurter")]
    assert rows(db, "SELECT open, high, low, volume FROM market_data")[0] == (open_, high, ECB_RATE, volume)


def test_a_quote_with_part_of_the_days_range_replaces_the_stored_range_instead_of_failing_the_batch(yahoo, db):
    track("AAPL:STOCK", "MSFT:STOCK")
    assert run_etl(JOB) == 0
    yahoo.without_day_low.add("AAPL")  # its next quote has a day high below the stored day low
    yahoo.quote_time, yahoo.quote_bump = today_at(11), Decimal("-5")
    assert run_etl(JOB) == 0
    price = yahoo.quote_price("AAPL")
    assert rows(db, "SELECT price, high, low FROM market_data WHERE symbol = 'AAPL'") == [(price, price + 1, None)]
    assert stored_quote(db, "MSFT")[1:3] == (yahoo.quote_price("MSFT"), today_at(11))


def test_a_quote_that_moves_the_price_clears_the_days_adjusted_close(yahoo, db):
    track("AAPL:STOCK")
    assert run_etl(JOB) == 0
    with db.cursor() as cur:
        cur.execute("UPDATE market_data SET adj_close = price")
    yahoo.quote_time, yahoo.quote_bump = today_at(11), Decimal("2")
    assert run_etl(JOB) == 0
    assert rows(db, "SELECT price, adj_close FROM market_data") == [(yahoo.quote_price("AAPL"), None)]


def test_types_crypto_quotes_only_the_active_crypto_assets(yahoo, db):
    track("AAPL:STOCK", "VOO:ETF", "BTC:CRYPTO", "ETH:CRYPTO", "EUR/USD:FOREX")
    assert run_etl(JOB, "--types", "crypto") == 0
    loaded = {r[0] for r in rows(db, "SELECT symbol || ':' || asset_type FROM market_data")}
    assert loaded == {"BTC:CRYPTO", "ETH:CRYPTO"}
    assert scalar(db, "SELECT params -> 'types' FROM etl_job_runs") == ["CRYPTO"]
    assert run_etl(JOB, "--types", "FOREX,STOCK") == 0
    assert row_count(db, "market_data") == 4


def test_a_worker_request_can_name_the_types():
    from etl.registry import JOBS
    from etl.worker_kafka import request_options

    options = request_options(JOBS[JOB], b'{"types": ["crypto", "FOREX"]}')
    assert options.types == ("CRYPTO", "FOREX")


@pytest.mark.parametrize("argv, message", [
    (["--types", "BOND"], "give one or more of STOCK,ETF,CRYPTO,FOREX"),
    (["--types", "INDEX"], "give one or more of STOCK,ETF,CRYPTO,FOREX"),
    (["--types", "CRYPTO", "--symbols", "BTC:CRYPTO"], "--types and --symbols both choose the assets"),
])
def test_unusable_types_are_exit_2_with_one_line(argv, message, yahoo, db, capsys):
    try:
        code = run_etl(JOB, *argv)
    except SystemExit as exc:  # argparse's own exit
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert row_count(db, "etl_job_runs") == 0

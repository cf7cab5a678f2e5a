"""fetch_historical_market_data end to end: gap filling against a Yahoo-shaped loopback server."""

import logging
import re
import threading
from datetime import date, datetime, time, timedelta, timezone

import pytest

from support.db import row_count, rows, scalar
from support.events import read_events
from support.fake_api import Request, Response
from support.runner import run_etl
from support.yahoo_server import YahooServer, adjusted_close, close_price

JOB = "fetch_historical_market_data"
START, END = date(2024, 1, 1), date(2024, 3, 29)
HOLIDAYS = {date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19)}


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    return YahooServer(fake_api, holidays=HOLIDAYS)


def backfill(*symbols: str, start: date = START, end: date = END, extra=()) -> int:
    return run_etl(JOB, "--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", end.isoformat(),
                   *extra)


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def stored_days(db, symbol: str) -> list[date]:
    return [r[0] for r in rows(db, "SELECT date FROM market_data WHERE symbol = %s ORDER BY date", (symbol,))]


def test_first_backfill_stores_every_trading_day_with_raw_and_adjusted_close(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    assert stored_days(db, "AAPL") == yahoo.trading_days("AAPL", START, END)
    price, adj, source = rows(db, "SELECT price, adj_close, source FROM market_data WHERE date = '2024-02-14'")[0]
    assert (price, adj, source) == (close_price("AAPL", date(2024, 2, 14)), adjusted_close("AAPL", date(2024, 2, 14)),
                                    "yahoo")
    assert len(yahoo.chart_requests("AAPL")) == 1


def test_rerun_over_a_final_range_makes_no_requests(yahoo, db):
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 0
    assert yahoo.chart_requests() == []
    assert scalar(db, "SELECT status FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") == "success"


def test_extending_the_range_by_a_week_requests_only_that_week(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", end=END + timedelta(days=7)) == 0
    assert yahoo.requested_days("AAPL") == [(END + timedelta(days=1), utc_today())]  # through today: splits
    assert stored_days(db, "AAPL") == yahoo.trading_days("AAPL", START, END + timedelta(days=7))


def test_a_row_deleted_from_the_middle_is_fetched_again(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    with db.cursor() as cur:
        cur.execute("DELETE FROM market_data WHERE symbol = 'AAPL' AND date = '2024-02-14'")
    yahoo.api.reset()
    assert backfill("AAPL:STOCK") == 0
    assert yahoo.requested_days("AAPL") == [(date(2024, 2, 14), utc_today())]
    assert date(2024, 2, 14) in stored_days(db, "AAPL")


def test_a_holiday_is_never_requested_again(yahoo, db):
    assert backfill("AAPL:STOCK", start=date(2024, 2, 12), end=date(2024, 2, 23)) == 0
    assert date(2024, 2, 19) not in stored_days(db, "AAPL")
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=date(2024, 2, 19), end=date(2024, 2, 19)) == 0
    assert backfill("AAPL:STOCK", start=date(2024, 2, 12), end=date(2024, 2, 23)) == 0
    assert yahoo.chart_requests() == []


def recent_weekday(days_ago: int) -> date:
    day = datetime.now(timezone.utc).date() - timedelta(days=days_ago)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def test_a_recent_day_whose_bar_failed_validation_is_asked_for_again(yahoo, db):
    broken = recent_weekday(10)
    start, end = broken - timedelta(days=7), broken + timedelta(days=3)
    yahoo.broken.add(("AAPL", broken))
    assert backfill("AAPL:STOCK", start=start, end=end) == 0
    assert broken not in stored_days(db, "AAPL")
    yahoo.broken.clear()
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=end) == 0
    assert yahoo.requested_days("AAPL") == [(broken, utc_today())]
    assert broken in stored_days(db, "AAPL")


def test_a_day_whose_bar_failed_validation_is_final_once_older_than_the_grace_window(yahoo, db):
    yahoo.broken.add(("AAPL", date(2024, 2, 14)))
    assert backfill("AAPL:STOCK") == 0
    assert date(2024, 2, 14) not in stored_days(db, "AAPL")
    yahoo.api.reset()
    assert backfill("AAPL:STOCK") == 0
    assert yahoo.chart_requests("AAPL") == []


def test_days_before_listing_are_not_asked_for_again(yahoo, db):
    yahoo.listed["NEWCO"] = date(2024, 3, 1)
    assert backfill("NEWCO:STOCK") == 0
    assert stored_days(db, "NEWCO")[0] == date(2024, 3, 1)
    yahoo.api.reset()
    assert backfill("NEWCO:STOCK") == 0
    assert yahoo.chart_requests() == []


def test_one_unknown_symbol_among_five_fails_alone(yahoo, db, with_kafka):
    yahoo.unknown.add("NOPE")
    assert backfill("AAPL:STOCK", "MSFT:STOCK", "NOPE:STOCK", "VOO:ETF", "IBM:STOCK") == 3
    loaded = {r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data")}
    assert loaded == {"AAPL", "MSFT", "VOO", "IBM"}
    failures = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")
    assert [f["symbol"] for f in failures] == ["NOPE"]
    assert "unknown or delisted" in scalar(db, "SELECT last_error FROM asset WHERE symbol = 'NOPE'")
    (event,) = read_events(with_kafka, scalar(db, "SELECT current_schema()") + "."
                                        "HISTORICAL_MARKET_DATA_COMPLETE", expect=1)
    assert event["status"] == "partial"
    assert [f["symbol"] for f in event["failed"]] == ["NOPE"]
    assert sorted(event["symbols"]) == ["AAPL", "IBM", "MSFT", "VOO"]


def test_a_run_stopped_by_a_fatal_error_after_a_checkpoint_is_partial_and_lists_every_asset_not_loaded(
        yahoo, db):
    def slow_refusal(request: Request) -> Response:
        threading.Event().wait(2)  # let the other two assets arrive first, so one of them is committed
        return Response(status=400, body={"chart": {"result": None, "error": {
            "code": "Bad Request", "description": "Invalid input - interval=1d is not supported"}}})

    yahoo.api.route("/v8/finance/chart/ZZZ", slow_refusal)
    assert backfill("AAPL:STOCK", "MSFT:STOCK", "ZZZ:STOCK") == 3
    [event] = [r[0] for r in rows(db, "SELECT payload FROM etl_outbox")]
    assert event["status"] == "partial" and len(event["symbols"]) == 1
    failed = {failure["symbol"]: failure["error"] for failure in event["failed"]}
    assert set(failed) | set(event["symbols"]) == {"AAPL", "MSFT", "ZZZ"} and len(failed) == 2
    assert all("400" in error for error in failed.values())
    assert rows(db, "SELECT status, symbols_ok, symbols_failed FROM etl_job_runs") == [("partial", 1, 2)]
    assert {r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data")} == set(event["symbols"])


def test_an_unknown_symbol_cools_off_unless_named(yahoo, db):
    yahoo.unknown.add("NOPE")
    assert backfill("AAPL:STOCK", "NOPE:STOCK") == 3
    yahoo.api.reset()
    assert run_etl(JOB, "--start", START.isoformat(), "--end", END.isoformat()) == 0
    assert yahoo.chart_requests() == []
    assert backfill("NOPE:STOCK") == 1  # every named asset failed: status failed
    assert len(yahoo.chart_requests("NOPE")) == 1


def test_full_refresh_refetches_the_whole_range(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", extra=["--full-refresh"]) == 0
    assert yahoo.requested_days("AAPL") == [(START, utc_today())]


def test_a_full_refresh_over_identical_data_rewrites_no_row(yahoo, db):
    assert backfill("AAPL:STOCK") == 0
    before = rows(db, "SELECT date, xmin::text FROM market_data ORDER BY date")
    assert backfill("AAPL:STOCK", extra=["--full-refresh"]) == 0
    assert rows(db, "SELECT date, xmin::text FROM market_data ORDER BY date") == before
    assert scalar(db, "SELECT rows_upserted FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") == 0


def test_the_lookback_window_is_rechecked_every_run(yahoo, db, monkeypatch):
    monkeypatch.setenv("ETL_LOOKBACK_DAYS", "3")
    today = date.today()
    assert backfill("AAPL:STOCK", start=today - timedelta(days=20), end=today) == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=today - timedelta(days=20), end=today) == 0
    assert yahoo.requested_days("AAPL") == [(today - timedelta(days=3), today)]


def test_dry_run_fetches_but_writes_nothing(yahoo, db):
    assert backfill("AAPL:STOCK", extra=["--dry-run"]) == 0
    assert len(yahoo.chart_requests("AAPL")) == 1
    assert row_count(db, "market_data") == 0
    assert row_count(db, "market_data_fetch_ledger") == 0
    assert row_count(db, "etl_outbox") == 0
    assert row_count(db, "asset") == 0


def test_plan_prints_the_requests_without_making_them(yahoo, db, capsys):
    assert backfill("AAPL:STOCK") == 0
    yahoo.api.reset()
    capsys.readouterr()
    assert backfill("AAPL:STOCK", "MSFT:STOCK", end=END + timedelta(days=7), extra=["--plan"]) == 0
    out = capsys.readouterr().out
    assert yahoo.chart_requests() == []
    assert f"AAPL:STOCK: yahoo {END + timedelta(days=1)}..{END + timedelta(days=7)} (7 days)" in out
    assert f"MSFT:STOCK: yahoo {START}..{END + timedelta(days=7)}" in out
    assert "yahoo: 2 request(s); limit 60/min" in out
    assert row_count(db, "market_data", "symbol = 'MSFT'") == 0


def test_summary_line_counts_assets_rows_and_requests(yahoo, db, capsys):
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 0
    expected_rows = 2 * len(yahoo.trading_days("AAPL", START, END))
    assert f"2 asset(s) done, 0 failed, {expected_rows} rows upserted, 2 request(s)" in capsys.readouterr().out


def coingecko_market_chart(request: Request) -> dict:
    """`/coins/{id}/market_chart/range?vs_currency=usd&from&to` in CoinGecko's format: one
    [unix ms, value] point at 12:00 UTC of each day in the window."""
    first = datetime.fromtimestamp(int(request.query["from"]), timezone.utc).date()
    last = min(datetime.fromtimestamp(int(request.query["to"]), timezone.utc).date(), date.today())
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    stamps = [int(datetime.combine(d, time(12), timezone.utc).timestamp() * 1000) for d in days]
    return {"prices": [[t, 40000.5] for t in stamps], "market_caps": [[t, 8e11] for t in stamps],
            "total_volumes": [[t, 2e10] for t in stamps]}


@pytest.fixture
def crypto_chain(yahoo, monkeypatch):
    """CoinGecko (365 days of history on the free plan) and Yahoo (no limit) on one loopback server."""
    monkeypatch.setenv("COINGECKO_BASE_URL", yahoo.base_url)
    yahoo.api.route(re.compile(r"/coins/bitcoin/market_chart/range"), coingecko_market_chart)
    return yahoo


def coingecko_requested_days(api) -> list[tuple[date, date]]:
    return [(datetime.fromtimestamp(int(r.query["from"]), timezone.utc).date(),
             datetime.fromtimestamp(int(r.query["to"]), timezone.utc).date() - timedelta(days=1))
            for r in api.requests_to("/coins/bitcoin/market_chart/range")]


def test_days_older_than_the_first_providers_depth_are_asked_of_the_next_provider(crypto_chain, db, monkeypatch,
                                                                                  capsys):
    monkeypatch.setenv("CRYPTO_PROVIDERS", "coingecko,yahoo")
    today = date.today()
    start, coingecko_from = today - timedelta(days=600), today - timedelta(days=364)
    assert backfill("BTC:CRYPTO", start=start, end=today, extra=["--plan"]) == 0
    assert f"BTC:CRYPTO: coingecko {start}..{today}" in capsys.readouterr().out
    assert backfill("BTC:CRYPTO", start=start, end=today) == 0
    assert coingecko_requested_days(crypto_chain.api) == [(coingecko_from, today)]
    assert crypto_chain.requested_days("BTC-USD") == [(start, utc_today())]
    assert stored_days(db, "BTC")[0] == crypto_chain.trading_days("BTC-USD", start, start + timedelta(days=7))[0]
    assert rows(db, "SELECT DISTINCT provider FROM market_data_fetch_ledger ORDER BY 1") == [("coingecko",), ("yahoo",)]


def test_days_a_fallback_provider_could_not_reach_stay_missing_until_the_first_recovers(crypto_chain, db,
                                                                                       monkeypatch):
    monkeypatch.setenv("CRYPTO_PROVIDERS", "yahoo,coingecko")
    monkeypatch.setenv("ETL_LOOKBACK_DAYS", "3")
    today = date.today()
    start, coingecko_from = today - timedelta(days=600), today - timedelta(days=364)
    crypto_chain.failing["BTC-USD"] = 500
    assert backfill("BTC:CRYPTO", start=start, end=today) == 1
    assert stored_days(db, "BTC")[0] == coingecko_from
    del crypto_chain.failing["BTC-USD"]
    crypto_chain.api.reset()
    assert backfill("BTC:CRYPTO", start=start, end=today) == 0
    assert crypto_chain.requested_days("BTC-USD") == [(start, utc_today()), (today - timedelta(days=3), today)]


def test_a_fallback_provider_without_its_key_stops_the_run_before_anything_is_fetched(yahoo, db, monkeypatch):
    monkeypatch.setenv("STOCK_PROVIDERS", "yahoo,twelvedata")
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 2
    assert yahoo.chart_requests() == []
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == 0


def test_an_assets_own_provider_without_its_key_is_skipped_for_that_asset_and_the_chain_serves_it(yahoo, db,
                                                                                                monkeypatch):
    monkeypatch.setenv("STOCK_PROVIDERS", "yahoo")
    assert run_etl("assets", "add", "AAPL:STOCK", "--provider", "twelvedata") == 0
    assert backfill("AAPL:STOCK", "MSFT:STOCK") == 0
    assert stored_days(db, "AAPL") == yahoo.trading_days("AAPL", START, END)
    assert rows(db, "SELECT DISTINCT source FROM market_data") == [("yahoo",)]


def depth_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "serves history before" in r.getMessage()]


def test_a_start_older_than_any_provider_of_the_chain_serves_is_named_in_the_plan_and_warned_once(
        crypto_chain, db, monkeypatch, caplog, capsys):
    monkeypatch.setenv("CRYPTO_PROVIDERS", "coingecko")
    today = date.today()
    start, coingecko_from = today - timedelta(days=600), today - timedelta(days=364)
    assert backfill("BTC:CRYPTO", "ETH:CRYPTO", start=start, end=today, extra=["--plan"]) == 0
    out = capsys.readouterr().out
    for spec in ("BTC:CRYPTO", "ETH:CRYPTO"):
        assert (f"{spec}: no provider of its chain serves history before {coingecko_from}, so it is fetched from "
                f"{coingecko_from} on — for older days, add a provider that serves them to CRYPTO_PROVIDERS") in out
    assert [w.split(":")[0] for w in depth_warnings(caplog)] == ["BTC", "ETH"]


def test_a_backfill_trimmed_to_the_chains_depth_warns_once_and_still_succeeds(crypto_chain, db, monkeypatch,
                                                                              caplog):
    today = date.today()
    start, coingecko_from = today - timedelta(days=600), today - timedelta(days=364)
    monkeypatch.setenv("CRYPTO_PROVIDERS", "coingecko")
    assert backfill("BTC:CRYPTO", start=start, end=today) == 0
    [warning] = depth_warnings(caplog)
    assert "BTC:CRYPTO" in warning and str(coingecko_from) in warning and "CRYPTO_PROVIDERS" in warning
    assert stored_days(db, "BTC")[0] == coingecko_from
    caplog.clear()
    monkeypatch.setenv("CRYPTO_PROVIDERS", "coingecko,yahoo")
    assert backfill("BTC:CRYPTO", start=start, end=today) == 0
    assert depth_warnings(caplog) == []

"""The daily request budget: counted per provider and UTC day in the database, shared by every run."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from etl.config import Settings
from etl.errors import ConfigError, QuotaExhaustedError
from etl.pipeline.budget import DailyBudget, left_today
from etl.providers.twelvedata import ACTIONS_COST
from support.db import row_count, rows, scalar
from support.fake_api import Request, fixture_json
from support.runner import PYTHON, run_etl, run_etl_process
from support.yahoo_server import YahooServer

START, END = date(2024, 3, 4), date(2024, 3, 8)
STOCKS = ("AAPL", "MSFT", "IBM", "NVDA", "AMZN")
TODAY_UTC = "(now() AT TIME ZONE 'UTC')::date"
DAY_QUOTA = {"code": 429, "status": "error",
             "message": "You have run out of API credits for the day. 800 API credits were used, with the current "
                        "limit being 800."}


PLAN_REFUSAL = {"code": 403, "status": "error",
                "message": "/splits is available exclusively with grow or pro or ultra or venture or enterprise plans. "
                           "Consider upgrading your API Key now at https://twelvedata.com/pricing"}


def weekdays(first: date, last: date) -> list[date]:
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [d for d in days if d.weekday() < 5]


def time_series(request: Request) -> dict:
    """/time_series?symbol=…&interval=1day in Twelve Data's documented format (newest first)."""
    symbol = request.query["symbol"]
    return {"meta": {"symbol": symbol, "interval": "1day", "currency": "USD", "exchange_timezone": "America/New_York",
                     "exchange": "NASDAQ", "mic_code": "XNGS", "type": "Common Stock"},
            "values": [{"datetime": d.isoformat(), "open": "10.5", "high": "11.5", "low": "10.0", "close": "11.0",
                        "volume": "1000"} for d in reversed(weekdays(START, END))],
            "status": "ok"}


def global_quote(request: Request) -> dict:
    """GLOBAL_QUOTE in Alpha Vantage's documented format, for whichever symbol was asked."""
    quote = fixture_json("alphavantage/global_quote_ibm.json")
    quote["Global Quote"]["01. symbol"] = request.query["symbol"]
    return quote


@pytest.fixture
def twelvedata(fake_api, etl_env, monkeypatch):
    """Twelve Data on the loopback server, its stocks' only provider, with a daily budget of 3."""
    for name, value in {"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": "test-key",
                        "STOCK_PROVIDERS": "twelvedata", "PROVIDER_RATE_LIMITS": "twelvedata=60000",
                        "PROVIDER_DAILY_LIMITS": "twelvedata=3"}.items():
        monkeypatch.setenv(name, value)
        etl_env[name] = value
    fake_api.route("/time_series", time_series)
    fake_api.route("/splits", PLAN_REFUSAL)      # the free plan: no splits and dividends
    return fake_api


def history(*symbols: str, extra: tuple[str, ...] = ()) -> int:
    return run_etl("fetch_historical_market_data", "--symbols", ",".join(f"{s}:STOCK" for s in symbols),
                   "--start", START.isoformat(), "--end", END.isoformat(), *extra)


def asked(fake_api, path: str = "/time_series") -> list[str]:
    return sorted(r.query["symbol"] for r in fake_api.requests_to(path))


def loaded(db) -> list[str]:
    return [r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data ORDER BY symbol")]


def counted_today(db, provider: str) -> int | None:
    return scalar(db, f"SELECT requests FROM provider_request_budget WHERE provider = %s AND day = {TODAY_UTC}",
                  (provider,))


def last_run(db) -> tuple[str, list[dict]]:
    return rows(db, "SELECT status, failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")[0]


def last_event(db) -> dict:
    return scalar(db, "SELECT payload FROM etl_outbox ORDER BY created_at DESC LIMIT 1")


def test_a_job_over_more_assets_than_the_budget_makes_exactly_that_many_requests(twelvedata, db):
    assert history(*STOCKS) == 3
    assert len(asked(twelvedata)) == 3
    assert loaded(db) == asked(twelvedata)
    assert counted_today(db, "twelvedata") == 3
    deferred = sorted(set(STOCKS) - set(asked(twelvedata)))
    assert sorted(last_event(db)["deferred"]) == deferred
    status, failures = last_run(db)
    assert status == "partial"
    assert sorted(f["symbol"] for f in failures) == deferred
    assert all("resets at 00:00 UTC" in f["error"] and "PROVIDER_DAILY_LIMITS" in f["error"] for f in failures)


def test_a_second_run_the_same_day_asks_nothing_and_defers_what_is_missing(twelvedata, db):
    assert history(*STOCKS) == 3
    first = set(asked(twelvedata))
    twelvedata.reset()
    assert history(*STOCKS) == 3
    assert asked(twelvedata) == []
    assert sorted(last_event(db)["deferred"]) == sorted(set(STOCKS) - first)
    assert counted_today(db, "twelvedata") == 3


def test_a_spent_budget_falls_through_to_the_next_provider_in_the_chain(twelvedata, etl_env, monkeypatch, db):
    monkeypatch.setenv("STOCK_PROVIDERS", "twelvedata,yahoo")
    monkeypatch.setenv("YAHOO_BASE_URL", twelvedata.base_url)
    YahooServer(twelvedata)
    assert history(*STOCKS) == 0
    by_source = dict(rows(db, "SELECT source, count(DISTINCT symbol) FROM market_data GROUP BY source"))
    assert by_source == {"twelvedata": 3, "yahoo": 2}
    twelvedata.reset()
    assert history("TSLA", "META") == 0
    assert asked(twelvedata) == []
    assert {r[0] for r in rows(db, "SELECT DISTINCT source FROM market_data WHERE symbol IN ('TSLA', 'META')")} \
        == {"yahoo"}


def test_two_runs_share_one_count_and_the_table_shows_their_sum(twelvedata, monkeypatch, db):
    monkeypatch.setenv("PROVIDER_DAILY_LIMITS", "twelvedata=5")
    assert history("AAPL", "MSFT") == 0
    assert counted_today(db, "twelvedata") == 2
    assert history("IBM", "NVDA") == 0
    assert counted_today(db, "twelvedata") == 4
    assert history("AMZN", "TSLA") == 3
    assert counted_today(db, "twelvedata") == 5
    assert len(asked(twelvedata)) == 5


def test_concurrent_processes_together_never_exceed_the_budget(twelvedata, etl_env, db):
    quotes_job = [PYTHON, "-m", "etl", "fetch_market_data", "--symbols", "AAPL:STOCK"]  # one request
    twelvedata.route("/quote", lambda request: fixture_json("twelvedata/quote_aapl.json"))
    history_job = [PYTHON, "-m", "etl", "fetch_historical_market_data", "--symbols",
                   ",".join(f"{s}:STOCK" for s in STOCKS), "--start", START.isoformat(), "--end", END.isoformat()]
    results: list = []
    runners = [threading.Thread(target=lambda args=args: results.append(run_etl_process(args, etl_env)))
               for args in (history_job, quotes_job)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert all(r.returncode in (0, 1, 3) for r in results), [r.stderr for r in results]
    assert len(twelvedata.requests_to("/")) == 3
    assert counted_today(db, "twelvedata") == 3


def test_reservations_from_many_threads_and_connections_stop_exactly_at_the_limit(etl_env, db):
    settings = Settings.from_env(etl_env, dotenv=False)
    budgets = [DailyBudget(settings), DailyBudget(settings)]
    granted: list[int] = []

    def reserve_all(budget: DailyBudget) -> None:
        for _ in range(10):
            try:
                budget.reserve("alphavantage", 7)
                granted.append(1)
            except QuotaExhaustedError:
                pass

    threads = [threading.Thread(target=reserve_all, args=(b,)) for b in budgets for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for budget in budgets:
        budget.close()
    assert len(granted) == 7
    assert counted_today(db, "alphavantage") == 7


def test_a_dry_run_consumes_none_of_the_budget(twelvedata, db):
    assert history("AAPL", "MSFT", extra=("--dry-run",)) == 0
    assert len(asked(twelvedata)) == 2
    assert row_count(db, "provider_request_budget") == 0


def test_a_dry_run_respects_a_spent_budget(twelvedata, monkeypatch, db):
    assert history("AAPL", "MSFT", "IBM") == 0
    twelvedata.reset()
    assert history("NVDA", extra=("--dry-run",)) == 1
    assert asked(twelvedata) == []


def test_a_dry_run_counts_down_what_is_left_of_a_partly_spent_budget(twelvedata, db):
    assert history("AAPL") == 0
    twelvedata.reset()
    assert history(*STOCKS[1:], "TSLA", extra=("--dry-run",)) == 3
    assert len(asked(twelvedata)) == 2, "2 requests left of 3, for 5 assets"
    assert counted_today(db, "twelvedata") == 1


def test_an_api_reported_daily_limit_marks_the_budget_spent(twelvedata, monkeypatch, db):
    monkeypatch.delenv("PROVIDER_DAILY_LIMITS")  # the declared 800: only the API can say it is spent
    twelvedata.route("/time_series", DAY_QUOTA)
    assert history("AAPL") == 1
    assert asked(twelvedata) == ["AAPL"]
    assert scalar(db, f"SELECT spent_at IS NOT NULL FROM provider_request_budget WHERE day = {TODAY_UTC}")
    twelvedata.reset()
    assert history("IBM") == 1
    assert asked(twelvedata) == []


def test_a_day_the_api_said_was_spent_is_lifted_by_configuring_a_different_daily_limit(twelvedata, monkeypatch, db):
    monkeypatch.delenv("PROVIDER_DAILY_LIMITS")
    twelvedata.route("/time_series", DAY_QUOTA)
    assert history("AAPL") == 1
    twelvedata.reset()
    twelvedata.route("/time_series", time_series)
    twelvedata.route("/splits", PLAN_REFUSAL)
    monkeypatch.setenv("PROVIDER_DAILY_LIMITS", "twelvedata=5000")  # the plan was upgraded
    assert history("IBM") == 0
    assert asked(twelvedata) == ["IBM"]
    assert counted_today(db, "twelvedata") == 2 + ACTIONS_COST   # the /splits its plan refused was sent too


def test_what_is_left_of_a_day_marked_spent_depends_on_whether_the_limit_changed(etl_env, db):
    budget = DailyBudget(Settings.from_env(etl_env, dotenv=False))
    budget.reserve("alphavantage", 25)
    budget.mark_spent("alphavantage", 25)
    budget.close()
    assert left_today(db, {"alphavantage": 25}) == {"alphavantage": 0}
    assert left_today(db, {"alphavantage": 75}) == {"alphavantage": 74}


def test_quotes_stop_at_the_budget_and_defer_the_rest(fake_api, etl_env, monkeypatch, db):
    for name, value in {"ALPHA_VANTAGE_BASE_URL": fake_api.base_url, "ALPHA_VANTAGE_API_KEY": "test-key",
                        "STOCK_PROVIDERS": "alphavantage", "PROVIDER_RATE_LIMITS": "alphavantage=60000",
                        "PROVIDER_DAILY_LIMITS": "alphavantage=2"}.items():
        monkeypatch.setenv(name, value)
    fake_api.route("/query", global_quote)
    assert run_etl("fetch_market_data", "--symbols", "IBM:STOCK,AAPL:STOCK,MSFT:STOCK") == 3
    assert len(asked(fake_api, "/query")) == 2
    assert loaded(db) == asked(fake_api, "/query")
    assert counted_today(db, "alphavantage") == 2
    assert len(last_event(db)["deferred"]) == 1


def twelvedata_quote(symbol: str) -> dict:
    """One symbol's /quote object in Twelve Data's documented format."""
    quote = fixture_json("twelvedata/quote_aapl.json")
    quote["symbol"] = symbol
    return quote


def batched_quotes(request: Request) -> dict:
    """/quote?symbol=A,B,C like Twelve Data: flat for one symbol, keyed by symbol for several."""
    symbols = request.query["symbol"].split(",")
    return twelvedata_quote(symbols[0]) if len(symbols) == 1 else {s: twelvedata_quote(s) for s in symbols}


def batches_asked(fake_api) -> list[list[str]]:
    return [sorted(r.query["symbol"].split(",")) for r in fake_api.requests_to("/quote")]


def quotes_of(*symbols: str) -> int:
    return run_etl("fetch_market_data", "--symbols", ",".join(f"{s}:STOCK" for s in symbols))


def test_a_batched_quote_uses_one_unit_per_symbol_and_a_batch_that_does_not_fit_is_deferred(twelvedata, monkeypatch,
                                                                                            db):
    monkeypatch.setenv("PROVIDER_DAILY_LIMITS", "twelvedata=5")
    twelvedata.route("/quote", batched_quotes)
    assert quotes_of("AAPL", "MSFT", "IBM") == 0
    assert batches_asked(twelvedata) == [["AAPL", "IBM", "MSFT"]]
    assert counted_today(db, "twelvedata") == 3

    assert quotes_of("NVDA", "AMZN", "META") == 1
    assert batches_asked(twelvedata) == [["AAPL", "IBM", "MSFT"]]
    assert counted_today(db, "twelvedata") == 3
    assert loaded(db) == ["AAPL", "IBM", "MSFT"]
    assert sorted(last_event(db)["deferred"]) == ["AMZN", "META", "NVDA"]


def test_plan_shows_what_is_left_of_todays_budget_and_consumes_none(twelvedata, monkeypatch, db, capsys):
    monkeypatch.setenv("PROVIDER_DAILY_LIMITS", "twelvedata=4")
    assert history("AAPL") == 0
    capsys.readouterr()
    twelvedata.reset()
    assert history("MSFT", "IBM", "NVDA", "AMZN", extra=("--plan",)) == 0
    out = capsys.readouterr().out
    assert "twelvedata: 3 of 4 request(s) left today (resets 00:00 UTC); 1 would be deferred" in out
    assert asked(twelvedata) == []
    assert counted_today(db, "twelvedata") == 1


def test_daily_limits_are_read_per_provider():
    settings = Settings.from_env({"PROVIDER_DAILY_LIMITS": "alphavantage=75, TwelveData=5000"}, dotenv=False)
    assert settings.daily_limit("alphavantage", 25) == 75
    assert settings.daily_limit("twelvedata", 800) == 5000
    assert settings.daily_limit("yahoo", None) is None


@pytest.mark.parametrize("value", ["alphavantage", "alphavantage=0", "nosuch=5", "alphavantage=lots",
                                   "alphavantage=5,alphavantage=6"])
def test_a_bad_daily_limit_setting_names_the_variable(value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PROVIDER_DAILY_LIMITS": value}, dotenv=False)
    assert "PROVIDER_DAILY_LIMITS" in str(caught.value)


def test_a_bad_daily_limit_setting_exits_2(etl_env):
    result = run_etl_process([PYTHON, "-m", "etl", "fetch_market_data"],
                             {**etl_env, "PROVIDER_DAILY_LIMITS": "alphavantage=lots"})
    assert result.returncode == 2
    assert "PROVIDER_DAILY_LIMITS" in result.stderr

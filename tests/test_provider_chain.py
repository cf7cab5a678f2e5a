"""The provider chain: order per asset, fallback on not-found and server errors, spent quotas."""

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from etl.config import Settings
from etl.models import Asset
from etl.pipeline.budget import DailyBudget
from etl.pipeline.chain import ProviderChain, candidates
from support.db import rows, scalar
from support.fake_api import Request, Response, fixture_json
from support.keyless_servers import ECB_RATE, ecb_days, frankfurter_latest, frankfurter_series
from support.runner import run_etl
from support.yahoo_server import YahooServer

START, END = date(2024, 3, 4), date(2024, 3, 8)


def chain_for(asset: Asset, override: str | None = None, **env: str) -> list[str]:
    return candidates(asset, Settings.from_env(env, dotenv=False), override)


def test_the_configured_chain_of_the_type_is_used_in_order():
    assert chain_for(Asset("EUR/USD", "FOREX"), FOREX_PROVIDERS="yahoo,frankfurter") == ["yahoo", "frankfurter"]


def test_providers_that_do_not_cover_the_type_are_skipped():
    assert chain_for(Asset("AAPL", "STOCK"), MARKET_DATA_PROVIDERS="frankfurter,yahoo") == ["yahoo"]


def test_the_assets_own_provider_comes_first():
    asset = Asset("EUR/USD", "FOREX", provider="frankfurter")
    assert chain_for(asset, FOREX_PROVIDERS="yahoo") == ["frankfurter", "yahoo"]


def test_the_provider_option_replaces_the_configured_chain():
    assert chain_for(Asset("EUR/USD", "FOREX"), "frankfurter", FOREX_PROVIDERS="yahoo") == ["frankfurter"]


def test_the_provider_option_wins_over_the_assets_own_provider():
    asset = Asset("EUR/USD", "FOREX", provider="frankfurter")
    assert chain_for(asset, "yahoo", FOREX_PROVIDERS="frankfurter") == ["yahoo"]


@pytest.fixture
def apis(fake_api, etl_env, monkeypatch):
    for variable in ("YAHOO_BASE_URL", "FRANKFURTER_BASE_URL"):
        monkeypatch.setenv(variable, fake_api.base_url)
    monkeypatch.setenv("FOREX_PROVIDERS", "yahoo,frankfurter")
    yahoo = YahooServer(fake_api)
    yahoo.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    fake_api.route(re.compile(r"/\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}"), frankfurter_series)
    fake_api.route("/latest", frankfurter_latest)
    return yahoo


def history(*specs: str) -> int:
    return run_etl("fetch_historical_market_data", "--symbols", ",".join(specs), "--start", START.isoformat(),
                   "--end", END.isoformat())


def sources(db) -> set[tuple[str, str]]:
    return set(rows(db, "SELECT symbol, source FROM market_data"))


@pytest.mark.parametrize("status", [404, 500])
def test_history_falls_back_to_the_next_provider_and_says_which_delivered(apis, db, status):
    apis.failing["EURUSD=X"] = status
    assert history("EUR/USD:FOREX", "GBP/USD:FOREX") == 0
    assert sources(db) == {("EUR/USD", "frankfurter"), ("GBP/USD", "yahoo")}
    assert rows(db, "SELECT date, price FROM market_data WHERE symbol = 'EUR/USD' ORDER BY date") == \
        [(d, ECB_RATE) for d in ecb_days(START, END)]
    assert scalar(db, "SELECT count(DISTINCT provider) FROM market_data_fetch_ledger") == 2


def frankfurter_requests(api) -> list[str]:
    return [r.path for r in api.requests_to("/") if ".." in r.path]


def test_a_range_ending_on_a_weekend_is_settled_by_an_answer_asked_a_week_wider_and_never_asked_again(apis, db,
                                                                                                     monkeypatch):
    monkeypatch.setenv("FOREX_PROVIDERS", "frankfurter")
    first, sunday = date(2024, 3, 4), date(2024, 3, 10)
    args = ("fetch_historical_market_data", "--symbols", "EUR/USD:FOREX", "--start", first.isoformat(),
            "--end", sunday.isoformat())
    assert run_etl(*args) == 0
    assert frankfurter_requests(apis.api) == ["/2024-02-26..2024-03-17"]
    assert [r[0] for r in rows(db, "SELECT date FROM market_data ORDER BY date")] == ecb_days(first, sunday)
    apis.api.reset()
    assert run_etl(*args) == 0
    assert frankfurter_requests(apis.api) == []


def test_quotes_fall_back_for_the_assets_the_first_provider_cannot_price(apis, db):
    apis.unknown.add("EURUSD=X")
    assert run_etl("fetch_market_data", "--symbols", "EUR/USD:FOREX,GBP/USD:FOREX") == 0
    assert sources(db) == {("EUR/USD", "frankfurter"), ("GBP/USD", "yahoo")}


def test_an_asset_no_provider_can_serve_fails_alone(apis, db):
    apis.failing["EURUSD=X"] = 500
    apis.api.route(re.compile(r"/\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}"),
                   Response(status=404, body={"message": "not found"}))
    assert history("EUR/USD:FOREX", "AAPL:STOCK") == 3
    failure = scalar(db, "SELECT failures FROM etl_job_runs")[0]
    assert failure["symbol"] == "EUR/USD"
    assert "yahoo: 500" in failure["error"] and "frankfurter: 404" in failure["error"]


def coingecko_price(request: Request) -> dict:
    """/simple/price?ids=…&vs_currencies=usd in CoinGecko's documented format."""
    stamp = int(datetime.now().timestamp())
    return {coin_id: {"usd": 7.25, "usd_24h_vol": 1000.5, "usd_24h_change": 1.5, "last_updated_at": stamp}
            for coin_id in request.query["ids"].split(",")}


def test_a_coin_id_learned_through_search_is_asked_once_and_leaves_the_chain_order_alone(apis, monkeypatch, db):
    monkeypatch.setenv("COINGECKO_BASE_URL", apis.api.base_url)
    monkeypatch.setenv("CRYPTO_PROVIDERS", "yahoo,coingecko")
    apis.unknown.add("RENDER-USD")
    apis.api.route("/search", Response(body=fixture_json("coingecko/search_render.json")))
    apis.api.route("/simple/price", coingecko_price)
    for _ in range(2):
        assert run_etl("fetch_market_data", "--symbols", "RENDER:CRYPTO") == 0
    assert [r.query for r in apis.api.requests_to("/search")] == [{"query": "RENDER"}]
    assert [r.query["ids"] for r in apis.api.requests_to("/simple/price")] == ["render-token", "render-token"]
    assert [r.query["symbols"] for r in apis.spark_requests()] == ["RENDER-USD", "RENDER-USD"]
    assert rows(db, "SELECT provider, provider_symbol FROM asset WHERE symbol = 'RENDER'") == [(None, None)]
    assert rows(db, "SELECT provider, symbol, asset_type, provider_symbol FROM provider_symbols") == \
        [("coingecko", "RENDER", "CRYPTO", "render-token")]
    assert sources(db) == {("RENDER", "coingecko")}


def twelvedata_day_quota(served: list) -> callable:
    """/time_series: the first request is served, then the day's credits are spent (HTTP 200, code 429)."""
    def answer(request: Request):
        if served:
            return {"code": 429, "message": "You have run out of API credits for the day. 800 API credits were "
                                            "used, with the current limit being 800.", "status": "error"}
        served.append(request.query["symbol"])
        return {"meta": {"symbol": request.query["symbol"], "interval": "1day", "currency": "USD",
                         "exchange_timezone": "America/New_York", "exchange": "NASDAQ", "mic_code": "XNGS",
                         "type": "Common Stock"},
                "values": [{"datetime": d.isoformat(), "open": "10.5", "high": "11.5", "low": "10.0",
                            "close": "11.0", "volume": "1000"} for d in reversed(ecb_days(START, END))],
                "status": "ok"}
    return answer


def test_a_spent_daily_quota_defers_the_rest_and_loads_what_came(fake_api, etl_env, monkeypatch, db):
    monkeypatch.setenv("TWELVE_DATA_BASE_URL", fake_api.base_url)
    monkeypatch.setenv("TWELVE_DATA_API_KEY", "test-key")
    monkeypatch.setenv("STOCK_PROVIDERS", "twelvedata")
    served: list = []
    fake_api.route("/time_series", twelvedata_day_quota(served))
    assert history("AAPL:STOCK", "MSFT:STOCK", "IBM:STOCK") == 3
    assert {r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data")} == set(served)
    payload = scalar(db, "SELECT payload FROM etl_outbox")
    assert sorted(payload["deferred"]) == sorted({"AAPL", "MSFT", "IBM"} - set(served))
    assert all("deferred" in f["error"] for f in payload["failed"])
    assert len(fake_api.requests_to("/time_series")) <= 3


TWELVE_DATA_MAX_POINTS = 5000
LONG_START = date(2010, 1, 1)
LONG_END = LONG_START + timedelta(days=TWELVE_DATA_MAX_POINTS + 99)   # 5100 days of daily crypto bars


def twelvedata_daily_crypto(request: Request) -> dict:
    """/time_series?interval=1day for a pair traded every day, as Twelve Data documents it: the
    values between start_date and end_date (exclusive), newest first, at most `outputsize` of them
    (1..5000; with both dates given it defaults to the maximum, 5000)."""
    first, after = date.fromisoformat(request.query["start_date"]), date.fromisoformat(request.query["end_date"])
    size = min(int(request.query.get("outputsize", TWELVE_DATA_MAX_POINTS)), TWELVE_DATA_MAX_POINTS)
    days = [after - timedelta(days=i) for i in range(1, (after - first).days + 1)][:size]
    return {"meta": {"symbol": request.query["symbol"], "interval": "1day", "currency_base": "Bitcoin",
                     "currency_quote": "US Dollar", "exchange": "Coinbase Pro", "type": "Digital Currency"},
            "values": [{"datetime": d.isoformat(), "open": "100.5", "high": "101.5", "low": "99.5", "close": "101.0"}
                       for d in days],
            "status": "ok"}


@pytest.fixture
def twelvedata_crypto(fake_api, etl_env, monkeypatch):
    for name, value in {"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": "test-key",
                        "CRYPTO_PROVIDERS": "twelvedata", "PROVIDER_RATE_LIMITS": "twelvedata=60000"}.items():
        monkeypatch.setenv(name, value)
    fake_api.route("/time_series", twelvedata_daily_crypto)
    return fake_api


def long_backfill() -> int:
    return run_etl("fetch_historical_market_data", "--symbols", "BTC:CRYPTO", "--start", LONG_START.isoformat(),
                   "--end", LONG_END.isoformat())


def requested_ranges(fake_api) -> list[tuple[str, str, str]]:
    return [(r.query["start_date"], r.query["end_date"], r.query.get("outputsize"))
            for r in fake_api.requests_to("/time_series")]


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def stored_dates(db, symbol: str) -> list[date]:
    return [r[0] for r in rows(db, "SELECT date FROM market_data WHERE symbol = %s ORDER BY date", (symbol,))]


def test_a_span_longer_than_twelve_datas_5000_points_is_asked_again_for_its_older_rest(twelvedata_crypto, db):
    oldest_of_first_answer = LONG_END - timedelta(days=TWELVE_DATA_MAX_POINTS - 1)
    assert long_backfill() == 0
    assert requested_ranges(twelvedata_crypto) == [
        (LONG_START.isoformat(), (LONG_END + timedelta(days=1)).isoformat(), "5000"),
        (LONG_START.isoformat(), oldest_of_first_answer.isoformat(), "5000")]
    assert stored_dates(db, "BTC") == days_between(LONG_START, LONG_END)
    twelvedata_crypto.reset()
    assert long_backfill() == 0
    assert requested_ranges(twelvedata_crypto) == []


def test_days_older_than_a_capped_answer_stay_missing_when_the_next_request_fails(twelvedata_crypto, db):
    oldest_of_first_answer = LONG_END - timedelta(days=TWELVE_DATA_MAX_POINTS - 1)
    answered: list = []

    def once_then_failing(request: Request) -> dict:
        if answered:
            return {"code": 500, "message": "Internal server error", "status": "error"}
        answered.append(request)
        return twelvedata_daily_crypto(request)

    twelvedata_crypto.route("/time_series", once_then_failing)
    assert long_backfill() == 1
    assert stored_dates(db, "BTC") == days_between(oldest_of_first_answer, LONG_END)
    assert scalar(db, "SELECT count(*) FROM market_data_fetch_ledger, unnest(empty_days) AS e(day) "
                      "WHERE e.day < %s", (oldest_of_first_answer,)) == 0
    twelvedata_crypto.reset()
    twelvedata_crypto.route("/time_series", twelvedata_daily_crypto)
    assert long_backfill() == 0
    assert requested_ranges(twelvedata_crypto) == [(LONG_START.isoformat(), oldest_of_first_answer.isoformat(), "5000")]
    assert stored_dates(db, "BTC") == days_between(LONG_START, LONG_END)


def twelvedata_stock_settings() -> Settings:
    return Settings.from_env({"TWELVE_DATA_API_KEY": "test-key", "STOCK_PROVIDERS": "twelvedata,yahoo"},
                             dotenv=False)


def test_providers_are_built_with_the_budget_given_to_check_and_keep_it():
    settings = twelvedata_stock_settings()
    budget = DailyBudget(settings)
    chain = ProviderChain(settings)
    chain.check([Asset("AAPL", "STOCK")], budget)
    counted = chain.provider("twelvedata").session.budget
    assert (counted.budget, counted.provider, counted.per_day) == (budget, "twelvedata", 800)
    assert chain.provider("yahoo").session.budget is None  # no daily limit: nothing to reserve


def test_a_budget_cannot_be_given_to_providers_already_built_without_it():
    settings = twelvedata_stock_settings()
    chain = ProviderChain(settings)
    chain.check([Asset("AAPL", "STOCK")])
    with pytest.raises(RuntimeError, match="first check"):
        chain.check([Asset("AAPL", "STOCK")], DailyBudget(settings))
    assert chain.provider("twelvedata").session.budget is None

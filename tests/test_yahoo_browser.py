"""Yahoo reached as a browser: curl_cffi impersonation, no product User-Agent, the edge's 429s."""

from datetime import date

import pytest

from etl.config import Settings
from etl.errors import ConfigError
from etl.models import Asset
from etl.pipeline.provider_setup import make_provider
from etl.providers.yahoo import EDGE_429S_BEFORE_DOWN
from etl.utils.http_clients import BrowserClient, TransportError
from support.db import row_count, rows, scalar
from support.fake_api import Response
from support.keyless_servers import COIN_PRICE, ECB_RATE, serve_coingecko_prices, serve_frankfurter
from support.runner import UNREACHABLE, run_etl
from support.yahoo_server import YahooServer, header, looks_like_a_browser

START, END = date(2024, 3, 4), date(2024, 3, 8)
AAPL = Asset("AAPL", "STOCK")


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    server = YahooServer(fake_api)
    server.browser_only = True
    return server


def test_a_yahoo_that_refuses_non_browsers_serves_history_and_quotes_through_the_default_chain(yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK", "BTC:CRYPTO", "EUR/USD:FOREX") == 0
    assert run_etl("fetch_historical_market_data", "--start", START.isoformat(), "--end", END.isoformat()) == 0
    assert run_etl("fetch_market_data") == 0
    assert row_count(db, "market_data", "date BETWEEN %s AND %s", (START, END)) == 3 * 5
    assert row_count(db, "market_data", "date = %s", (date.today(),)) == 3
    assert yahoo.api.requests and all(looks_like_a_browser(r) for r in yahoo.api.requests)


def test_yahoo_requests_carry_the_impersonated_browsers_headers_and_no_product_user_agent(yahoo, etl_env):
    provider = make_provider("yahoo", Settings.from_env(dotenv=False))
    assert isinstance(provider.session.client, BrowserClient)
    provider.history(AAPL, START, END)
    provider.quotes([AAPL])
    for request in yahoo.api.requests:
        agent = header(request, "User-Agent")
        assert "Chrome/" in agent and "financial-tracker-etl" not in agent
        assert header(request, "sec-ch-ua") and header(request, "sec-fetch-mode")


def test_yahoo_impersonate_chooses_the_browser(yahoo, monkeypatch):
    monkeypatch.setenv("YAHOO_IMPERSONATE", "chrome146")
    provider = make_provider("yahoo", Settings.from_env(dotenv=False))
    provider.quotes([AAPL])
    [request] = yahoo.spark_requests()
    assert "Chrome/146." in header(request, "User-Agent")


def test_the_default_impersonation_is_a_chrome_the_installed_curl_cffi_supports():
    from etl.utils.http_clients import browser_targets

    assert Settings.from_env({}, dotenv=False).yahoo_impersonate in browser_targets()
    assert Settings.from_env({}, dotenv=False).yahoo_impersonate.startswith("chrome")


def test_an_impersonation_curl_cffi_does_not_know_is_a_configuration_error():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"YAHOO_IMPERSONATE": "netscape4"}, dotenv=False)
    assert "YAHOO_IMPERSONATE" in str(error.value) and "netscape4" in str(error.value)


def test_an_unknown_impersonation_stops_a_job_with_one_line_and_exit_2(etl_env, monkeypatch, capsys):
    monkeypatch.setenv("YAHOO_IMPERSONATE", "netscape4")
    assert run_etl("fetch_market_data", "--symbols", "AAPL:STOCK") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "YAHOO_IMPERSONATE" in err[0]


@pytest.fixture
def refusing_yahoo(fake_api, etl_env, monkeypatch):
    """Yahoo's edge answering 429 to everything; CoinGecko and Frankfurter stand-ins up; the default chains."""
    for variable in ("YAHOO_BASE_URL", "COINGECKO_BASE_URL", "FRANKFURTER_BASE_URL"):
        monkeypatch.setenv(variable, fake_api.base_url)
    server = YahooServer(fake_api)
    server.edge_429 = True
    serve_frankfurter(fake_api)
    serve_coingecko_prices(fake_api)
    return server


def only_failure(db) -> dict:
    [failure] = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")
    return failure


def test_with_yahoo_refusing_everything_crypto_and_forex_quotes_come_from_the_keyless_fallbacks(refusing_yahoo, db):
    assert run_etl("assets", "add", "AAPL:STOCK", "BTC:CRYPTO", "EUR/USD:FOREX") == 0
    assert run_etl("fetch_market_data") == 3
    assert set(rows(db, "SELECT symbol, source, price FROM market_data")) == {
        ("BTC", "coingecko", COIN_PRICE), ("EUR/USD", "frankfurter", ECB_RATE)}
    failure = only_failure(db)
    assert failure["symbol"] == "AAPL" and "\n" not in failure["error"]
    assert failure["error"].startswith("yahoo: refuses this client")
    assert "429 Too Many Requests" in failure["error"] and "Edge: Too Many Requests" in failure["error"]
    assert len(refusing_yahoo.spark_requests()) == EDGE_429S_BEFORE_DOWN


def test_with_yahoo_refusing_everything_forex_history_comes_from_frankfurter_and_yahoo_is_asked_no_more(
        refusing_yahoo, db):
    assert run_etl("fetch_historical_market_data", "--symbols", "AAPL:STOCK,MSFT:STOCK,EUR/USD:FOREX",
                   "--start", START.isoformat(), "--end", END.isoformat()) == 3
    assert set(rows(db, "SELECT DISTINCT symbol, source FROM market_data")) == {("EUR/USD", "frankfurter")}
    assert row_count(db, "market_data") == 5
    failures = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")
    assert sorted(f["symbol"] for f in failures) == ["AAPL", "MSFT"]
    assert all(f["error"].startswith("yahoo: refuses this client") for f in failures)
    assert len(refusing_yahoo.chart_requests()) <= EDGE_429S_BEFORE_DOWN + 2  # threads already sending finish


def transport_error(url: str) -> TransportError:
    with pytest.raises(TransportError) as caught:
        BrowserClient().get(url, params=None, headers={}, cookies=None, timeout=5)
    return caught.value


def test_a_connection_reset_after_connecting_says_nothing_about_whether_the_browser_client_can_reach_the_host(
        fake_api):
    fake_api.route("/v8/finance/chart/AAPL", Response(reset=True))
    error = transport_error(f"{fake_api.base_url}/v8/finance/chart/AAPL")
    assert error.kind == "connect" and error.cause is None, error


def test_a_refused_connection_is_the_browser_clients_connect_failure():
    assert transport_error(f"{UNREACHABLE}/v8/finance/chart/AAPL").cause in ("connection refused", "no connection")

"""An asset registered without a name gets its name, currency, exchange and time zone from the first
answer that carries them; what is already there (the user's `--name`, an earlier answer's) stays."""

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from etl.models import NO_META, AnswerMeta, Asset, HistoryAnswer
from etl.pipeline.chain import Served
from etl.pipeline.history import Part, answers_meta
from etl.pipeline.plan import Span
from etl.providers.yahoo import chart_meta
from etl.validate import Validated
from support.db import rows
from support.fake_api import Response, fixture_json
from support.providers import KEYS, build_provider
from support.runner import run_etl
from support.yahoo_server import YahooServer

HISTORY = ("fetch_historical_market_data", "--start", "2024-03-04", "--end", "2024-03-08")
QUOTES = ("fetch_market_data",)
JOBS = pytest.mark.parametrize("job", [HISTORY, QUOTES], ids=["history", "quotes"])
APPLE = ("Apple Inc.", "USD", "NasdaqGS", "America/New_York")


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    server.names["AAPL"] = "Apple Inc."
    return server


def described(db, symbol: str) -> tuple:
    return rows(db, "SELECT name, currency, exchange, exchange_timezone FROM asset WHERE symbol = %s", (symbol,))[0]


# ---- through the jobs, against a Yahoo stand-in ----

@JOBS
def test_an_asset_added_without_a_name_has_yahoos_long_name_after_its_first_fetch(yahoo, db, job):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert described(db, "AAPL") == (None, None, None, None)
    assert run_etl(*job) == 0
    assert described(db, "AAPL") == APPLE


@JOBS
def test_without_a_long_name_the_short_name_is_taken(yahoo, db, job):
    yahoo.names["AAPL"] = "APPLE INC"
    yahoo.without_long_name.add("AAPL")
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert run_etl(*job) == 0
    assert described(db, "AAPL") == ("APPLE INC", "USD", "NasdaqGS", "America/New_York")


@JOBS
def test_a_name_the_user_gave_is_never_overwritten_and_the_rest_is_still_filled(yahoo, db, job):
    assert run_etl("assets", "add", "AAPL:STOCK", "--name", "My Apple") == 0
    assert run_etl(*job) == 0
    assert described(db, "AAPL") == ("My Apple", "USD", "NasdaqGS", "America/New_York")


@JOBS
def test_the_first_answers_name_stays_when_a_later_answer_says_otherwise(yahoo, db, fake_api, job):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert run_etl(*job) == 0
    yahoo.names["AAPL"] = "Apple Renamed"
    asked = len(fake_api.requests)
    assert run_etl(*job, *(["--full-refresh"] if job is HISTORY else [])) == 0
    assert len(fake_api.requests) > asked
    assert described(db, "AAPL") == APPLE


@JOBS
def test_a_dry_run_names_nothing(yahoo, db, job):
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert run_etl(*job, "--dry-run") == 0
    assert described(db, "AAPL") == (None, None, None, None)


# ---- what each provider's answers say ----

def test_yahoo_meta_gives_the_long_name_the_major_currency_the_full_exchange_name_and_the_zone():
    meta = fixture_json("yahoo/chart_VOD.L.json")["chart"]["result"][0]["meta"]
    assert chart_meta(meta) == AnswerMeta("Vodafone Group Public Limited Company", "GBP", "LSE", "Europe/London")
    del meta["longName"], meta["fullExchangeName"]
    meta["exchangeName"] = "LSE main market"
    assert chart_meta(meta) == AnswerMeta("VODAFONE GROUP PLC ORD USD0.20", "GBP", "LSE main market", "Europe/London")


def twelvedata(fake_api):
    return build_provider("twelvedata", fake_api.base_url, key=KEYS["twelvedata"], paced=False, ETL_HTTP_RETRIES="1")


def test_twelve_data_history_gives_the_currency_exchange_and_zone_of_its_meta(fake_api):
    fake_api.route("/time_series", Response(body=fixture_json("twelvedata/time_series_aapl.json")))
    answer = twelvedata(fake_api).history_answer(Asset("AAPL", "STOCK"), date(2024, 5, 6), date(2024, 5, 10))
    assert answer.bars and answer.meta == AnswerMeta(None, "USD", "NASDAQ", "America/New_York")


def test_twelve_data_forex_history_gives_the_pairs_quote_currency(fake_api):
    fake_api.route("/time_series", Response(body=fixture_json("twelvedata/time_series_eurusd.json")))
    answer = twelvedata(fake_api).history_answer(Asset("EUR/USD", "FOREX"), date(2024, 5, 6), date(2024, 5, 10))
    assert answer.meta == AnswerMeta(currency="USD")


def test_twelve_data_quotes_give_the_name_exchange_and_major_currency(fake_api):
    fake_api.route("/quote", Response(body=fixture_json("twelvedata/quote_vod_gbp_pence.json")))
    [quote] = twelvedata(fake_api).quotes([Asset("VOD", "STOCK")]).quotes
    assert quote.meta == AnswerMeta("Vodafone Group Plc", "GBP", "LSE")


def alphavantage(fake_api, fixture):
    fake_api.route("/query", Response(body=fixture_json(f"alphavantage/{fixture}")))
    av = build_provider("alphavantage", fake_api.base_url, key=KEYS["alphavantage"], paced=False,
                        ETL_HTTP_RETRIES="1")
    av.clock = lambda: datetime(2024, 5, 13, 14, tzinfo=timezone.utc)
    return av


def test_alpha_vantage_crypto_history_and_quotes_give_the_coins_name(fake_api):
    btc = Asset("BTC", "CRYPTO")
    answer = alphavantage(fake_api, "digital_currency_daily_btc.json").history_answer(btc, date(2024, 5, 8),
                                                                                     date(2024, 5, 12))
    assert answer.bars and answer.meta == AnswerMeta("Bitcoin", "USD")
    [quote] = alphavantage(fake_api, "currency_exchange_rate_btcusd.json").quotes([btc]).quotes
    assert quote.meta == AnswerMeta("Bitcoin", "USD")


def test_alpha_vantage_leaves_out_the_time_zone_of_its_refresh_time_and_names_no_currency_pair(fake_api):
    answer = alphavantage(fake_api, "time_series_daily_ibm.json").history_answer(Asset("IBM", "STOCK"),
                                                                                date(2024, 5, 7), date(2024, 5, 10))
    assert answer.bars and answer.meta == NO_META
    [quote] = alphavantage(fake_api, "currency_exchange_rate_eurusd.json").quotes([Asset("EUR/USD", "FOREX")]).quotes
    assert quote.meta == AnswerMeta(currency="USD")


def test_a_provider_without_meta_gives_the_one_currency_of_its_bars(fake_api):
    fake_api.route("/2024-01-01..2024-01-10", Response(body=fixture_json("frankfurter/timeseries_EUR_USD.json")))
    frankfurter = build_provider("frankfurter", fake_api.base_url, paced=False)
    answer = frankfurter.history_answer(Asset("EUR/USD", "FOREX"), date(2024, 1, 1), date(2024, 1, 10))
    assert answer.bars and answer.meta == AnswerMeta(currency="USD")


# ---- pure rules ----

def test_what_the_asset_table_would_refuse_or_python_cannot_use_is_left_out():
    assert AnswerMeta.of(" Apple Inc. ", "USD", " NasdaqGS", "America/New_York") == AnswerMeta(*APPLE)
    assert AnswerMeta.of("", "GBp", "  ", "Mars/Olympus_Mons") == NO_META
    assert AnswerMeta.of({"text": "x"}, 840, ["NYSE"], 5) == NO_META
    assert AnswerMeta.of(currency="usd").empty and not AnswerMeta.of(currency="EUR").empty


def part(provider: str, meta: AnswerMeta) -> Part:
    return Part(Served(provider, Span(date(2024, 3, 4), date(2024, 3, 8)), [], HistoryAnswer([], meta=meta)),
                Validated([], 0))


def test_over_several_answers_each_field_comes_from_the_first_that_carries_it():
    parts = [part("twelvedata", AnswerMeta(None, "USD", "NASDAQ", None)),
             part("yahoo", AnswerMeta("Apple Inc.", "EUR", "NasdaqGS", "America/New_York"))]
    assert answers_meta(parts) == AnswerMeta("Apple Inc.", "USD", "NASDAQ", "America/New_York")
    assert answers_meta([]) == NO_META

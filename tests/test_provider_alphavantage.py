"""Alpha Vantage provider against a loopback server answering in Alpha Vantage's documented format."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from etl.config import Settings
from etl.errors import FatalError, NotFoundError, QuotaExhaustedError, RateLimitedError, RetryableError
from etl.models import Asset
from etl.pipeline.chain import ProviderChain
from etl.providers.alphavantage import COMPACT_DAYS
from etl.validate import validate_bars
from support.fake_api import fixture_json, fixture_text
from support.providers import KEYS, build_provider, error_of

KEY = KEYS["alphavantage"]
NOW = datetime(2024, 5, 13, 14, 0, tzinfo=timezone.utc)
IBM = Asset("IBM", "STOCK", currency="USD")
EURUSD = Asset("EUR/USD", "FOREX")
BTC = Asset("BTC", "CRYPTO")


def provider(fake_api):
    av = build_provider("alphavantage", fake_api.base_url, key=KEY, paced=False, ETL_HTTP_RETRIES="1")
    av.clock = lambda: NOW
    return av


def serve_by_function(fake_api, answers):
    """Answer /query like Alpha Vantage: the body depends on `function` (and the symbol asked for)."""
    def answer(request):
        function = request.query["function"]
        symbol = request.query.get("symbol") or request.query.get("from_symbol") or request.query.get("from_currency")
        found = answers.get((function, symbol), answers.get(function))
        return found if found is not None else fixture_json("alphavantage/error_invalid_call.json")
    fake_api.route("/query", answer)


def load(fixture):
    return fixture_json(f"alphavantage/{fixture}")


def queries(fake_api):
    return [r.query for r in fake_api.requests_to("/query")]


def test_stock_history_equals_the_served_strings_to_the_last_digit(fake_api):
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("time_series_daily_ibm.json")})
    bars = provider(fake_api).history(IBM, date(2024, 5, 7), date(2024, 5, 10))
    served = load("time_series_daily_ibm.json")["Time Series (Daily)"]
    assert [b.date.isoformat() for b in bars] == sorted(served)
    for bar in bars:
        row = served[bar.date.isoformat()]
        assert (str(bar.open), str(bar.high), str(bar.low), str(bar.price), str(bar.volume)) == \
               (row["1. open"], row["2. high"], row["3. low"], row["4. close"], row["5. volume"])
        assert (bar.symbol, bar.asset_type, bar.currency, bar.source) == ("IBM", "STOCK", "USD", "alphavantage")


def test_recent_stock_history_asks_for_the_compact_series_with_the_key(fake_api):
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("time_series_daily_ibm.json")})
    provider(fake_api).history(IBM, date(2024, 5, 7), date(2024, 5, 10))
    assert queries(fake_api) == [{"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact",
                                  "apikey": KEY}]


def test_forex_history_older_than_about_100_trading_days_asks_for_the_full_series(fake_api):
    serve_by_function(fake_api, {"FX_DAILY": load("fx_daily_eurusd.json")})
    provider(fake_api).history(EURUSD, date(2023, 1, 2), date(2024, 5, 10))
    assert [q["outputsize"] for q in queries(fake_api)] == ["full"]


def test_stock_history_beyond_the_free_compact_series_is_not_asked_for_and_is_retryable(fake_api):
    # outputsize=full is premium for TIME_SERIES_DAILY: asking would spend one of 25 daily requests on a refusal.
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("time_series_daily_ibm.json")})
    error = error_of(lambda: provider(fake_api).history(IBM, date(2023, 1, 2), date(2024, 5, 10)))
    assert type(error) is RetryableError and "100 trading days" in str(error) and "another provider" in str(error)
    assert queries(fake_api) == []


def test_a_premium_refusal_is_retryable_so_the_chain_asks_the_next_provider(fake_api):
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("information_premium.json")})
    fake_api.route("/v8/finance/chart/AAPL", fixture_text("yahoo/chart_AAPL.json"))
    env = {"ALPHA_VANTAGE_BASE_URL": fake_api.base_url, "ALPHA_VANTAGE_API_KEY": KEY,
           "YAHOO_BASE_URL": fake_api.base_url, "ETL_HTTP_BACKOFF": "0.01", "ETL_HTTP_RETRIES": "1"}
    last = datetime.now(timezone.utc).date()
    first = last - timedelta(days=10)
    aapl = Asset("AAPL", "STOCK")
    both = ProviderChain(Settings.from_env({**env, "STOCK_PROVIDERS": "alphavantage,yahoo"}, dotenv=False))
    parts, error = both.history_parts(aapl, first, last, today=last)
    assert [part.provider for part in parts] == ["yahoo"] and error is None
    alone = ProviderChain(Settings.from_env({**env, "STOCK_PROVIDERS": "alphavantage"}, dotenv=False))
    parts, error = alone.history_parts(aapl, first, last, today=last)
    assert parts == [] and not isinstance(error, FatalError) and "premium feature" in str(error)


def test_only_stock_and_etf_history_is_limited_to_the_compact_series_and_it_stays_inside_20_weeks():
    from etl.providers import provider_class
    alphavantage = provider_class("alphavantage")
    assert alphavantage.history_depth("STOCK") == alphavantage.history_depth("ETF") == COMPACT_DAYS < 140
    assert alphavantage.history_depth("FOREX") is None and alphavantage.history_depth("CRYPTO") is None


def test_a_forex_backfill_with_alphavantage_alone_plans_the_whole_requested_range():
    from etl.pipeline.history import deepest_history
    assert deepest_history(["alphavantage"], "FOREX") is None
    assert deepest_history(["alphavantage"], "STOCK") == COMPACT_DAYS


def test_forex_history_comes_from_fx_daily_priced_in_the_quote_currency(fake_api):
    serve_by_function(fake_api, {"FX_DAILY": load("fx_daily_eurusd.json")})
    bars = provider(fake_api).history(EURUSD, date(2024, 5, 8), date(2024, 5, 10))
    assert queries(fake_api)[0] == {"function": "FX_DAILY", "from_symbol": "EUR", "to_symbol": "USD",
                                    "outputsize": "compact", "apikey": KEY}
    assert {b.date.isoformat(): str(b.price) for b in bars} == \
           {"2024-05-10": "1.07700", "2024-05-09": "1.07815", "2024-05-08": "1.07480"}
    assert all(b.volume is None and b.currency == "USD" for b in bars)


def test_crypto_history_comes_from_digital_currency_daily_in_usd(fake_api):
    serve_by_function(fake_api, {"DIGITAL_CURRENCY_DAILY": load("digital_currency_daily_btc.json")})
    bars = provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    assert queries(fake_api)[0] == {"function": "DIGITAL_CURRENCY_DAILY", "symbol": "BTC", "market": "USD",
                                    "apikey": KEY}
    last = bars[-1]
    assert (last.date, str(last.open), str(last.high), str(last.low), str(last.price), str(last.volume)) == \
           (date(2024, 5, 12), "60806.01000000", "61846.82000000", "60626.00000000", "61463.77000000",
            "236.31872849")
    assert {b.currency for b in bars} == {"USD"}


def test_crypto_history_in_the_older_field_names_is_read_too(fake_api):
    serve_by_function(fake_api, {"DIGITAL_CURRENCY_DAILY": load("digital_currency_daily_btc_legacy.json")})
    [bar] = provider(fake_api).history(BTC, date(2024, 5, 11), date(2024, 5, 11))
    assert (str(bar.open), str(bar.high), str(bar.low), str(bar.price), str(bar.volume)) == \
           ("60793.35000000", "61490.00000000", "60492.38000000", "60806.01000000", "342.70131563")


def test_empty_and_broken_values_are_dropped_and_counted_by_validation(fake_api):
    payload = load("time_series_daily_ibm.json")
    series = payload["Time Series (Daily)"]
    series["2024-05-10"]["4. close"] = ""                     # empty string
    series["2024-05-09"]["4. close"] = "0.0000"               # zero price
    del series["2024-05-08"]["4. close"]                      # no close at all
    fake_api.route("/query", payload)
    bars = provider(fake_api).history(IBM, date(2024, 5, 7), date(2024, 5, 10))
    checked = validate_bars(bars, date(2024, 5, 7), date(2024, 5, 10), today=NOW.date())
    assert [b.date for b in checked.rows] == [date(2024, 5, 7)]
    assert checked.reasons == {"missing price": 2, "non-positive price": 1}


def test_an_index_is_not_offered():
    from etl.providers import provider_class
    av = provider_class("alphavantage")
    assert "INDEX" not in av.asset_types and av.limits.per_day == 25 and av.limits.per_minute == 5


def test_a_stock_quote_is_read_from_global_quote(fake_api):
    serve_by_function(fake_api, {"GLOBAL_QUOTE": load("global_quote_ibm.json")})
    batch = provider(fake_api).quotes([IBM])
    [quote] = batch.quotes
    assert queries(fake_api) == [{"function": "GLOBAL_QUOTE", "symbol": "IBM", "apikey": KEY}]
    assert (quote.date, quote.as_of, quote.currency) == (date(2024, 5, 10), NOW, "USD")
    assert (str(quote.price), str(quote.change), quote.percent_change, str(quote.volume)) == \
           ("167.1500", "0.8800", Decimal("0.5293"), "2255535")
    assert (str(quote.open), str(quote.high), str(quote.low)) == ("167.1300", "168.0700", "166.3200")


def test_forex_and_crypto_quotes_are_read_from_the_exchange_rate(fake_api):
    serve_by_function(fake_api, {("CURRENCY_EXCHANGE_RATE", "EUR"): load("currency_exchange_rate_eurusd.json"),
                                 ("CURRENCY_EXCHANGE_RATE", "BTC"): load("currency_exchange_rate_btcusd.json")})
    batch = provider(fake_api).quotes([EURUSD, BTC])
    quotes = {q.symbol: q for q in batch.quotes}
    assert queries(fake_api) == [
        {"function": "CURRENCY_EXCHANGE_RATE", "from_currency": "EUR", "to_currency": "USD", "apikey": KEY},
        {"function": "CURRENCY_EXCHANGE_RATE", "from_currency": "BTC", "to_currency": "USD", "apikey": KEY}]
    assert (str(quotes["EUR/USD"].price), quotes["EUR/USD"].as_of, quotes["EUR/USD"].date) == \
           ("1.07700000", datetime(2024, 5, 10, 21, 59, 1, tzinfo=timezone.utc), date(2024, 5, 10))
    assert (str(quotes["BTC"].price), quotes["BTC"].currency) == ("61463.77000000", "USD")


def test_each_quote_is_its_own_request_and_an_unknown_symbol_fails_alone(fake_api):
    serve_by_function(fake_api, {("GLOBAL_QUOTE", "IBM"): load("global_quote_ibm.json"),
                                 ("GLOBAL_QUOTE", "NOPE"): load("global_quote_empty.json")})
    nope = Asset("NOPE", "STOCK")
    batch = provider(fake_api).quotes([IBM, nope, Asset("BAD!", "STOCK")])
    assert len(queries(fake_api)) == 3
    assert [q.symbol for q in batch.quotes] == ["IBM"]
    assert isinstance(batch.failures[nope], NotFoundError) and "empty quote" in str(batch.failures[nope])
    assert isinstance(batch.failures[Asset("BAD!", "STOCK")], NotFoundError)


def test_the_daily_limit_stops_the_quotes_with_a_quota_error(fake_api):
    notice = load("information_daily_limit.json")
    notice["Information"] = notice["Information"].replace("APIKEY_PLACEHOLDER", KEY)
    serve_by_function(fake_api, {"GLOBAL_QUOTE": notice})
    error = error_of(lambda: provider(fake_api).quotes([IBM]))
    assert isinstance(error, QuotaExhaustedError) and KEY not in str(error)


# Alpha Vantage's notices beyond what every provider must handle (tests/test_provider_contract.py).
ERRORS = [
    ("information_invalid_key.json", FatalError, "check ALPHA_VANTAGE_API_KEY"),
    ("note_call_frequency.json", RateLimitedError, "call frequency"),
    ("information_burst_limit.json", RateLimitedError, "too many requests"),
    ("information_daily_limit.json", QuotaExhaustedError, "daily allowance is spent"),
    ("information_premium.json", RetryableError, "premium feature"),
]


@pytest.mark.parametrize("fixture, expected, says", ERRORS)
def test_notices_inside_a_200_become_typed_errors(fake_api, fixture, expected, says):
    fake_api.route("/query", load(fixture))
    error = error_of(lambda: provider(fake_api).history(IBM, date(2024, 5, 7), date(2024, 5, 10)))
    assert type(error) is expected and says in str(error) and "alphavantage" in str(error)


@pytest.mark.parametrize("fixture, expected, says", ERRORS)
def test_the_api_key_never_appears_in_an_error_message(fake_api, fixture, expected, says):
    notice = load(fixture)
    field = next(iter(notice))
    notice[field] = notice[field].replace("APIKEY_PLACEHOLDER", KEY) + f" (apikey={KEY})"
    fake_api.route("/query", notice)
    error = error_of(lambda: provider(fake_api).history(IBM, date(2024, 5, 7), date(2024, 5, 10)))
    assert type(error) is expected and KEY not in str(error)




# ---- corporate actions ----

def test_stock_history_reports_its_splits_and_dividends_asked_once_per_run(fake_api):
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("time_series_daily_ibm.json"),
                                 "SPLITS": load("splits_ibm.json"), "DIVIDENDS": load("dividends_ibm.json")})
    av = provider(fake_api)
    answer = av.history_answer(IBM, date(2024, 5, 7), date(2024, 5, 10))
    av.history_answer(IBM, date(2024, 4, 1), date(2024, 4, 30))
    assert [q["function"] for q in queries(fake_api)] == ["TIME_SERIES_DAILY", "SPLITS", "DIVIDENDS",
                                                           "TIME_SERIES_DAILY"]
    assert answer.checked_actions and answer.bars
    assert [(a.date, a.kind, a.ratio, a.amount, a.currency) for a in answer.actions] == [
        (date(2021, 11, 4), "split", Decimal("1.0460"), None, None),
        (date(1999, 5, 27), "split", Decimal("2.0000"), None, None),
        (date(1997, 5, 28), "split", Decimal("2.0000"), None, None),
        (date(2024, 5, 9), "dividend", None, Decimal("1.67"), "USD"),
        (date(2024, 2, 8), "dividend", None, Decimal("1.66"), "USD")]
    assert (av.price_basis.splits, av.gives_adj_close) == (False, False)


def test_when_the_actions_cannot_be_had_the_bars_still_load_and_the_check_is_not_recorded(fake_api):
    serve_by_function(fake_api, {"TIME_SERIES_DAILY": load("time_series_daily_ibm.json"),
                                 "SPLITS": load("information_premium.json")})
    answer = provider(fake_api).history_answer(IBM, date(2024, 5, 7), date(2024, 5, 10))
    assert answer.bars and answer.actions == [] and not answer.checked_actions


def test_forex_history_asks_for_no_corporate_actions(fake_api):
    serve_by_function(fake_api, {"FX_DAILY": load("fx_daily_eurusd.json")})
    answer = provider(fake_api).history_answer(EURUSD, date(2024, 5, 6), date(2024, 5, 10))
    assert [q["function"] for q in queries(fake_api)] == ["FX_DAILY"]
    assert answer.actions == [] and not answer.checked_actions

"""Twelve Data provider against a loopback server answering in Twelve Data's documented format."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from etl.config import Settings
from etl.errors import FatalError, NotFoundError, QuotaExhaustedError, RateLimitedError
from etl.models import Asset
from etl.pipeline.provider_setup import make_provider
from etl.validate import validate_bars
from support.fake_api import Response, fixture_json
from support.providers import KEYS, build_provider, error_of

KEY = KEYS["twelvedata"]
AAPL = Asset("AAPL", "STOCK")
EURUSD = Asset("EUR/USD", "FOREX")
BTC = Asset("BTC", "CRYPTO")
GSPC = Asset("^GSPC", "INDEX")


def provider(fake_api, **extra):
    return build_provider("twelvedata", fake_api.base_url, key=KEY, paced=False, ETL_HTTP_RETRIES="1", **extra)


def serve_series(fake_api, fixture, status=200):
    fake_api.route("/time_series", Response(status=status, body=fixture_json(f"twelvedata/{fixture}")))


def serve_quotes(fake_api, by_symbol):
    """Answer /quote like Twelve Data: flat for one symbol, keyed by symbol for several."""
    def answer(request):
        symbols = request.query["symbol"].split(",")
        if len(symbols) == 1:
            return by_symbol[symbols[0]]
        return {s: by_symbol.get(s, fixture_json("twelvedata/error_404_symbol.json")) for s in symbols}
    fake_api.route("/quote", answer)


def served_values(fixture):
    return {row["datetime"]: row for row in fixture_json(f"twelvedata/{fixture}")["values"]}


def as_text(value):
    return None if value is None else str(value)


def test_stock_history_equals_the_served_strings_to_the_last_digit(fake_api):
    serve_series(fake_api, "time_series_aapl.json")
    bars = provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 10))
    served = served_values("time_series_aapl.json")
    assert sorted(b.date.isoformat() for b in bars) == sorted(served)
    for bar in bars:
        row = served[bar.date.isoformat()]
        assert (as_text(bar.price), as_text(bar.open), as_text(bar.high), as_text(bar.low), as_text(bar.volume)) == \
               (row["close"], row["open"], row["high"], row["low"], row["volume"])
        assert isinstance(bar.price, Decimal)
        assert (bar.symbol, bar.asset_type, bar.currency, bar.source) == ("AAPL", "STOCK", "USD", "twelvedata")


def test_history_asks_for_daily_bars_as_traded_over_the_range_with_the_key(fake_api):
    serve_series(fake_api, "time_series_aapl.json")
    provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 10))
    [request] = fake_api.requests_to("/time_series")
    assert request.query == {"symbol": "AAPL", "interval": "1day", "start_date": "2024-05-06",
                             "end_date": "2024-05-11", "outputsize": "5000", "adjust": "none", "apikey": KEY}


def test_history_keeps_the_end_inclusive_and_leaves_out_the_day_after(fake_api):
    serve_series(fake_api, "time_series_aapl.json")
    bars = provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 9))
    assert max(b.date for b in bars) == date(2024, 5, 9)


def test_forex_history_has_no_volume_and_is_priced_in_the_quote_currency(fake_api):
    serve_series(fake_api, "time_series_eurusd.json")
    bars = provider(fake_api).history(EURUSD, date(2024, 5, 8), date(2024, 5, 10))
    by_day = {b.date: b for b in bars}
    assert str(by_day[date(2024, 5, 9)].price) == "1.07815"
    assert all(b.volume is None and b.currency == "USD" for b in bars)
    assert fake_api.requests_to("/time_series")[0].query["symbol"] == "EUR/USD"


def test_crypto_is_asked_for_as_a_pair_against_usd(fake_api):
    serve_series(fake_api, "time_series_btcusd.json")
    bars = provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    assert fake_api.requests_to("/time_series")[0].query["symbol"] == "BTC/USD"
    assert {str(b.price) for b in bars} == {"61463.77000", "60806.01000", "60793.35000"}
    assert {b.currency for b in bars} == {"USD"}


def test_an_index_loses_its_caret_unless_the_asset_names_its_own_symbol(fake_api):
    serve_series(fake_api, "time_series_gspc.json")
    td = provider(fake_api)
    bars = td.history(GSPC, date(2024, 5, 9), date(2024, 5, 10))
    td.history(Asset("^GSPC", "INDEX", provider_symbol="SPX"), date(2024, 5, 9), date(2024, 5, 10))
    assert [r.query["symbol"] for r in fake_api.requests_to("/time_series")] == ["GSPC", "SPX"]
    assert {b.symbol for b in bars} == {"^GSPC"}
    assert str(next(b for b in bars if b.date == date(2024, 5, 10)).price) == "5222.68018"


def test_nulls_and_broken_rows_are_dropped_and_counted_by_validation(fake_api):
    payload = fixture_json("twelvedata/time_series_aapl.json")
    payload["values"][0]["close"] = None                      # 2024-05-10: null close
    payload["values"][1]["high"], payload["values"][1]["low"] = "181.00000", "184.00000"  # 05-09: high < low
    del payload["values"][2]["close"]                         # 05-08: no close at all
    fake_api.route("/time_series", payload)
    bars = provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 10))
    checked = validate_bars(bars, date(2024, 5, 6), date(2024, 5, 10), today=date(2024, 5, 13))
    assert [b.date for b in checked.rows] == [date(2024, 5, 6), date(2024, 5, 7)]
    assert checked.dropped == 3
    assert checked.reasons == {"missing price": 2, "high below low": 1}


# Twelve Data's own error objects beyond what every provider must handle (tests/test_provider_contract.py).
ERRORS = [
    ("error_400_bad_symbol.json", 200, NotFoundError, "unknown symbol"),
    ("error_403_plan.json", 200, NotFoundError, "paid Twelve Data plan"),
    ("error_401_invalid_key.json", 401, FatalError, "check TWELVE_DATA_API_KEY"),
    ("error_429_minute.json", 200, RateLimitedError, "this minute"),
    ("error_429_day.json", 200, QuotaExhaustedError, "daily API credits are spent"),
]


@pytest.mark.parametrize("fixture, status, expected, says", ERRORS)
def test_api_errors_become_typed_errors_that_say_what_to_do(fake_api, fixture, status, expected, says):
    serve_series(fake_api, fixture, status)
    error = error_of(lambda: provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 10)))
    assert type(error) is expected
    assert says in str(error)
    assert "twelvedata" in str(error)


@pytest.mark.parametrize("fixture, status, expected, says", ERRORS)
def test_the_api_key_never_appears_in_an_error_message(fake_api, fixture, status, expected, says):
    body = fixture_json(f"twelvedata/{fixture}")
    body["message"] += f" (key {KEY})"
    fake_api.route("/time_series", Response(status=status, body=body))
    error = error_of(lambda: provider(fake_api).history(AAPL, date(2024, 5, 6), date(2024, 5, 10)))
    assert KEY not in str(error)


def test_one_symbol_quote_is_read_from_the_flat_object(fake_api):
    serve_quotes(fake_api, {"AAPL": fixture_json("twelvedata/quote_aapl.json")})
    batch = provider(fake_api).quotes([AAPL])
    [quote] = batch.quotes
    assert batch.failures == {}
    assert (quote.date, quote.as_of) == (date(2024, 5, 10), datetime(2024, 5, 10, 20, 0, tzinfo=timezone.utc))
    assert (str(quote.price), str(quote.change), str(quote.percent_change), str(quote.volume)) == \
           ("183.05000", "-1.52000", "-0.82353", "50759500")
    assert (str(quote.open), str(quote.high), str(quote.low)) == ("184.89999", "185.09000", "182.13000")
    assert (quote.name, quote.exchange, quote.currency, quote.source) == ("Apple Inc.", "NASDAQ", "USD", "twelvedata")
    assert fake_api.requests_to("/quote")[0].query == {"symbol": "AAPL", "apikey": KEY}


def test_a_batch_of_quotes_takes_one_request_and_an_unknown_symbol_fails_alone(fake_api):
    fake_api.route("/quote", fixture_json("twelvedata/quote_batch.json"))
    nope = Asset("NOPE", "STOCK")
    batch = provider(fake_api).quotes([AAPL, EURUSD, BTC, nope])
    assert len(fake_api.requests_to("/quote")) == 1
    assert fake_api.requests_to("/quote")[0].query["symbol"] == "AAPL,EUR/USD,BTC/USD,NOPE"
    prices = {q.symbol: (str(q.price), q.currency, q.date) for q in batch.quotes}
    assert prices == {"AAPL": ("183.05000", "USD", date(2024, 5, 10)),
                      "EUR/USD": ("1.07700", "USD", date(2024, 5, 10)),
                      "BTC": ("61463.77000", "USD", date(2024, 5, 12))}
    assert list(batch.failures) == [nope]
    assert isinstance(batch.failures[nope], NotFoundError)


def test_eight_assets_fit_in_one_quote_request(fake_api):
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOG", "TSLA", "AVGO"]
    quote = fixture_json("twelvedata/quote_aapl.json")
    serve_quotes(fake_api, {s: dict(quote, symbol=s) for s in symbols})
    td = provider(fake_api)
    batch = td.quotes([Asset(s, "STOCK") for s in symbols])
    assert td.limits.max_batch == 8
    assert len(batch.quotes) == 8 and len(fake_api.requests_to("/quote")) == 1


def test_a_symbol_missing_from_a_batch_answer_fails_alone(fake_api):
    fake_api.route("/quote", {"AAPL": fixture_json("twelvedata/quote_aapl.json")})
    batch = provider(fake_api).quotes([AAPL, Asset("MSFT", "STOCK")])
    assert [q.symbol for q in batch.quotes] == ["AAPL"]
    assert isinstance(batch.failures[Asset("MSFT", "STOCK")], NotFoundError)


def test_an_unknown_single_symbol_is_a_failure_not_an_exception(fake_api):
    fake_api.route("/quote", fixture_json("twelvedata/error_404_symbol.json"))
    batch = provider(fake_api).quotes([Asset("ZZZZZ", "STOCK")])
    assert batch.quotes == [] and isinstance(batch.failures[Asset("ZZZZZ", "STOCK")], NotFoundError)


@pytest.mark.parametrize("fixture, expected", [
    ("error_401_invalid_key.json", FatalError),
    ("error_429_minute.json", RateLimitedError),
    ("error_429_day.json", QuotaExhaustedError),
])
def test_a_whole_batch_refused_raises_the_typed_error(fake_api, fixture, expected):
    fake_api.route("/quote", fixture_json(f"twelvedata/{fixture}"))
    error = error_of(lambda: provider(fake_api).quotes([AAPL, EURUSD]))
    assert type(error) is expected and KEY not in str(error)


def test_a_price_in_pence_is_stored_in_pounds(fake_api):
    serve_quotes(fake_api, {"VOD": fixture_json("twelvedata/quote_vod_gbp_pence.json")})
    [quote] = provider(fake_api).quotes([Asset("VOD", "STOCK")]).quotes
    assert (quote.currency, quote.price, quote.change, quote.high) == \
           ("GBP", Decimal("0.7156"), Decimal("0.0114"), Decimal("0.7198"))
    assert quote.percent_change == Decimal("1.61886")


def test_the_session_is_paced_to_the_free_plan_rate(fake_api):
    settings = Settings.from_env({"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": KEY},
                                 dotenv=False)
    assert make_provider("twelvedata", settings).session.limiter.interval == pytest.approx(60 / 8)


def test_the_provider_needs_its_key():
    from etl.errors import MissingKeyError
    settings = Settings.from_env({"ETL_HTTP_BACKOFF": "0.01"}, dotenv=False)
    with pytest.raises(MissingKeyError, match="TWELVE_DATA_API_KEY"):
        make_provider("twelvedata", settings)

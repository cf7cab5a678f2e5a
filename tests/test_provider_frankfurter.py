"""The Frankfurter provider against a loopback server answering in Frankfurter's v1 format."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from etl.errors import NotFoundError
from etl.models import Asset
from etl.providers.frankfurter import parse_history
from etl.validate import validate_bars
from support.fake_api import Response, fixture_json, fixture_text
from support.providers import build_provider

EURUSD = Asset("EUR/USD", "FOREX")
EURGBP = Asset("EUR/GBP", "FOREX")
EURJPY = Asset("EUR/JPY", "FOREX")
USDJPY = Asset("USD/JPY", "FOREX")


@pytest.fixture
def frankfurter(fake_api):
    return provider_for(fake_api)


def provider_for(fake_api, **extra):
    return build_provider("frankfurter", fake_api.base_url, **extra)


def served_rates(name: str, currency: str) -> dict[date, Decimal]:
    body = json.loads(fixture_text(f"frankfurter/{name}"), parse_float=Decimal)
    return {date.fromisoformat(day): rates[currency] for day, rates in body["rates"].items()}


def latest_like_the_api(request):
    """/latest as Frankfurter answers it: the requested symbols of the base, or 404 if one is unknown."""
    body = fixture_json(f"frankfurter/latest_{request.query['base']}.json")
    wanted = request.query["symbols"].split(",")
    if any(symbol not in body["rates"] for symbol in wanted):
        return Response(status=404, body=fixture_json("frankfurter/not_found.json"))
    text = fixture_text(f"frankfurter/latest_{request.query['base']}.json")
    for symbol in set(body["rates"]) - set(wanted):
        text = re.sub(rf'"{symbol}":[0-9.]+,?', "", text).replace(",}", "}")
    return Response(body=text)


def serve_latest(fake_api) -> None:
    fake_api.route("/latest", latest_like_the_api)


# ---- history ----

def test_history_rates_equal_the_served_values_to_the_last_digit(frankfurter, fake_api):
    fake_api.route("/2024-01-01..2024-01-10", fixture_text("frankfurter/timeseries_EUR_USD.json"))
    bars = frankfurter.history(EURUSD, date(2024, 1, 1), date(2024, 1, 10))
    expected = {day: rate for day, rate in served_rates("timeseries_EUR_USD.json", "USD").items()
                if day >= date(2024, 1, 1)}
    assert {bar.date: bar.price for bar in bars} == expected
    assert [str(bar.price) for bar in bars] == [str(rate) for rate in expected.values()]
    assert {(bar.currency, bar.source, bar.open, bar.high, bar.low) for bar in bars} == {
        ("USD", "frankfurter", None, None, None)}


def test_history_asks_the_documented_time_series_path_with_base_and_symbol(frankfurter, fake_api):
    fake_api.route("/2024-01-01..2024-01-10", fixture_text("frankfurter/timeseries_EUR_USD.json"))
    frankfurter.history(EURUSD, date(2024, 1, 1), date(2024, 1, 10))
    (request,) = fake_api.requests
    assert (request.path, request.query) == ("/2024-01-01..2024-01-10", {"base": "EUR", "symbols": "USD"})


def test_the_working_day_before_the_range_is_left_out(frankfurter, fake_api):
    fake_api.route("/2024-01-01..2024-01-10", fixture_text("frankfurter/timeseries_EUR_USD.json"))
    bars = frankfurter.history(EURUSD, date(2024, 1, 1), date(2024, 1, 10))
    assert bars[0].date == date(2024, 1, 2)
    assert date(2023, 12, 29) not in [bar.date for bar in bars]


def test_a_pair_not_based_on_euro_asks_for_its_own_base(frankfurter, fake_api):
    fake_api.route("/2024-01-02..2024-01-05", fixture_text("frankfurter/timeseries_USD_JPY.json"))
    bars = frankfurter.history(USDJPY, date(2024, 1, 2), date(2024, 1, 5))
    assert fake_api.requests[0].query == {"base": "USD", "symbols": "JPY"}
    assert [bar.price for bar in bars] == list(served_rates("timeseries_USD_JPY.json", "JPY").values())
    assert {bar.currency for bar in bars} == {"JPY"}


def test_a_date_with_a_missing_or_bad_rate_is_dropped_and_counted():
    payload = json.loads(fixture_text("frankfurter/timeseries_EUR_USD.json"), parse_float=Decimal)
    payload["rates"]["2024-01-03"] = {}
    payload["rates"]["2024-01-04"]["USD"] = 0
    bars = parse_history(payload, EURUSD)
    result = validate_bars(bars, date(2023, 12, 29), date(2024, 1, 10), today=date(2024, 1, 31))
    assert result.reasons == {"missing price": 1, "non-positive price": 1}
    assert len(result.rows) == 6


# ---- quotes ----

def test_pairs_with_one_base_take_one_latest_request(frankfurter, fake_api):
    serve_latest(fake_api)
    batch = frankfurter.quotes([EURUSD, EURGBP, EURJPY])
    (request,) = fake_api.requests_to("/latest")
    assert request.query == {"base": "EUR", "symbols": "USD,GBP,JPY"}
    assert {q.symbol: q.price for q in batch.quotes} == {
        "EUR/USD": Decimal("1.0921"), "EUR/GBP": Decimal("0.86025"), "EUR/JPY": Decimal("158.36")}
    assert not batch.failures


def test_pairs_are_batched_by_base_currency(frankfurter, fake_api):
    serve_latest(fake_api)
    batch = frankfurter.quotes([EURUSD, USDJPY, EURGBP])
    assert sorted((r.query["base"], r.query["symbols"]) for r in fake_api.requests_to("/latest")) == [
        ("EUR", "USD,GBP"), ("USD", "JPY")]
    assert {q.symbol for q in batch.quotes} == {"EUR/USD", "USD/JPY", "EUR/GBP"}


def test_a_quote_is_the_rate_of_its_date_published_at_16_berlin(frankfurter, fake_api):
    serve_latest(fake_api)
    quote = frankfurter.quotes([EURUSD]).quotes[0]
    assert quote.date == date(2024, 1, 5)
    assert quote.as_of == datetime(2024, 1, 5, 15, 0, tzinfo=timezone.utc)   # 16:00 CET in winter
    assert (quote.currency, quote.source, quote.name) == ("USD", "frankfurter", "EUR/USD")


def test_summer_quotes_are_published_at_16_berlin_summer_time(frankfurter, fake_api):
    body = fixture_json("frankfurter/latest_EUR.json")
    body["date"] = "2024-06-14"
    fake_api.route("/latest", body)
    quote = frankfurter.quotes([EURUSD]).quotes[0]
    assert quote.as_of == datetime(2024, 6, 14, 14, 0, tzinfo=timezone.utc)


def test_an_unknown_currency_in_a_batch_fails_alone(frankfurter, fake_api):
    serve_latest(fake_api)
    unknown = Asset("EUR/XYZ", "FOREX")
    batch = frankfurter.quotes([EURUSD, unknown, EURGBP])
    assert {q.symbol for q in batch.quotes} == {"EUR/USD", "EUR/GBP"}
    assert list(batch.failures) == [unknown]
    assert isinstance(batch.failures[unknown], NotFoundError)


def test_a_symbol_that_is_not_a_pair_fails_without_a_request(frankfurter, fake_api):
    serve_latest(fake_api)
    batch = frankfurter.quotes([Asset("EURUSD", "FOREX")])
    assert batch.quotes == [] and fake_api.requests == []
    assert "BASE/QUOTE" in str(next(iter(batch.failures.values())))



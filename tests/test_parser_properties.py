"""Whatever an API answers, reading it gives rows or the provider's typed error, nothing else.

Hypothesis feeds every provider's history and quote reading arbitrary JSON and
mutations of the real recorded answers in tests/fixtures/<provider>/ (a value
anywhere replaced by another JSON value, a number no float holds such as 1e400,
NaN or Infinity, a list where an object was). Each answer is served by a loopback
server and read by the provider as the product builds it; the rows it returns
then pass through validation, which must not raise either. Derandomized with a
bounded number of examples, so the test is fast and the same on every run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from etl.errors import EtlError
from etl.models import Asset, Bar, Quote
from etl.providers.base import QuoteBatch
from etl.validate import validate_bars, validate_quotes
from support.fake_api import FakeApi, Response, fixture_json
from support.providers import KEYS, build_provider

TODAY = date.today()
RAW = "__raw_number__"
# Numbers JSON can say and a float cannot hold; the product parses numbers as Decimal from their text.
RAW_NUMBERS = ["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "1e999999999", "-0",
               "123456789012345678901234567890.123456789", "0.000000000000000000001"]
EXAMPLES = 40


@dataclass(frozen=True)
class Reading:
    """One way a provider reads an answer: the assets asked for and the recorded answer it expects."""

    provider: str
    operation: str            # "history" or "quotes"
    assets: tuple[Asset, ...]
    fixture: str
    start: date = date(2000, 1, 1)   # history from: back to the recorded days, within the provider's depth
    end: date = TODAY                # … through; with `clock`, the provider's today (CoinGecko's depth)
    clock: datetime | None = None

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.operation}"


READINGS = [
    Reading("yahoo", "history", (Asset("AAPL", "STOCK"),), "yahoo/chart_AAPL_split_2020.json"),
    Reading("yahoo", "quotes", (Asset("AAPL", "STOCK"), Asset("VOD.L", "STOCK"), Asset("BTC", "CRYPTO")),
            "yahoo/spark_quotes.json"),
    Reading("twelvedata", "history", (Asset("AAPL", "STOCK"),), "twelvedata/time_series_aapl.json"),
    Reading("twelvedata", "quotes", (Asset("AAPL", "STOCK"), Asset("EUR/USD", "FOREX"), Asset("BTC", "CRYPTO")),
            "twelvedata/quote_batch.json"),
    Reading("coingecko", "history", (Asset("BTC", "CRYPTO"),), "coingecko/market_chart_range_bitcoin.json",
            end=date(2024, 5, 14), clock=datetime(2024, 5, 14, 12, tzinfo=timezone.utc)),
    Reading("coingecko", "quotes", (Asset("BTC", "CRYPTO"), Asset("ETH", "CRYPTO")), "coingecko/simple_price.json"),
    Reading("frankfurter", "history", (Asset("EUR/USD", "FOREX"),), "frankfurter/timeseries_EUR_USD.json"),
    Reading("frankfurter", "quotes", (Asset("EUR/USD", "FOREX"), Asset("EUR/JPY", "FOREX")),
            "frankfurter/latest_EUR.json"),
    Reading("alphavantage", "history", (Asset("IBM", "STOCK", currency="USD"),), "alphavantage/time_series_daily_ibm.json",
            start=TODAY - timedelta(days=30)),
    Reading("alphavantage", "quotes", (Asset("IBM", "STOCK", currency="USD"),), "alphavantage/global_quote_ibm.json"),
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from([RAW + n for n in RAW_NUMBERS]),
    st.sampled_from(["", "null", "2024-02-30", "not a date", "12.5%", "1e400", "NaN", "-5", "0"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)


def encoded(body: Any) -> str:
    """`body` as JSON text, with each RAW marker written as the bare number it names."""
    return re.sub(r'"' + RAW + r'([^"]*)"', r"\1", json.dumps(body))


@st.composite
def mutated(draw, original: Any) -> Any:
    """`original` with one to three values somewhere inside it replaced, removed or wrapped."""
    body = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        body = _mutate_once(draw, body)
    return body


def _mutate_once(draw, node: Any) -> Any:
    children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    if children and draw(st.integers(min_value=0, max_value=4)) > 0:
        key, child = children[draw(st.integers(min_value=0, max_value=len(children) - 1))]
        action = draw(st.sampled_from(["descend", "descend", "descend", "remove"]))
        if action == "remove":
            node.pop(key)
        else:
            node[key] = _mutate_once(draw, child)
        return node
    return draw(st.one_of(json_values, st.just([node]), st.just({"unexpected": node})))


@pytest.fixture(scope="module")
def api():
    server = FakeApi()
    yield server
    server.close()


def read(reading: Reading, base_url: str) -> Any:
    """What the provider makes of the served answer: its rows, or the typed error it raised."""
    provider = build_provider(reading.provider, base_url, key=KEYS.get(reading.provider), paced=False,
                              ETL_HTTP_RETRIES="0")
    if reading.clock is not None:
        provider.clock = lambda: reading.clock
    try:
        if reading.operation == "history":
            return provider.history(reading.assets[0], reading.start, reading.end)
        return provider.quotes(list(reading.assets))
    except EtlError as exc:
        return exc


def check_contained(reading: Reading, api: FakeApi, body: Any) -> None:
    api.route(re.compile(".*"), Response(body=encoded(body)))
    got = read(reading, api.base_url)
    if isinstance(got, EtlError):
        assert reading.provider in str(got)
        return
    if reading.operation == "history":
        assert isinstance(got, list) and all(isinstance(bar, Bar) for bar in got)
        validate_bars(got, reading.start, reading.end, TODAY)
    else:
        assert isinstance(got, QuoteBatch) and all(isinstance(quote, Quote) for quote in got.quotes)
        assert all(isinstance(error, EtlError) and reading.provider in str(error) for error in got.failures.values())
        validate_quotes(got.quotes, TODAY)


PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("reading", READINGS, ids=lambda reading: reading.id)
@PROPERTY_SETTINGS
@given(body=json_values)
def test_arbitrary_json_gives_rows_or_the_typed_error(api, reading, body):
    check_contained(reading, api, body)


@pytest.mark.parametrize("reading", READINGS, ids=lambda reading: reading.id)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_mutated_recorded_answer_gives_rows_or_the_typed_error(api, reading, data):
    check_contained(reading, api, data.draw(mutated(fixture_json(reading.fixture))))


@pytest.mark.parametrize("reading", READINGS, ids=lambda reading: reading.id)
def test_the_recorded_answer_itself_gives_rows(api, reading):
    """The mutations start from answers the providers read: otherwise they would prove little."""
    api.route(re.compile(".*"), Response(body=encoded(fixture_json(reading.fixture))))
    got = read(reading, api.base_url)
    assert not isinstance(got, EtlError), got
    assert got if reading.operation == "history" else got.quotes

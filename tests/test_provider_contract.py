"""What every provider must do with what an API can answer: the contract, tested once over all of them.

Each provider is asked for one asset's history and for its quote while a
loopback server gives every request the same answer (a fault). Whatever the
API, a fault ends in the same typed error of `etl.errors` — raised, or (for
quotes) reported as that asset's failure — with a message that names the
provider and never the API key. What is particular to one API (its symbols,
its formats, its own error wording) stays in its test_provider_<name>.py.

To extend the contract, add a `Fault` to FAULTS (or an `EmptyAnswer` to
EMPTY_ANSWERS); to add a provider, add its `Api` to APIS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable

import pytest

from etl.errors import EtlError, FatalError, NotFoundError, ProviderUnavailableError, RateLimitedError, RetryableError
from etl.models import Asset
from etl.providers import PROVIDERS
from etl.providers.base import Provider
from support.fake_api import Response, fixture_json
from support.providers import KEYS, build_provider

ANY_PATH = re.compile(r".*")
# Recent days: inside every free plan's history depth (CoinGecko 365 days, Alpha Vantage's compact series).
END = date.today() - timedelta(days=3)
START = END - timedelta(days=7)


@dataclass(frozen=True)
class Api:
    """How one provider's API says what the contract covers, and an asset it serves."""

    name: str
    asset: Asset
    bad_key: Response      # its answer to a wrong key (keyless APIs: access refused)
    not_found: Response    # its answer for an unknown symbol
    no_rows: Response      # a well-formed answer holding no data
    # What a refused key (or refused access) ends in: a bad key stops the job; Yahoo, keyless, renews
    # its session once and is then down for the run, never fatal.
    refused: type[EtlError] = FatalError

    @property
    def key(self) -> str | None:
        return KEYS.get(self.name) if PROVIDERS[self.name].key_variable else None

    def provider(self, base_url: str) -> Provider:
        return build_provider(self.name, base_url, key=self.key, paced=False, ETL_HTTP_RETRIES="1")


def fixture(relative: str, status: int = 200) -> Response:
    return Response(status=status, body=fixture_json(relative))


APIS = {api.name: api for api in (
    Api("yahoo", Asset("AAPL", "STOCK"),
        bad_key=Response(status=401, body={"finance": {"result": None, "error": {
            "code": "Unauthorized", "description": "Invalid Crumb"}}}),
        not_found=fixture("yahoo/chart_not_found.json", 404),
        no_rows=Response(body={"chart": {"result": [{"meta": {"currency": "USD", "symbol": "AAPL",
                                                              "exchangeTimezoneName": "America/New_York"},
                                                     "indicators": {"quote": [{}]}}], "error": None}}),
        refused=ProviderUnavailableError),
    Api("twelvedata", Asset("AAPL", "STOCK"),
        bad_key=fixture("twelvedata/error_401_invalid_key.json"),
        not_found=fixture("twelvedata/error_404_symbol.json"),
        no_rows=Response(body={"meta": {"symbol": "AAPL", "interval": "1day", "currency": "USD"}, "values": [],
                               "status": "ok"})),
    Api("coingecko", Asset("BTC", "CRYPTO"),
        bad_key=fixture("coingecko/error_10011_wrong_key.json", 401),
        not_found=fixture("coingecko/coin_not_found.json", 404),
        no_rows=Response(body={"prices": [], "market_caps": [], "total_volumes": []})),
    Api("frankfurter", Asset("EUR/USD", "FOREX"),
        bad_key=Response(status=403, body="<html><body><h1>403 Forbidden</h1></body></html>",
                         content_type="text/html"),
        not_found=fixture("frankfurter/not_found.json", 404),
        no_rows=Response(body={"amount": 1.0, "base": "EUR", "start_date": START.isoformat(),
                               "end_date": END.isoformat(), "rates": {}})),
    Api("alphavantage", Asset("IBM", "STOCK", currency="USD"),
        bad_key=fixture("alphavantage/error_invalid_key.json"),
        not_found=fixture("alphavantage/error_invalid_call.json"),
        no_rows=Response(body={"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {}})),
)}


@dataclass(frozen=True)
class Fault:
    """An answer every API may give, and the typed error it must end in."""

    name: str
    answer: Callable[[Api], Response]
    expected: type[EtlError] | Callable[[Api], type[EtlError]]   # or what it is for each API
    says: Callable[[Api], str] = lambda api: api.name   # a phrase the message must hold

    def expected_for(self, api: Api) -> type[EtlError]:
        return self.expected if isinstance(self.expected, type) else self.expected(api)


def key_hint(api: Api) -> str:
    variable = PROVIDERS[api.name].key_variable
    return f"check {variable}" if variable else "refused"


HTML_PAGE = "<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"

FAULTS = [
    Fault("bad key", lambda api: api.bad_key, lambda api: api.refused, key_hint),
    Fault("429", lambda api: Response(status=429, body={"error": "Too Many Requests"}), RateLimitedError),
    Fault("5xx page", lambda api: Response(status=503, body=HTML_PAGE.format(title="503 Service Unavailable"),
                                           content_type="text/html"), RetryableError, lambda api: "503"),
    Fault("HTML page with 200", lambda api: Response(body=HTML_PAGE.format(title="Maintenance"),
                                                     content_type="text/html"), RetryableError),
    Fault("not found", lambda api: api.not_found, NotFoundError),
    Fault("malformed: not an object", lambda api: Response(body=["unexpected"]), RetryableError),
    Fault("malformed: truncated JSON", lambda api: Response(body=json.dumps(api.no_rows.body)[:-3]), RetryableError),
]


def history(provider: Provider, asset: Asset) -> Any:
    return provider.history(asset, START, END)


def quote(provider: Provider, asset: Asset) -> Any:
    batch = provider.quotes([asset])
    return batch.failures.get(asset) or batch.quotes


OPERATIONS = {"history": history, "quote": quote}


def outcome(operation: Callable[[Provider, Asset], Any], provider: Provider, asset: Asset) -> Any:
    """What the call gave: its rows, or the error it raised or reported for the asset."""
    try:
        return operation(provider, asset)
    except EtlError as exc:
        return exc


def with_key_echoed(response: Response, key: str) -> Response:
    """`response` with the key written after every message (text with a space) in its body, as some
    APIs quote it back."""
    def echo(value: Any) -> Any:
        if isinstance(value, str) and " " in value:
            return f"{value} (your key: {key})"
        if isinstance(value, dict):
            return {k: echo(v) for k, v in value.items()}
        if isinstance(value, list):
            return [echo(v) for v in value]
        return value
    return Response(status=response.status, body=echo(response.body), headers=response.headers,
                    content_type=response.content_type)


def test_every_registered_provider_is_under_the_contract():
    assert list(APIS) == list(PROVIDERS)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
@pytest.mark.parametrize("name", APIS)
def test_a_fault_ends_in_its_typed_error_saying_what_failed(fake_api, name, fault, operation):
    api = APIS[name]
    fake_api.route(ANY_PATH, fault.answer(api))
    error = outcome(OPERATIONS[operation], api.provider(fake_api.base_url), api.asset)
    assert isinstance(error, fault.expected_for(api)), error
    assert name in str(error) and fault.says(api) in str(error)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
@pytest.mark.parametrize("name", [name for name in APIS if APIS[name].key])
def test_the_api_key_never_appears_in_an_error_message(fake_api, name, fault, operation):
    api = APIS[name]
    answer = fault.answer(api)
    if not isinstance(answer.body, (dict, list)):
        answer = Response(status=answer.status, body=f"{answer.body} (your key: {api.key})",
                          content_type=answer.content_type)
    fake_api.route(ANY_PATH, with_key_echoed(answer, api.key))
    error = outcome(OPERATIONS[operation], api.provider(fake_api.base_url), api.asset)
    assert isinstance(error, EtlError) and api.key not in str(error)


@dataclass(frozen=True)
class EmptyAnswer:
    """An answer with nothing in it, and what each provider's history makes of it today.

    What an empty answer should mean (no data for the range, or a fault) is
    the corporate-actions issue's decision; change `today` when it is made.
    """

    name: str
    answer: Callable[[Api], Response]
    today: dict[str, Any]   # provider → the bars ([]) or the error class


EMPTY_ANSWERS = [
    EmptyAnswer("no rows", lambda api: api.no_rows, {name: [] for name in APIS}),
    EmptyAnswer("an empty object", lambda api: Response(body={}),
                {"yahoo": RetryableError, "twelvedata": [], "coingecko": RetryableError,
                 "frankfurter": RetryableError, "alphavantage": []}),
]


@pytest.mark.parametrize("empty", EMPTY_ANSWERS, ids=lambda empty: empty.name)
@pytest.mark.parametrize("name", APIS)
def test_an_empty_answer_gives_what_it_gives_today(fake_api, name, empty):
    api = APIS[name]
    fake_api.route(ANY_PATH, empty.answer(api))
    got = outcome(history, api.provider(fake_api.base_url), api.asset)
    expected = empty.today[name]
    if isinstance(expected, list):
        assert got == expected
    else:
        assert isinstance(got, expected) and name in str(got)


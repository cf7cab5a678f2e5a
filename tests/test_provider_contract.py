"""What every provider must do with what an API can answer: the contract, tested once over all of them.

Each provider is asked for one asset's history and for its quote while a
loopback server gives every request the same answer (a fault). Whatever the
API, a fault ends in the same typed error of `etl.errors` — raised, or (for
quotes) reported as that asset's failure — with a message that names the
provider and never the API key. What is particular to one API (its symbols,
its formats, its own error wording) stays in its test_provider_<name>.py.

The fault matrix: every fault of FAULTS (a whole answer) and BAD_VALUES (one
asset's part of an otherwise healthy answer), for every provider whose format
can say it, for history and for quotes, checked twice. At the provider level
the provider gives rows that validation keeps or drops as the fault's `Fate`
says, or its typed error. At the run level a real job runs in-process against
every API on one loopback server (`support.market_apis`) and the test
database, with the faulty asset F beside a healthy neighbour H of the same
provider (and, for quotes, an asset O of another provider): nothing but what a
healthy answer gives is stored, only F failed or lost its bad day (a quote
batch also costs the neighbour that shared its broken answer, nothing more),
and once the fault is gone the next run asks for exactly what is missing.

To extend the contract, add a `Fault` to FAULTS or a `BadValue` to BAD_VALUES
(or an `EmptyAnswer` to EMPTY_ANSWERS); to add a provider, add its `Api` to APIS
and its format to support/market_apis.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import pytest

from etl.config import PROVIDER_VARIABLES_BY_TYPE
from etl.errors import EtlError, FatalError, NotFoundError, ProviderUnavailableError, RateLimitedError, RetryableError
from etl.models import Asset
from etl.providers import PROVIDERS
from etl.providers.base import Provider
from etl.validate import validate_bars, validate_quotes
from support.db import rows, scalar
from support.fake_api import Request, Response, fixture_json
from support.market_apis import Day, MarketApis, Spoil, Tick
from support.providers import KEYS, build_provider
from support.runner import UNREACHABLE, run_etl


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def last_friday(on_or_before: date) -> date:
    return on_or_before - timedelta(days=(on_or_before.weekday() - 4) % 7)


ANY_PATH = re.compile(r".*")
# Two whole trading weeks, Monday to Friday, at least five days old: inside every free plan's history
# depth (CoinGecko 365 days, Alpha Vantage's compact series) and older than the look-back window, so a
# run that stored them all has nothing left to ask.
END = last_friday(utc_today() - timedelta(days=5))
START = END - timedelta(days=11)
BAD_DAY = START + timedelta(days=2)          # the Wednesday of the first week: the day a bad value breaks
RETRIES = 1                                  # each run retries once: a fault that persists comes back


@dataclass(frozen=True)
class Api:
    """How one provider's API says what the contract covers, an asset it serves and a neighbour of it."""

    name: str
    asset: Asset
    bad_key: Response      # its answer to a wrong key (keyless APIs: access refused)
    not_found: Response    # its answer for an unknown symbol
    no_rows: Response      # a well-formed answer holding no data
    neighbour: Asset       # another asset it serves the same way (in the same quote request when it batches)
    # What a refused key (or refused access) ends in: a bad key stops the job; Yahoo, keyless, renews
    # its session once and is then down for the run, never fatal.
    refused: type[EtlError] = FatalError

    @property
    def key(self) -> str | None:
        return KEYS.get(self.name) if PROVIDERS[self.name].key_variable else None

    def provider(self, base_url: str) -> Provider:
        """The provider as the contract asks it: no retry (the same answer comes back), a short wait
        (yet one a loaded machine's loopback answer fits in: 0.2 s did not always)."""
        return build_provider(self.name, base_url, key=self.key, paced=False, timeout=1.0, ETL_HTTP_RETRIES="0")

    def symbol(self, asset: Asset) -> str:
        """What the API calls `asset` (what its requests carry)."""
        return self.provider(UNREACHABLE).provider_symbol(asset)

    @property
    def batches(self) -> bool:
        """Whether one quote request carries the asset and its neighbour."""
        return PROVIDERS[self.name].limits.max_batch > 1


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
        neighbour=Asset("MSFT", "STOCK"), refused=ProviderUnavailableError),
    Api("twelvedata", Asset("AAPL", "STOCK"),
        bad_key=fixture("twelvedata/error_401_invalid_key.json"),
        not_found=fixture("twelvedata/error_404_symbol.json"),
        no_rows=Response(body={"meta": {"symbol": "AAPL", "interval": "1day", "currency": "USD"}, "values": [],
                               "status": "ok"}),
        neighbour=Asset("MSFT", "STOCK")),
    Api("coingecko", Asset("BTC", "CRYPTO"),
        bad_key=fixture("coingecko/error_10011_wrong_key.json", 401),
        not_found=fixture("coingecko/coin_not_found.json", 404),
        no_rows=Response(body={"prices": [], "market_caps": [], "total_volumes": []}),
        neighbour=Asset("ETH", "CRYPTO")),
    Api("frankfurter", Asset("EUR/USD", "FOREX"),
        bad_key=Response(status=403, body="<html><body><h1>403 Forbidden</h1></body></html>",
                         content_type="text/html"),
        not_found=fixture("frankfurter/not_found.json", 404),
        no_rows=Response(body={"amount": 1.0, "base": "EUR", "start_date": START.isoformat(),
                               "end_date": END.isoformat(), "rates": {}}),
        neighbour=Asset("EUR/GBP", "FOREX")),
    Api("alphavantage", Asset("IBM", "STOCK", currency="USD"),
        bad_key=fixture("alphavantage/error_invalid_key.json"),
        not_found=fixture("alphavantage/error_invalid_call.json"),
        no_rows=Response(body={"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {}}),
        neighbour=Asset("MSFT", "STOCK", currency="USD")),
)}


def other_asset(name: str) -> tuple[str, Asset]:
    """An asset of another provider than `name` (and of another type), for a quote run to load beside."""
    return ("yahoo", Asset("VOO", "ETF")) if name == "frankfurter" else ("frankfurter", Asset("GBP/USD", "FOREX"))


@dataclass(frozen=True)
class Fault:
    """An answer every API may give, and the typed error it must end in.

    `one_asset`: whether it is the asset's failure alone (a bad key is the run's: it stops the job).
    `asked_alone`: APIs that, given this answer to a batch of quotes, ask each asset of it alone
    (Frankfurter after a 404; Yahoo, taking it for a refusal of spark, through the chart endpoint),
    so that it costs only the asset it is about.
    """

    name: str
    answer: Callable[[Api], Response]
    expected: type[EtlError] | Callable[[Api], type[EtlError]]   # or what it is for each API
    says: Callable[[Api], str] = lambda api: api.name   # a phrase the message must hold
    one_asset: bool = True
    asked_alone: frozenset[str] = frozenset()

    def expected_for(self, api: Api) -> type[EtlError]:
        return self.expected if isinstance(self.expected, type) else self.expected(api)


def key_hint(api: Api) -> str:
    variable = PROVIDERS[api.name].key_variable
    return f"check {variable}" if variable else "refused"


HTML_PAGE = "<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"

FAULTS = [
    Fault("bad key", lambda api: api.bad_key, lambda api: api.refused, key_hint, one_asset=False),
    Fault("429 with Retry-After", lambda api: Response(status=429, body={"error": "Too Many Requests"},
                                                       headers={"Retry-After": "1"}), RateLimitedError,
          lambda api: "429"),
    Fault("500", lambda api: Response(status=500, body={"error": "Internal Server Error"}), RetryableError,
          lambda api: "500"),
    Fault("503 page", lambda api: Response(status=503, body=HTML_PAGE.format(title="503 Service Unavailable"),
                                           content_type="text/html"), RetryableError, lambda api: "503"),
    Fault("timeout", lambda api: Response(stall=30, body=api.no_rows.body), RetryableError,
          lambda api: "timed out"),
    Fault("connection reset", lambda api: Response(reset=True), RetryableError),
    Fault("HTML page with 200", lambda api: Response(body=HTML_PAGE.format(title="Maintenance"),
                                                     content_type="text/html"), RetryableError),
    Fault("not found", lambda api: api.not_found, NotFoundError, asked_alone=frozenset({"frankfurter", "yahoo"})),
    Fault("malformed: not an object", lambda api: Response(body=["unexpected"]), RetryableError,
          asked_alone=frozenset({"yahoo"})),
    Fault("malformed: truncated JSON", lambda api: Response(body=json.dumps(api.no_rows.body)[:-3]), RetryableError),
]


@dataclass(frozen=True)
class Fate:
    """What the contract makes of a bad value in one asset's answer.

    kind: "fails" — a typed error for the asset, nothing of that answer stored;
    "drops" — validation drops the bad row for `reason` (history: that day is
    missing, the asset succeeds, and the next run asks for the day again; quote:
    the asset fails as "failed validation", asked again on the next run);
    "ignores" — the bad row never reaches the table, everything healthy is stored;
    "keeps one" — one row for the duplicated day or quote, valued as one of the two;
    "empty" — nothing stored and no failure: the next run asks again.
    `whole_answer`: the value belongs to the whole answer (every asset of the request meets it).
    """

    kind: str
    reason: str = ""
    whole_answer: bool = False


FAILS, IGNORES, KEEPS_ONE, EMPTY = Fate("fails"), Fate("ignores"), Fate("keeps one"), Fate("empty")


def drops(reason: str, whole_answer: bool = False) -> Fate:
    return Fate("drops", reason, whole_answer)


def on_bad_day(day: Callable[[Day], list[Day]], tick: Callable[[Tick], list[Tick]]) -> Spoil:
    """A spoil that rewrites BAD_DAY of the asset's history with `day`, and its quote with `tick`."""
    return Spoil(days=lambda days: [row for d in days for row in (day(d) if d.date == BAD_DAY else [d])], tick=tick)


def price_of(value: Decimal | None) -> Spoil:
    return on_bad_day(lambda d: [replace(d, close=value)], lambda t: [replace(t, price=value)])


def future_day(days: list[Day]) -> list[Day]:
    return days + [replace(days[-1], date=utc_today() + timedelta(days=10))] if days else days


@dataclass(frozen=True)
class BadValue:
    """A value one asset's part of a healthy answer may hold, and its fate for history and quotes.

    `by_api` gives an API's own fate for ("api", "history" | "quote"); None where its format cannot
    say the value (no OHLC to be outside of; a date or a symbol is a key that cannot repeat).
    """

    name: str
    spoil: Spoil
    history: Fate
    quote: Fate
    by_api: dict[tuple[str, str], Fate | None] = field(default_factory=dict)

    def fate(self, api: str, operation: str) -> Fate | None:
        return self.by_api.get((api, operation), self.history if operation == "history" else self.quote)


NO_RANGE = {(api, operation): None for api in ("coingecko", "frankfurter") for operation in ("history", "quote")}
KEYED_BY_DATE = {(api, "history"): None for api in ("frankfurter", "alphavantage")}
KEYED_BY_SYMBOL = {(api, "quote"): None for api in ("twelvedata", "coingecko", "frankfurter", "alphavantage")}
NOT_FOUND_WITHOUT_A_PRICE = {("coingecko", "quote"): FAILS, ("frankfurter", "quote"): FAILS}

BAD_VALUES = [
    BadValue("null price", price_of(None), drops("missing price"), drops("missing price"), NOT_FOUND_WITHOUT_A_PRICE),
    BadValue("zero price", price_of(Decimal(0)), drops("non-positive price"), drops("non-positive price")),
    BadValue("negative price", price_of(Decimal(-5)), drops("non-positive price"), drops("non-positive price")),
    BadValue("NaN", price_of(Decimal("NaN")), drops("non-finite price"), drops("non-finite price")),
    BadValue("Infinity", price_of(Decimal("Infinity")), drops("non-finite price"), drops("non-finite price")),
    BadValue("1e400", price_of(Decimal("1e400")), drops("price out of bounds"), drops("price out of bounds")),
    BadValue("close outside the range",
             on_bad_day(lambda d: [replace(d, low=d.close + 5, high=d.close + 10)],
                        lambda t: [replace(t, low=t.price + 5, high=t.price + 10)]),
             drops("close outside low-high"), drops("close outside low-high"), NO_RANGE),
    BadValue("future date", Spoil(days=future_day, tick=lambda t: [replace(t, time=t.time + timedelta(days=10))]),
             IGNORES, drops("future date"), {("frankfurter", "quote"): drops("future date", whole_answer=True)}),
    BadValue("duplicated timestamp",
             on_bad_day(lambda d: [d, replace(d, close=d.close + 1, high=d.high + 1)],
                        lambda t: [t, replace(t, price=t.price + 1, high=t.high + 1)]),
             KEEPS_ONE, KEEPS_ONE, {**KEYED_BY_DATE, **KEYED_BY_SYMBOL}),
    BadValue("empty result", Spoil(days=lambda days: [], tick=lambda t: []), EMPTY, FAILS),
    BadValue("malformed structure", Spoil(malformed=True), FAILS, FAILS),
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
    return replace(response, body=echo(response.body))


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
        answer = replace(answer, body=f"{answer.body} (your key: {api.key})")
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


# ---- the fault matrix at the provider level ----

@pytest.fixture
def market_apis(fake_api) -> MarketApis:
    return MarketApis(fake_api)


def healthy_closes(api: Api, asset: Asset) -> dict[date, Decimal]:
    return MarketApis.closes(api.name, api.symbol(asset), START, END)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", [fault for fault in FAULTS if fault.one_asset], ids=lambda fault: fault.name)
@pytest.mark.parametrize("name", APIS)
def test_after_a_fault_about_one_asset_the_provider_still_serves_the_next(market_apis, name, fault, operation):
    api = APIS[name]
    market_apis.spoil(name, api.symbol(api.asset), Spoil(answer=fault.answer(api)))
    provider = api.provider(market_apis.base_url)
    assert isinstance(outcome(OPERATIONS[operation], provider, api.asset), fault.expected_for(api))
    if operation == "history":
        validated = validate_bars(provider.history(api.neighbour, START, END), START, END, utc_today())
        assert {bar.date: bar.price for bar in validated.rows} == healthy_closes(api, api.neighbour)
    else:
        batch = provider.quotes([api.neighbour])
        assert [quote.price for quote in batch.quotes] == [MarketApis.price(api.symbol(api.neighbour))], \
            batch.failures


def bad_value_cases(operation: str) -> list:
    return [pytest.param(name, bad, id=f"{name}-{bad.name}") for bad in BAD_VALUES for name in APIS
            if bad.fate(name, operation)]


@pytest.mark.parametrize("name, bad", bad_value_cases("history"))
def test_a_bad_value_in_a_history_answer_leaves_what_its_fate_says_or_a_typed_error(market_apis, name, bad):
    api = APIS[name]
    fate = bad.fate(name, "history")
    market_apis.spoil(name, api.symbol(api.asset), bad.spoil)
    got = outcome(history, api.provider(market_apis.base_url), api.asset)
    if fate.kind == "fails":
        assert isinstance(got, EtlError) and name in str(got), got
        return
    validated = validate_bars(got, START, END, utc_today())
    assert_history_fate({bar.date: bar.price for bar in validated.rows}, healthy_closes(api, api.asset), fate)
    if fate.kind == "drops":
        assert [problem for bar, problem in validated.rejected if START <= bar.date <= END] == [fate.reason]


@pytest.mark.parametrize("name, bad", bad_value_cases("quote"))
def test_a_bad_value_in_a_quote_answer_costs_that_quote_alone(market_apis, name, bad):
    api = APIS[name]
    fate = bad.fate(name, "quote")
    market_apis.spoil(name, api.symbol(api.asset), bad.spoil)
    batch = api.provider(market_apis.base_url).quotes([api.asset, api.neighbour])
    price, neighbour = MarketApis.price(api.symbol(api.asset)), MarketApis.price(api.symbol(api.neighbour))
    if fate.kind == "fails":
        error = batch.failures.get(api.asset)
        assert isinstance(error, EtlError) and name in str(error), error
    validated = validate_quotes(batch.quotes, utc_today())
    kept = {quote.symbol: quote.price for quote in validated.rows}
    if fate.kind == "drops":
        rejected = {api.asset.symbol} | ({api.neighbour.symbol} if fate.whole_answer else set())
        assert sorted((q.symbol, problem) for q, problem in validated.rejected) == \
            sorted((symbol, fate.reason) for symbol in rejected)
    if fate.kind == "keeps one":
        assert kept.pop(api.asset.symbol) in (price, price + 1)
    assert kept == ({} if fate.whole_answer else {api.neighbour.symbol: neighbour})


def assert_history_fate(closes: dict[date, Decimal], healthy: dict[date, Decimal], fate: Fate) -> None:
    """`closes` (day → close) are what `fate` leaves of the `healthy` ones."""
    closes = dict(closes)
    if fate.kind == "drops":
        assert closes == {day: close for day, close in healthy.items() if day != BAD_DAY}
    elif fate.kind == "ignores":
        assert closes == healthy
    elif fate.kind == "keeps one":
        assert closes.pop(BAD_DAY) in (healthy[BAD_DAY], healthy[BAD_DAY] + 1)
        assert closes == {day: close for day, close in healthy.items() if day != BAD_DAY}
    elif fate.kind in ("empty", "fails"):
        assert closes == {}
    else:
        raise AssertionError(f"no such fate: {fate.kind}")


# ---- the fault matrix: real runs ----

def run_cases(operation: str) -> list:
    """Every fault the matrix runs for `operation`, with every provider whose format can say it."""
    whole = [pytest.param(name, fault, id=f"{name}-{fault.name}") for fault in FAULTS if fault.one_asset
             for name in APIS]
    return whole + [pytest.param(name, bad, id=f"{name}-{bad.name}") for bad in BAD_VALUES for name in APIS
                    if bad.fate(name, operation)]


def fate_of(fault: Fault | BadValue, name: str, operation: str) -> Fate:
    """A whole answer gone wrong fails every asset of its request; a bad value has the fate it says."""
    if isinstance(fault, BadValue):
        return fault.fate(name, operation)
    return Fate("fails", whole_answer=name not in fault.asked_alone)


def spoil_of(fault: Fault | BadValue, api: Api) -> Spoil:
    return fault.spoil if isinstance(fault, BadValue) else Spoil(answer=fault.answer(api))


@pytest.fixture
def run_env(etl_env, monkeypatch, market_apis) -> dict[str, str]:
    """Every provider pointed at the loopback APIs with its key, unpaced, one retry, short waits."""
    env = {cls.base_url_variable: market_apis.base_url for cls in PROVIDERS.values()}
    env.update({cls.key_variable: KEYS[name] for name, cls in PROVIDERS.items() if cls.key_variable})
    env.update(PROVIDER_RATE_LIMITS=",".join(f"{name}=600000" for name in PROVIDERS), ETL_HTTP_RETRIES=str(RETRIES),
               ETL_HTTP_TIMEOUT="1")
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return env


def serve_with(monkeypatch, *pairs: tuple[str, Asset]) -> None:
    """Each asset's type served by its provider alone."""
    for name, asset in pairs:
        monkeypatch.setenv(PROVIDER_VARIABLES_BY_TYPE[asset.asset_type], name)


def stored_closes(db, asset: Asset) -> dict[date, Decimal]:
    return dict(rows(db, "SELECT date, price FROM market_data WHERE symbol = %s AND asset_type = %s",
                     (asset.symbol, asset.asset_type)))


def failures(db) -> dict[str, str]:
    failed = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") or []
    return {item["symbol"]: item["error"] for item in failed}


def backfill(*assets: Asset) -> int:
    return run_etl("fetch_historical_market_data", "--symbols", ",".join(asset.spec for asset in assets),
                   "--start", START.isoformat(), "--end", END.isoformat())


@pytest.mark.parametrize("name, fault", run_cases("history"))
def test_a_history_fault_costs_the_faulty_asset_alone_and_the_next_run_asks_only_what_is_missing(
        run_env, market_apis, db, monkeypatch, capsys, name, fault):
    api = APIS[name]
    fate = fate_of(fault, name, "history")
    serve_with(monkeypatch, (name, api.asset))
    faulty, healthy = api.symbol(api.asset), api.symbol(api.neighbour)
    market_apis.spoil(name, faulty, spoil_of(fault, api))

    code = backfill(api.asset, api.neighbour)
    assert code == (3 if fate.kind == "fails" else 0), capsys.readouterr().err
    failed = failures(db)
    assert list(failed) == ([api.asset.symbol] if fate.kind == "fails" else [])
    assert all(name in error for error in failed.values()), failed
    assert stored_closes(db, api.neighbour) == healthy_closes(api, api.neighbour)
    after_fault = stored_closes(db, api.asset)
    assert_history_fate(after_fault, healthy_closes(api, api.asset), fate)

    market_apis.heal()
    assert backfill(api.asset, api.neighbour) == 0, capsys.readouterr().err
    missing = after_fault.keys() != healthy_closes(api, api.asset).keys()
    assert (market_apis.requests_about(name, faulty) > 0) == missing
    assert market_apis.requests_about(name, healthy) == 0
    assert_history_fate(stored_closes(db, api.asset), healthy_closes(api, api.asset),
                        KEEPS_ONE if fate == KEEPS_ONE else IGNORES)


@pytest.mark.parametrize("name, fault", run_cases("quote"))
def test_a_quote_fault_costs_the_assets_of_the_faulty_answer_alone(run_env, market_apis, db, monkeypatch, capsys,
                                                                    name, fault):
    api = APIS[name]
    fate = fate_of(fault, name, "quote")
    other_name, other = other_asset(name)
    serve_with(monkeypatch, (name, api.asset), (other_name, other))
    market_apis.spoil(name, api.symbol(api.asset), spoil_of(fault, api))

    code = run_etl("fetch_market_data", "--symbols", ",".join(a.spec for a in (api.asset, api.neighbour, other)))
    failing = ({api.asset} if fate.kind in ("fails", "drops") else set()) | \
        ({api.neighbour} if fate.whole_answer and api.batches else set())
    assert code == (3 if failing else 0), capsys.readouterr().err
    failed = failures(db)
    assert set(failed) == {asset.symbol for asset in failing}
    assert all(name in error for error in failed.values()), failed
    if fate.kind == "drops":
        assert f"failed validation ({fate.reason})" in failed[api.asset.symbol]
        assert "asked again on the next run" in failed[api.asset.symbol]
    for asset, provider in ((api.asset, api), (api.neighbour, api), (other, APIS[other_name])):
        price = MarketApis.price(provider.symbol(asset))
        stored = [close for close in stored_closes(db, asset).values()]
        if asset in failing:
            assert stored == [], asset
        elif asset == api.asset and fate == KEEPS_ONE:
            assert len(stored) == 1 and stored[0] in (price, price + 1)
        else:
            assert stored == [price], asset


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", APIS)
def test_an_unreachable_provider_is_asked_once_per_run_and_the_others_go_on(run_env, market_apis, db, monkeypatch,
                                                                           capsys, name, operation):
    api = APIS[name]
    other_name, other = other_asset(name)
    serve_with(monkeypatch, (name, api.asset), (other_name, other))
    monkeypatch.setenv(PROVIDERS[name].base_url_variable, UNREACHABLE)
    # Paced at its declared rate, as in production: unpaced, the assets' first requests would all be on
    # their way before the first of them is refused (requests already sent cannot be taken back).
    monkeypatch.setenv("PROVIDER_RATE_LIMITS", ",".join(f"{n}=600000" for n in PROVIDERS if n != name))
    assets = ",".join(asset.spec for asset in (api.asset, api.neighbour, other))
    if operation == "history":
        code = run_etl("fetch_historical_market_data", "--symbols", assets, "--start", START.isoformat(),
                       "--end", END.isoformat())
    else:
        code = run_etl("fetch_market_data", "--symbols", assets)
    err = capsys.readouterr().err
    assert code == 3, err
    assert scalar(db, "SELECT requests FROM provider_health WHERE provider = %s", (name,)) == RETRIES + 1, err
    assert len([line for line in err.splitlines() if "cannot connect" in line]) == 1, err
    failed = failures(db)
    assert set(failed) == {api.asset.symbol, api.neighbour.symbol}
    assert all(f"{name}: cannot connect" in error for error in failed.values()), failed
    assert stored_closes(db, other)


@dataclass(frozen=True)
class ActionsApi:
    """A provider that asks for a stock's corporate actions in requests of their own: how to tell them
    from its history request, and a good answer to that."""

    is_actions: Callable[[Request], bool]
    history: Response


ACTIONS_APIS = {
    "twelvedata": ActionsApi(lambda request: request.path in ("/splits", "/dividends"),
                             fixture("twelvedata/time_series_aapl.json")),
    "alphavantage": ActionsApi(lambda request: request.query.get("function") in ("SPLITS", "DIVIDENDS"),
                               fixture("alphavantage/time_series_daily_ibm.json")),
}
ACTIONS_IN_THE_HISTORY_ANSWER = {"yahoo"}   # its chart answer holds them: no request of their own


def test_every_provider_reporting_corporate_actions_is_under_the_contract():
    assert set(ACTIONS_APIS) | ACTIONS_IN_THE_HISTORY_ANSWER == {name for name, cls in PROVIDERS.items()
                                                                 if cls.reports_actions}


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
@pytest.mark.parametrize("name", ACTIONS_APIS)
def test_a_fault_of_the_actions_requests_leaves_the_bars_with_the_actions_unchecked(fake_api, name, fault):
    """Only a bad key stops the job; any other fault costs the check (asked again later), never the bars."""
    api, actions = APIS[name], ACTIONS_APIS[name]
    fake_api.route(ANY_PATH, lambda request: fault.answer(api) if actions.is_actions(request) else actions.history)
    got = outcome(lambda provider, asset: provider.history_answer(asset, START, END),
                  api.provider(fake_api.base_url), api.asset)
    assert any(actions.is_actions(request) for request in fake_api.requests)
    if fault.expected_for(api) is FatalError:
        assert isinstance(got, FatalError) and name in str(got)
    else:
        assert got.bars and not got.checked_actions, got

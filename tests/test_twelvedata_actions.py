"""Twelve Data's splits and dividends (/splits, /dividends) when it serves a stock's or ETF's history.

First the provider against a loopback server answering in Twelve Data's documented format
(the fixtures), then the historical job end to end against a Twelve Data stand-in
(tests/support/twelvedata_server.py), reading the database and the run's event.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from etl.config import Settings
from etl.models import Asset, CorporateAction
from etl.pipeline.chain import ProviderChain
from etl.pipeline.provider_setup import make_provider
from etl.providers.twelvedata import ACTIONS_COST, parse_dividends, parse_splits
from support.db import rows, scalar
from support.fake_api import Response, fixture_json, fixture_text
from support.providers import KEYS, build_provider
from support.runner import run_etl
from support.twelvedata_server import TwelveDataServer

KEY = KEYS["twelvedata"]
AAPL = Asset("AAPL", "STOCK")
MSFT = Asset("MSFT", "STOCK")
WEEK = (date(2024, 5, 6), date(2024, 5, 10))
TODAY_UTC = "(now() AT TIME ZONE 'UTC')::date"


def provider(fake_api, rate: str = "twelvedata=60000", **extra):
    """Twelve Data at the loopback server under a per-minute limit that lets it ask for the actions."""
    return build_provider("twelvedata", fake_api.base_url, key=KEY, ETL_HTTP_RETRIES="1",
                          PROVIDER_RATE_LIMITS=rate, **extra)


def serve(fake_api, splits="splits_aapl.json", dividends="dividends_aapl.json", status=200):
    fake_api.route("/time_series", fixture_json("twelvedata/time_series_aapl.json"))
    fake_api.route("/splits", Response(status=status, body=fixture_json(f"twelvedata/{splits}")))
    fake_api.route("/dividends", Response(status=status, body=fixture_json(f"twelvedata/{dividends}")))


def as_parsed(relative: str):
    """A fixture as the provider reads it (numbers as Decimal, like fetch_utils.get_json)."""
    return json.loads(fixture_text(f"twelvedata/{relative}"), parse_float=Decimal)


def split(day: date, ratio: str) -> CorporateAction:
    return CorporateAction("AAPL", "STOCK", day, "split", "twelvedata", ratio=Decimal(ratio))


def dividend(day: date, amount: str, currency: str = "USD", symbol: str = "AAPL") -> CorporateAction:
    return CorporateAction(symbol, "STOCK", day, "dividend", "twelvedata", amount=Decimal(amount), currency=currency)


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not asked again in this run" in r.getMessage()]


# ---- the provider ----

def test_splits_are_read_as_shares_after_per_share_before_from_the_documented_factors():
    payload = as_parsed("splits_aapl.json")
    assert parse_splits(payload, AAPL) == [split(date(2020, 8, 31), "4"), split(date(2014, 6, 9), "7")]
    payload["splits"] = [{"date": "2023-01-03", "description": "1-for-10 split", "ratio": 10, "from_factor": 1,
                          "to_factor": 10},
                         {"date": "2021-07-01", "description": "3-for-2 split", "ratio": Decimal("0.66667"), "from_factor": 3,
                          "to_factor": 2},
                         {"date": "2019-01-02", "description": "2-for-1 split", "ratio": Decimal("0.5")}]
    assert parse_splits(payload, AAPL) == [split(date(2023, 1, 3), "0.1"), split(date(2021, 7, 1), "1.5"),
                                           split(date(2019, 1, 2), "2")]


def test_dividends_are_read_by_ex_date_as_paid_in_the_major_unit():
    payload = as_parsed("dividends_aapl.json")
    assert parse_dividends(payload, AAPL, "AAPL") == [
        dividend(date(2020, 11, 6), "0.205"), dividend(date(2020, 8, 7), "0.82"), dividend(date(2020, 5, 8), "0.82")]
    payload = {"meta": {"symbol": "VOD", "currency": "GBp"}, "dividends": [{"ex_date": "2024-06-06", "amount": Decimal("4.5")}]}
    vod = Asset("VOD", "STOCK")
    assert parse_dividends(payload, vod, "VOD") == [dividend(date(2024, 6, 6), "0.045", "GBP", "VOD")]


def test_stock_history_reports_every_split_and_dividend_asked_once_per_asset_and_run(fake_api):
    serve(fake_api)
    td = provider(fake_api)
    answer = td.history_answer(AAPL, *WEEK)
    again = td.history_answer(AAPL, *WEEK)
    assert [r.path for r in fake_api.requests] == ["/time_series", "/splits", "/dividends", "/time_series"]
    assert fake_api.requests_to("/splits")[0].query == {"symbol": "AAPL", "range": "full", "apikey": KEY}
    assert fake_api.requests_to("/dividends")[0].query == {"symbol": "AAPL", "range": "full", "adjust": "false",
                                                            "apikey": KEY}
    assert answer.checked_actions and again.checked_actions and len(answer.bars) == 5
    assert answer.actions == again.actions
    assert [(a.kind, a.date) for a in answer.actions] == [
        ("split", date(2020, 8, 31)), ("split", date(2014, 6, 9)), ("dividend", date(2020, 11, 6)),
        ("dividend", date(2020, 8, 7)), ("dividend", date(2020, 5, 8))]


def test_no_actions_are_asked_when_they_are_known_already_or_the_type_has_none(fake_api):
    serve(fake_api)
    fake_api.route("/time_series", fixture_json("twelvedata/time_series_eurusd.json"))
    td = provider(fake_api)
    known = td.history_answer(AAPL, *WEEK, actions=False)
    forex = td.history_answer(Asset("EUR/USD", "FOREX"), date(2024, 5, 8), date(2024, 5, 10))
    assert fake_api.requests_to("/splits") == [] and fake_api.requests_to("/dividends") == []
    assert not known.checked_actions and not forex.checked_actions and forex.bars


@pytest.mark.parametrize("status", [200, 403])
def test_a_plan_without_them_leaves_the_bars_unchecked_and_stops_them_for_the_run(fake_api, caplog, status):
    serve(fake_api, splits="error_403_endpoint_plan.json", status=status)
    td = provider(fake_api)
    first = td.history_answer(AAPL, *WEEK)
    second = td.history_answer(MSFT, *WEEK)
    assert len(first.bars) == 5 and len(second.bars) == 5
    assert (first.actions, first.checked_actions, second.checked_actions) == ([], False, False)
    assert len(fake_api.requests_to("/splits")) == 1 and fake_api.requests_to("/dividends") == []
    [said] = refusals(caplog)
    assert "/splits" in said and "not on this key's plan" in said and KEY not in said


def test_under_the_free_plan_rate_they_are_never_asked(fake_api, caplog):
    serve(fake_api)
    td = provider(fake_api, rate=f"twelvedata={ACTIONS_COST - 1}")
    answers = [td.history_answer(AAPL, *WEEK)]
    answers.append(td.history_answer(MSFT, *WEEK))
    assert [r.path for r in fake_api.requests] == ["/time_series", "/time_series"]
    assert not any(answer.checked_actions for answer in answers)
    [said] = refusals(caplog)
    assert f"{ACTIONS_COST} API credits each" in said and "PROVIDER_RATE_LIMITS" in said
    settings = Settings.from_env({}, dotenv=False)
    assert not type(td).asks_actions("STOCK", settings)     # the free plan's 8 a minute
    assert type(td).asks_actions("STOCK", Settings.from_env({"PROVIDER_RATE_LIMITS": "twelvedata=55"},
                                                            dotenv=False))


class Units:
    """A daily budget and a shared per-minute bucket that record the units each request reserves."""

    def __init__(self):
        self.reserved: list[int] = []

    def reserve(self, units: int = 1):
        self.reserved.append(units)
        return 0.0

    def hold(self, seconds: float) -> None:
        pass


def test_each_actions_request_reserves_its_credits_from_the_rate_limit_and_the_daily_budget(fake_api):
    serve(fake_api)
    budget, bucket = Units(), Units()
    settings = Settings.from_env({"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": KEY,
                                  "PROVIDER_RATE_LIMITS": "twelvedata=60000"}, dotenv=False)
    make_provider("twelvedata", settings, budget, bucket).history_answer(AAPL, *WEEK)
    assert budget.reserved == bucket.reserved == [1, ACTIONS_COST, ACTIONS_COST]


def test_the_chain_asks_no_actions_of_twelve_data_for_older_days_once_a_newer_part_checked_them(fake_api):
    """Alpha Vantage serves the newest 130 days with its SPLITS and DIVIDENDS; Twelve Data the older rest."""
    serve(fake_api)
    answers = {"TIME_SERIES_DAILY": "time_series_daily_ibm.json", "SPLITS": "splits_ibm.json",
               "DIVIDENDS": "dividends_ibm.json"}
    fake_api.route("/query", lambda request: fixture_json(f"alphavantage/{answers[request.query['function']]}"))
    settings = Settings.from_env({"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": KEY,
                                  "ALPHA_VANTAGE_BASE_URL": fake_api.base_url, "ALPHA_VANTAGE_API_KEY": "av-key",
                                  "STOCK_PROVIDERS": "alphavantage,twelvedata",
                                  "PROVIDER_RATE_LIMITS": "twelvedata=60000,alphavantage=60000"}, dotenv=False)
    today = utc_today()
    parts, _ = ProviderChain(settings).history_parts(Asset("IBM", "STOCK", currency="USD"),
                                                     today - timedelta(days=300), today, today=today)
    assert [(part.provider, part.answer.checked_actions) for part in parts] == [("alphavantage", True),
                                                                         ("twelvedata", False)]
    assert fake_api.requests_to("/time_series")
    assert fake_api.requests_to("/splits") == [] and fake_api.requests_to("/dividends") == []


# ---- the historical job ----

@pytest.fixture
def td(fake_api, etl_env, monkeypatch):
    """Twelve Data on the loopback server, the stocks' only provider, under a paid plan's rate and a daily budget."""
    for name, value in {"TWELVE_DATA_BASE_URL": fake_api.base_url, "TWELVE_DATA_API_KEY": KEY,
                        "STOCK_PROVIDERS": "twelvedata", "PROVIDER_RATE_LIMITS": "twelvedata=60000",
                        "PROVIDER_DAILY_LIMITS": "twelvedata=5000", "ETL_FETCH_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
        etl_env[name] = value
    return TwelveDataServer(fake_api)


def backfill(*symbols: str, start: date, end: date) -> int:
    return run_etl("fetch_historical_market_data", "--symbols", ",".join(f"{s}:STOCK" for s in symbols),
                   "--start", start.isoformat(), "--end", end.isoformat())


def stored(db, symbol: str) -> dict[date, tuple[Decimal, Decimal]]:
    return {day: (price, adj) for day, price, adj in
            rows(db, "SELECT date, price, adj_close FROM market_data WHERE symbol = %s", (symbol,))}


def actions(db, symbol: str) -> list[tuple]:
    return rows(db, "SELECT date, kind, ratio, amount, currency, source FROM corporate_actions WHERE symbol = %s "
                    "ORDER BY date, kind", (symbol,))


def checked_on(db, symbol: str) -> date | None:
    return scalar(db, "SELECT corporate_actions_checked FROM asset WHERE symbol = %s", (symbol,))


def last_event(db) -> dict:
    return scalar(db, "SELECT payload FROM etl_outbox ORDER BY created_at DESC, event_id LIMIT 1")


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


SPLIT_DAY = date(2020, 8, 31)
DIVIDEND_DAY = date(2020, 5, 8)


def test_a_backfill_across_a_split_stores_prices_as_traded_the_actions_and_adj_closes_from_them(td, db):
    td.closes[("AAPL", date(2020, 1, 2))] = Decimal("300.35")
    td.splits["AAPL"] = [(SPLIT_DAY, 4, 1)]
    td.dividends["AAPL"] = [(DIVIDEND_DAY, Decimal("0.82"))]
    assert backfill("AAPL", start=date(2020, 1, 1), end=date(2020, 9, 30)) == 0

    assert [r.query["adjust"] for r in td.requests("/time_series")] == ["none"]
    days = stored(db, "AAPL")
    assert days[date(2020, 1, 2)][0] == Decimal("300.35")              # as traded, not 75.0875
    assert days[date(2020, 9, 1)][0] == td.raw_close("AAPL", date(2020, 9, 1))
    assert actions(db, "AAPL") == [(DIVIDEND_DAY, "dividend", None, Decimal("0.82"), "USD", "twelvedata"),
                                   (SPLIT_DAY, "split", Decimal(4), None, None, "twelvedata")]
    previous_close = td.raw_close("AAPL", DIVIDEND_DAY - timedelta(days=1))
    dividend_factor = 1 - Decimal("0.82") / previous_close
    for day, (price, adj) in days.items():
        expected = price * (Decimal("0.25") if day < SPLIT_DAY else 1) * (dividend_factor if day < DIVIDEND_DAY else 1)
        assert abs(adj - expected) < Decimal("1e-8"), day
    assert days[date(2020, 1, 2)][1] < Decimal("75.0875")              # the dividend after it, too
    event = last_event(db)
    assert event["corporate_actions"] == [
        {"symbol": "AAPL", "kind": "dividend", "date": DIVIDEND_DAY.isoformat(), "amount": "0.82"},
        {"symbol": "AAPL", "kind": "split", "date": SPLIT_DAY.isoformat(), "ratio": "4"}]
    assert checked_on(db, "AAPL") == utc_today()


def test_the_actions_requests_are_counted_with_their_credits_and_not_repeated_the_same_day(td, db):
    today = utc_today()
    start = today - timedelta(days=14)
    td.dividends["AAPL"] = [(today - timedelta(days=7), Decimal("0.25"))]
    assert backfill("AAPL", start=start, end=today) == 0
    assert (len(td.requests("/splits")), len(td.requests("/dividends"))) == (1, 1)
    series = len(td.requests("/time_series"))
    counted = scalar(db, f"SELECT requests FROM provider_request_budget WHERE provider = 'twelvedata' "
                         f"AND day = {TODAY_UTC}")
    assert counted == series + 2 * ACTIONS_COST
    td.api.reset()
    assert backfill("AAPL", start=start, end=today) == 0               # the look-back re-check
    assert td.requests("/time_series") and td.requests("/splits") == td.requests("/dividends") == []


def test_a_plan_refusal_leaves_the_bars_loaded_and_the_assets_unchecked(td, db, caplog):
    td.refused = 403
    td.splits["AAPL"] = [(SPLIT_DAY, 4, 1)]
    assert backfill("AAPL", "MSFT", start=date(2024, 5, 6), end=date(2024, 5, 10)) == 0
    for symbol in ("AAPL", "MSFT"):
        assert len(stored(db, symbol)) == 5
        assert checked_on(db, symbol) is None and actions(db, symbol) == []
        assert all(adj == price for price, adj in stored(db, symbol).values())
    assert len(td.requests("/splits")) == 1 and td.requests("/dividends") == []
    assert len(refusals(caplog)) == 1
    assert last_event(db)["status"] == "success" and last_event(db)["corporate_actions"] == []

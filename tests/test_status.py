"""`etl status`: coverage, missing trading days, stale and failing assets, provider health, --check."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pytest

from support.db import rows, scalar
from support.runner import PYTHON, run_etl, run_etl_process
from support.seed import GAP, LAST_NY, NEW_YORK, START, add_asset, add_rows, days, seed, utc_today
from support.yahoo_server import YahooServer

from etl.coverage import asset_statuses, is_stale, trading_days_behind

FRIDAY, MONDAY = date(2024, 3, 8), date(2024, 3, 11)


# ---- the calendars, pure ----

def test_a_stock_stored_up_to_friday_is_one_trading_day_behind_on_monday():
    assert trading_days_behind(FRIDAY, MONDAY, "STOCK") == 1
    assert not is_stale(FRIDAY, MONDAY, "STOCK", 1)


def test_crypto_trades_every_day_so_friday_is_three_days_behind_on_monday():
    assert trading_days_behind(FRIDAY, MONDAY, "CRYPTO") == 3
    assert is_stale(FRIDAY, MONDAY, "CRYPTO", 1)


def test_forex_counts_weekdays_and_long_gaps_count_whole_weeks():
    assert trading_days_behind(FRIDAY, MONDAY, "FOREX") == 1
    assert trading_days_behind(date(2024, 1, 5), date(2024, 3, 8), "STOCK") == 45
    assert trading_days_behind(MONDAY, FRIDAY, "STOCK") == 0
    assert is_stale(None, MONDAY, "STOCK", 1)


# ---- a seeded database ----

def status_json(etl_env, *args: str) -> tuple[int, dict]:
    result = run_etl_process([PYTHON, "-m", "etl", "status", "--format", "json", *args], etl_env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def by_asset(document: dict) -> dict[str, dict]:
    return {f"{a['symbol']}:{a['asset_type']}": a for a in document["assets"]}


def test_status_json_reports_missing_days_stale_failing_and_cooled_off_assets_exactly(etl_env, db):
    seed(db)
    code, document = status_json(etl_env)
    assert code == 0
    assert set(document) == {"generated_at", "assets", "providers", "jobs"}
    assets = by_asset(document)
    assert list(assets) == ["BTC:CRYPTO", "ETH:CRYPTO", "AAPL:STOCK", "GONE:STOCK", "MSFT:STOCK", "NOPE:STOCK"]
    aapl = assets["AAPL:STOCK"]
    assert set(aapl) == {"symbol", "asset_type", "name", "provider", "first_date", "last_date", "rows",
                         "missing_days", "stale", "as_of", "last_success_at", "last_error", "cool_off_until"}
    weekday_gap = [d for d in GAP if d.weekday() < 5]
    assert aapl["missing_days"] == len(weekday_gap) + 1
    assert (aapl["name"], aapl["provider"], aapl["first_date"], aapl["last_date"]) == (
        "Apple Inc.", "yahoo", START.isoformat(), LAST_NY.isoformat())
    assert aapl["rows"] == len(days(START, LAST_NY)) - len(weekday_gap) - 1
    assert {spec: a["stale"] for spec, a in assets.items()} == {
        "BTC:CRYPTO": False, "ETH:CRYPTO": True, "AAPL:STOCK": False, "GONE:STOCK": True, "MSFT:STOCK": True,
        "NOPE:STOCK": False}
    assert [a["missing_days"] for a in assets.values()] == [0, 0, len(weekday_gap) + 1, 0, 0, 0]
    assert assets["NOPE:STOCK"]["last_error"] == "yahoo: 503 — the provider is failing, try again later"
    assert assets["GONE:STOCK"]["cool_off_until"] is not None and assets["AAPL:STOCK"]["cool_off_until"] is None
    assert assets["GONE:STOCK"]["rows"] == 0 and assets["GONE:STOCK"]["first_date"] is None
    assert aapl["as_of"] == datetime.combine(LAST_NY, time(21), timezone.utc).isoformat(), "its newest quote's time"
    assert assets["GONE:STOCK"]["as_of"] is None
    assert "http" not in json.dumps(document)


def test_stale_after_sets_how_many_trading_days_an_asset_may_lag(etl_env, db):
    seed(db)
    _, document = status_json(etl_env, "--stale-after", "15")
    assert {spec for spec, a in by_asset(document).items() if a["stale"]} == {"GONE:STOCK"}, \
        "ten days behind is fresh with 15; an asset without data stays stale"


def test_check_exits_1_for_a_failing_asset_that_is_not_stale_and_for_a_stale_one(etl_env, db):
    seed(db)
    for symbols, code in (("NOPE:STOCK", 1), ("MSFT:STOCK", 1), ("AAPL:STOCK,BTC:CRYPTO", 0)):
        assert status_json(etl_env, "--check", "--symbols", symbols)[0] == code, symbols


def test_stale_is_judged_by_each_asset_s_own_today_across_a_weekend(etl_env, db):
    for spec, zone in (("AAPL:STOCK", NEW_YORK), ("7203.T:STOCK", "Asia/Tokyo"), ("EUR/USD:FOREX", None),
                       ("BTC:CRYPTO", None)):
        add_asset(db, spec, zone=zone)
        add_rows(db, spec, [FRIDAY])
    monday_afternoon_utc = datetime(2024, 3, 11, 16, 0, tzinfo=timezone.utc)  # already Tuesday in Tokyo
    stale = {a.spec: a.stale for a in asset_statuses(db, now=monday_afternoon_utc, lookback_days=3)}
    assert stale == {"BTC:CRYPTO": True, "EUR/USD:FOREX": False, "7203.T:STOCK": True, "AAPL:STOCK": False}
    before_the_weekend = datetime(2024, 3, 9, 12, 0, tzinfo=timezone.utc)  # Saturday: nothing traded since
    assert not any(a.stale for a in asset_statuses(db, now=before_the_weekend, lookback_days=3)
                   if a.asset_type != "CRYPTO")


def test_check_exits_1_while_assets_need_attention_and_0_once_the_gaps_are_filled(etl_env, db, fake_api,
                                                                                 monkeypatch):
    seed(db)
    code, _ = status_json(etl_env, "--check")
    assert code == 1
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    yahoo = YahooServer(fake_api, every_day={"BTC-USD", "ETH-USD"})
    everything = "AAPL:STOCK,MSFT:STOCK,BTC:CRYPTO,ETH:CRYPTO,NOPE:STOCK,GONE:STOCK"
    assert run_etl("fetch_historical_market_data", "--symbols", everything, "--start", START.isoformat()) == 0
    code, document = status_json({**etl_env, "YAHOO_BASE_URL": fake_api.base_url}, "--check")
    assets = by_asset(document)
    assert [(spec, a["missing_days"], a["stale"], a["last_error"]) for spec, a in assets.items()
            if a["missing_days"] or a["stale"] or a["last_error"]] == []
    assert code == 0
    assert all(a["last_success_at"] for a in assets.values())
    assert scalar(db, "SELECT exchange_timezone FROM asset WHERE symbol = 'MSFT'") == NEW_YORK
    yahoo_health = next(p for p in document["providers"] if p["name"] == "yahoo")
    assert yahoo_health["requests_today"] == len(yahoo.chart_requests()) > 0
    job = next(j for j in document["jobs"] if j["job"] == "fetch_historical_market_data")
    assert (job["status"], job["error"]) == ("success", None)


def test_a_failing_provider_is_recorded_with_its_last_error(etl_env, db, fake_api, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    YahooServer(fake_api, failing={"NOPE": 503})
    assert run_etl("fetch_historical_market_data", "--symbols", "AAPL:STOCK,NOPE:STOCK",
                   "--start", (utc_today() - timedelta(days=20)).isoformat()) == 3
    requests, errors, error = rows(db, "SELECT requests, errors, last_error FROM provider_health "
                                       "WHERE provider = 'yahoo'")[0]
    assert requests >= 2 and errors == 1 and "503" in error
    _, document = status_json({**etl_env, "YAHOO_BASE_URL": fake_api.base_url})
    yahoo = next(p for p in document["providers"] if p["name"] == "yahoo")
    assert yahoo["last_error"].startswith("yahoo: ") and "http" not in yahoo["last_error"]
    assert yahoo["last_error_at"] is not None and yahoo["daily_limit"] is None
    job = next(j for j in document["jobs"] if j["job"] == "fetch_historical_market_data")
    assert job["status"] == "partial" and job["error"].startswith("NOPE: yahoo: 503") and "http" not in job["error"]


def test_status_shows_each_provider_s_daily_limit_and_what_is_left_of_it(etl_env, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO provider_request_budget (provider, day, requests) "
                    "VALUES ('yahoo', (now() AT TIME ZONE 'UTC')::date, 7)")
    _, document = status_json({**etl_env, "PROVIDER_DAILY_LIMITS": "yahoo=50"})
    yahoo = next(p for p in document["providers"] if p["name"] == "yahoo")
    assert (yahoo["daily_limit"], yahoo["budget_left"]) == (50, 43)


def test_status_text_shows_the_three_tables_and_a_summary_line(etl_env, db, capsys):
    seed(db)
    assert run_etl("status", "--symbols", "AAPL:STOCK,MSFT:STOCK") == 0
    out = capsys.readouterr().out
    for heading in ("Assets", "Providers", "Jobs"):
        assert heading in out
    assert "Apple Inc." in out
    assert "2 asset(s): 1 stale, 0 failing" in out and "needs attention: MSFT:STOCK" in out


@pytest.mark.parametrize("bad", ["-1", "x"])
def test_stale_after_must_be_a_whole_number(etl_env, bad):
    result = run_etl_process([PYTHON, "-m", "etl", "status", "--stale-after", bad], etl_env)
    assert result.returncode == 2 and "--stale-after" in result.stderr


def test_status_naming_an_untracked_asset_exits_2_instead_of_passing_a_check(etl_env, db, capsys):
    from support.runner import run_etl

    assert run_etl("status", "--symbols", "NOPE:STOCK", "--check") == 2
    err = capsys.readouterr().err
    assert "NOPE:STOCK not tracked" in err and "etl assets add NOPE:STOCK" in err

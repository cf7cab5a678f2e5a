"""etl providers check: one cheap request per provider; reachable, key accepted, latency, budget left, error."""

import json
import re
from datetime import datetime, timezone

import pytest

from support.fake_api import FakeApi, fixture_json
from support.keyless_servers import serve_coingecko_prices, serve_frankfurter
from support.providers import KEYS
from support.runner import UNREACHABLE, run_etl
from support.yahoo_server import YahooServer

ANY_PATH = re.compile(r".*")


@pytest.fixture
def keyless(fake_api, etl_env, monkeypatch):
    """Yahoo, CoinGecko and Frankfurter stand-ins, all up: the default chains' providers."""
    for variable in ("YAHOO_BASE_URL", "COINGECKO_BASE_URL", "FRANKFURTER_BASE_URL"):
        monkeypatch.setenv(variable, fake_api.base_url)
    monkeypatch.setenv("YAHOO_COOKIE_URL", f"{fake_api.base_url}/fc")
    serve_coingecko_prices(fake_api)
    serve_frankfurter(fake_api)
    return YahooServer(fake_api)


@pytest.fixture
def keyed_api(etl_env, monkeypatch):
    """A second loopback server for the keyed providers (Twelve Data, Alpha Vantage), with their keys set."""
    server = FakeApi()
    for variable in ("TWELVE_DATA_BASE_URL", "ALPHA_VANTAGE_BASE_URL"):
        monkeypatch.setenv(variable, server.base_url)
    monkeypatch.setenv("TWELVE_DATA_API_KEY", KEYS["twelvedata"])
    monkeypatch.setenv("ALPHA_VANTAGE_API_KEY", KEYS["alphavantage"])
    yield server
    server.close()


def check_json(capsys, *args: str) -> tuple[int, dict[str, dict]]:
    code = run_etl("providers", "check", "--format", "json", *args)
    out = capsys.readouterr().out
    return code, {row["provider"]: row for row in json.loads(out)["providers"]}


def test_every_configured_provider_up_exits_0_with_one_row_each(keyless, db, capsys):
    assert run_etl("providers", "check") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["provider", "reachable", "key", "accepted", "latency", "left", "today", "error"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["yahoo", "coingecko", "frankfurter"]
    assert all(row[1:3] == ["yes", "yes"] and row[4] == "ms" and row[5] == "unlimited" for row in rows.values())
    assert len(keyless.spark_requests()) == 1
    assert len(keyless.api.requests_to("/simple/price")) == len(keyless.api.requests_to("/latest")) == 1


def test_a_provider_that_is_down_is_reported_unreachable_and_exits_1(keyless, db, capsys, monkeypatch):
    monkeypatch.setenv("FRANKFURTER_BASE_URL", UNREACHABLE)
    code, rows = check_json(capsys)
    assert code == 1
    assert (rows["frankfurter"]["reachable"], rows["frankfurter"]["ok"]) == (False, False)
    assert "cannot connect" in rows["frankfurter"]["error"] and "\n" not in rows["frankfurter"]["error"]
    assert rows["yahoo"]["ok"] and rows["coingecko"]["ok"]


def test_a_refused_key_is_reported_without_the_key_and_exits_1(keyed_api, db, capsys):
    keyed_api.route(ANY_PATH, fixture_json("twelvedata/error_401_invalid_key.json"))
    code = run_etl("providers", "check", "--provider", "twelvedata", "--format", "json")
    out = capsys.readouterr().out
    [row] = json.loads(out)["providers"]
    assert code == 1
    assert (row["reachable"], row["key_accepted"], row["requests_left_today"], row["daily_limit"]) == (True, False, 799, 800)
    assert "check TWELVE_DATA_API_KEY" in row["error"] and KEYS["twelvedata"] not in out


def test_a_missing_key_is_reported_before_any_request(keyed_api, db, capsys, monkeypatch):
    monkeypatch.delenv("ALPHA_VANTAGE_API_KEY")
    code, rows = check_json(capsys, "--provider", "alphavantage")
    assert code == 1 and keyed_api.requests == []
    assert (rows["alphavantage"]["key_accepted"], rows["alphavantage"]["reachable"]) == (False, None)
    assert "ALPHA_VANTAGE_API_KEY is not set" in rows["alphavantage"]["error"]


def test_a_provider_out_of_quota_has_nothing_left_today_and_exits_1(keyed_api, db, capsys):
    keyed_api.route(ANY_PATH, fixture_json("alphavantage/information_daily_limit.json"))
    code, rows = check_json(capsys, "--provider", "alphavantage")
    assert code == 1
    spent = rows["alphavantage"]
    assert (spent["reachable"], spent["requests_left_today"], spent["ok"]) == (True, 0, False)
    assert "daily allowance is spent" in spent["error"]


def test_a_budget_already_spent_today_sends_nothing(keyed_api, db, capsys):
    with db.cursor() as cur:
        cur.execute("INSERT INTO provider_request_budget (provider, day, requests) VALUES ('alphavantage', %s, 25)",
                    (datetime.now(timezone.utc).date(),))
    code, rows = check_json(capsys, "--provider", "alphavantage")
    assert code == 1 and keyed_api.requests == []
    assert (rows["alphavantage"]["requests_left_today"], rows["alphavantage"]["reachable"]) == (0, None)
    assert "budget of 25 request(s) is spent" in rows["alphavantage"]["error"]


def test_yahoo_refusing_this_client_is_reachable_but_not_accepted(keyless, db, capsys):
    keyless.edge_429 = True
    code, rows = check_json(capsys, "--provider", "yahoo")
    assert code == 1
    assert (rows["yahoo"]["reachable"], rows["yahoo"]["key_accepted"]) == (True, False)
    assert "refuses this client" in rows["yahoo"]["error"]


def test_an_unknown_provider_is_a_usage_error(etl_env, capsys):
    with pytest.raises(SystemExit) as exited:
        run_etl("providers", "check", "--provider", "bloomberg")
    assert exited.value.code == 2 and "bloomberg" in capsys.readouterr().err

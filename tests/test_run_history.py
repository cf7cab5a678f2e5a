"""Run history that says why: `etl runs` shows each run's error in one line, `--failures` every failed asset;
`etl assets list` shows names and a short last error (provider and reason, no URL)."""

from __future__ import annotations

from datetime import date

import pytest

from support.db import scalar
from support.runner import PYTHON, run_etl, run_etl_process
from support.yahoo_server import YahooServer

from etl.error_lines import run_error_line, short_error

START = date(2024, 1, 2).isoformat()
END = date(2024, 1, 31).isoformat()


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    return YahooServer(fake_api, failing={"BAD": 503}, unknown={"NOPE"})


def backfill(symbols: str) -> int:
    return run_etl("fetch_historical_market_data", "--symbols", symbols, "--start", START, "--end", END)


def table(output: str) -> list[str]:
    return output.strip().splitlines()[1:]


def test_runs_shows_why_a_failed_run_failed_in_one_line(yahoo, db, capsys):
    assert backfill("BAD:STOCK,NOPE:STOCK") == 1          # every asset failed: the run's error column was empty
    assert backfill("AAPL:STOCK") == 0
    capsys.readouterr()
    assert run_etl("runs") == 0
    newest, failed = table(capsys.readouterr().out)
    assert newest.split()[:3] == ["2", "fetch_historical_market_data", "success"]
    assert failed.split()[:3] == ["1", "fetch_historical_market_data", "failed"]
    assert "BAD: yahoo: 503 — the provider is failing" in failed
    assert "NOPE: yahoo: 404 — unknown or delisted symbol" in failed
    assert "http" not in failed


def test_runs_failures_lists_every_failed_asset_with_its_error(yahoo, db, capsys):
    assert backfill("AAPL:STOCK,BAD:STOCK,NOPE:STOCK") == 3
    capsys.readouterr()
    assert run_etl("runs", "--failures", "1") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "run 1 (fetch_historical_market_data) partial: 2 failed asset(s)"
    listed = {line.split()[0]: line for line in table(out.split("\n", 1)[1])}
    assert set(listed) == {"BAD", "NOPE"}
    assert "yahoo: 503" in listed["BAD"] and "unknown or delisted" in listed["NOPE"]


def test_runs_failures_of_an_unknown_run_exits_2_naming_it(etl_env, db):
    result = run_etl_process([PYTHON, "-m", "etl", "runs", "--failures", "42"], etl_env)
    assert result.returncode == 2
    assert "run 42 is not in etl_job_runs" in result.stderr


def test_assets_list_shows_names_from_the_quotes_and_a_short_error_without_url(yahoo, db, capsys):
    assert run_etl("assets", "add", "AAPL:STOCK", "NOPE:STOCK") == 0
    assert run_etl("fetch_market_data") == 3
    assert backfill("NOPE:STOCK") == 1
    stored = scalar(db, "SELECT last_error FROM asset WHERE symbol = 'NOPE'")
    assert "http://" in stored   # kept whole in the table, for the log and for debugging
    capsys.readouterr()
    assert run_etl("assets", "list") == 0
    aapl, nope = table(capsys.readouterr().out)
    assert "AAPL Long Name" in aapl
    assert "yahoo: 404 — unknown or delisted symbol" in nope and "http" not in nope and len(nope) < 140


def test_short_error_keeps_provider_and_reason_of_each_part():
    combined = ("yahoo: 503 for https://query1.finance.yahoo.com/v8/finance/chart/X?period1=1 — the provider is "
                "failing, try again later: <html><body>down</body></html>; twelvedata: cannot connect for "
                "https://api.twelvedata.com/time_series?symbol=X&apikey=*** — check the network and the "
                "provider's base URL setting")
    assert short_error(combined, 200) == ("yahoo: 503 — the provider is failing, try again later; twelvedata: "
                                          "cannot connect — check the network and the provider's base URL setting")
    assert short_error("x" * 300, 20) == "x" * 19 + "…"
    assert run_error_line(None, [{"symbol": s, "error": f"{s}:STOCK: deferred — quota"} for s in "ABC"]) == \
        "A: deferred — quota; B: deferred — quota (+1 more)"
    assert run_error_line("stopped after 1 of 3 assets: boom", [{"symbol": "A", "error": "x"}]) == \
        "stopped after 1 of 3 assets: boom"

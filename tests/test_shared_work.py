"""Overlapping runs share the work: locks per (job, asset), skipped assets, live runs never abandoned."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from datetime import date, timedelta
from urllib.parse import unquote

from support.db import row_count, rows, scalar
from support.locks import held_by_another_run
from support.runner import ETL_VARIABLES, PYTHON, REPO, run_etl, run_etl_process
from support.yahoo_server import YahooServer
from test_job_runs import run_sample, start_sample, wait_until_running

from etl.pipeline.plan import Span, without

JOB = "fetch_historical_market_data"
TODAY = date.today()


def events(db) -> list[dict]:
    return [r[0] for r in rows(db, "SELECT payload FROM etl_outbox ORDER BY created_at")]


def start_job(env: dict[str, str], *args: str) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full_env.update(env, PYTHONPATH=str(REPO))
    return subprocess.Popen([PYTHON, "-m", "etl", *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_historical_runs_started_together_share_the_assets_and_fetch_each_once(fake_api, etl_env, db):
    yahoo = YahooServer(fake_api)
    fake_api.latency = 0.15  # long enough for the two runs to overlap whatever their start-up times
    env = {**etl_env, "YAHOO_BASE_URL": fake_api.base_url, "PROVIDER_RATE_LIMITS": "yahoo=100000"}
    symbols = [f"S{n:02d}" for n in range(20)]
    assert run_etl("assets", "add", *(f"{s}:STOCK" for s in symbols)) == 0
    argv = [JOB, "--start", (TODAY - timedelta(days=20)).isoformat()]

    first, second = start_job(env, *argv), start_job(env, *argv)
    outcomes = [(job.wait(120), job.communicate()) for job in (first, second)]

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    asked = Counter(unquote(r.path).rsplit("/", 1)[1] for r in yahoo.chart_requests())
    assert asked == Counter({symbol: 1 for symbol in symbols}), "every asset is fetched exactly once"
    assert len({(r.path, tuple(sorted(r.query.items()))) for r in yahoo.chart_requests()}) == 20
    finished = events(db)
    assert [e["status"] for e in finished] == ["success", "success"]
    loaded = Counter(s for e in finished for s in e["symbols"])
    assert set(loaded) | {s for e in finished for s in e["skipped"]} == set(symbols)
    days = len(yahoo.trading_days("S00", TODAY - timedelta(days=20), TODAY))
    assert row_count(db, "market_data") == 20 * days


def test_an_asset_another_run_holds_is_skipped_and_listed_but_the_rest_are_loaded(fake_api, etl_env, db,
                                                                                   database_url, schema):
    yahoo = YahooServer(fake_api)
    env = {**etl_env, "YAHOO_BASE_URL": fake_api.base_url}
    argv = [JOB, "--symbols", "AAPL:STOCK,MSFT:STOCK", "--start", (TODAY - timedelta(days=10)).isoformat()]
    with held_by_another_run(database_url, schema, JOB, "AAPL:STOCK"):
        result = run_etl_process([PYTHON, "-m", "etl", *argv], env)
    assert result.returncode == 0, result.stderr
    [event] = events(db)
    assert (event["status"], event["symbols"], event["skipped"], event["failed"]) == \
        ("success", ["MSFT"], ["AAPL"], [])
    assert [unquote(r.path).rsplit("/", 1)[1] for r in yahoo.chart_requests()] == ["MSFT"]
    assert row_count(db, "market_data", "symbol = 'AAPL'") == 0


def test_a_run_over_other_assets_goes_ahead_beside_a_live_run_and_leaves_it_running(etl_env, db):
    live = start_sample(etl_env, "--sleep", "20")
    try:
        live_run = wait_until_running(db)
        beside = run_sample(etl_env, "--symbols", "NVDA:STOCK")
        assert beside.returncode == 0, beside.stderr
        assert scalar(db, "SELECT status FROM etl_job_runs WHERE run_id = %s", (live_run,)) == "running"
        assert row_count(db, "etl_job_runs", "status = 'success'") == 1
    finally:
        live.kill()
        live.wait()


def test_a_mock_run_over_accounts_another_run_is_generating_exits_75(etl_env, db, database_url, schema):
    account = "0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b"
    with held_by_another_run(database_url, schema, "generate_mock_transactions", f"accounts:{account}"):
        result = run_etl_process([PYTHON, "-m", "etl", "generate_mock_transactions", "--account-id", account,
                                  "--months", "1", "--cash-only"], etl_env)
    assert result.returncode == 75, result.stderr
    assert "another run is generating for the same 1 account(s)" in result.stderr
    assert row_count(db, "etl_job_runs") == 0 and row_count(db, "transactions") == 0
    other = run_etl_process([PYTHON, "-m", "etl", "generate_mock_transactions", "--account-id", account,
                             "--months", "1", "--cash-only"], etl_env)
    assert other.returncode == 0, other.stderr


def test_without_removes_the_days_other_runs_fetched():
    d = date(2024, 1, 1)
    spans = [Span(d, d + timedelta(days=9)), Span(d + timedelta(days=20), d + timedelta(days=24))]
    assert without(spans, []) == spans
    assert without(spans, [Span(d + timedelta(days=3), d + timedelta(days=5))]) == [
        Span(d, d + timedelta(days=2)), Span(d + timedelta(days=6), d + timedelta(days=9)), spans[1]]
    assert without(spans, [Span(d - timedelta(days=5), d + timedelta(days=30))]) == []
    assert without(spans, [Span(d + timedelta(days=22), d + timedelta(days=40))]) == [
        spans[0], Span(d + timedelta(days=20), d + timedelta(days=21))]

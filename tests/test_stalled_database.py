"""A database that stops answering ends a job within a bounded time, and leaves no lock behind.

The job talks to PostgreSQL through `StallingProxy`, which at some point keeps the
sockets open but forwards nothing: no error ever reaches the client, so only a
client-side deadline (ETL_DB_TIMEOUT) can end the wait.
"""

from __future__ import annotations

import time

import pytest

from support.db import rows, scalar
from support.faults import StallingProxy, start_job, wait_for, wait_for_end
from support.yahoo_server import YahooServer

DB_TIMEOUT = 2  # seconds: ETL_DB_TIMEOUT for these tests
BOUND = 8 * DB_TIMEOUT  # what the tests allow for a stall to end the job (documented: about 3 × ETL_DB_TIMEOUT)
SYMBOLS = ",".join(f"S{i}:STOCK" for i in range(12))


@pytest.fixture
def proxied(etl_env, database_url, db):
    """The test's environment with DATABASE_URL through a stalling proxy (its schema already migrated)."""
    proxy, url = StallingProxy.for_url(database_url)
    yield proxy, {"DATABASE_URL": url, "ETL_DB_TIMEOUT": str(DB_TIMEOUT), "ETL_STALE_RUN_SECONDS": "3"}
    proxy.close()


@pytest.fixture
def slow_yahoo(fake_api, etl_env):
    """A Yahoo stand-in the job may ask one request a second, so a backfill of 12 assets takes ~12 s."""
    YahooServer(fake_api)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, PROVIDER_RATE_LIMITS="yahoo=60")
    return fake_api


def committed_assets(db) -> int:
    return scalar(db, "SELECT coalesce(max(symbols_ok), 0) FROM etl_job_runs WHERE status = 'running'") or 0


def one_line_ending(ended, prefix: str) -> str:
    assert "Traceback" not in ended.stderr, ended.stderr
    last = ended.error_lines[-1]
    assert last.startswith(prefix) and len(last) <= 200, last
    return last


def test_a_backfill_whose_database_stalls_after_some_commits_ends_within_the_bound_with_exit_3(
        proxied, slow_yahoo, db, etl_env):
    proxy, through_proxy = proxied
    job = start_job(["fetch_historical_market_data", "--symbols", SYMBOLS, "--start", "2024-01-01",
                     "--end", "2024-03-29"], {**etl_env, **through_proxy})
    wait_for(lambda: committed_assets(db) >= 2 or job.poll() is not None, 60, "two committed assets")
    proxy.stall()
    stalled_at = time.monotonic()
    ended = wait_for_end(job, stalled_at, BOUND)
    assert ended.code == 3, (ended.seconds, ended.stderr[-2000:])
    line = one_line_ending(ended, "fetch_historical_market_data: stopped after ")
    assert "database" in line and "ETL_DB_TIMEOUT" in line


def test_a_run_whose_database_stalls_before_any_commit_ends_within_the_bound_with_exit_1_and_one_line(
        proxied, db, etl_env):
    proxy, through_proxy = proxied
    job = start_job(["generate_mock_transactions", "--accounts", "2", "--months", "3", "--seed", "7"],
                    {**etl_env, **through_proxy})
    wait_for(lambda: proxy.connections >= 1, 30, "the job to connect")
    proxy.stall()
    stalled_at = time.monotonic()
    ended = wait_for_end(job, stalled_at, BOUND)
    assert ended.code == 1, (ended.seconds, ended.stderr[-2000:])
    line = one_line_ending(ended, "generate_mock_transactions: ")
    assert "database" in line


def test_the_run_after_a_stall_takes_over_the_lock_the_stalled_session_still_holds(proxied, slow_yahoo, db,
                                                                                   etl_env):
    proxy, through_proxy = proxied
    job = start_job(["fetch_historical_market_data", "--symbols", SYMBOLS, "--start", "2024-01-01",
                     "--end", "2024-03-29"], {**etl_env, **through_proxy})
    wait_for(lambda: committed_assets(db) >= 1 or job.poll() is not None, 60, "a committed asset")
    proxy.stall()
    ended = wait_for_end(job, time.monotonic(), BOUND)
    assert ended.code in (1, 3), ended.stderr[-2000:]
    stalled_run = scalar(db, "SELECT run_id FROM etl_job_runs WHERE status = 'running'")
    assert stalled_run is not None  # its session, behind the stalled proxy, still holds the job's lock
    time.sleep(3.5)  # ETL_STALE_RUN_SECONDS: its heartbeat is now stale
    direct = {**etl_env, "ETL_DB_TIMEOUT": str(DB_TIMEOUT), "ETL_STALE_RUN_SECONDS": "3"}
    again = wait_for_end(start_job(["fetch_historical_market_data", "--symbols", SYMBOLS, "--start", "2024-01-01",
                                    "--end", "2024-03-29"], direct), time.monotonic(), 90)
    assert again.code == 0, again.stderr[-2000:]
    assert "stopped answering" in again.stderr
    status, error = rows(db, "SELECT status, error FROM etl_job_runs WHERE run_id = %s", (stalled_run,))[0]
    assert status == "failed" and error.startswith("abandoned")

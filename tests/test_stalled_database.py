"""A database that stops answering ends a job within a bounded time, and leaves no lock behind.

The job talks to PostgreSQL through `StallingProxy`, which at some point keeps the
sockets open but forwards nothing: no error ever reaches the client, so only a
client-side deadline (ETL_DB_TIMEOUT) can end the wait.
"""

from __future__ import annotations

import pytest

from support.db import rows
from support.faults import StallingProxy, backfill_argv, stalled_run
from support.yahoo_server import YahooServer

DB_TIMEOUT = 2  # seconds: ETL_DB_TIMEOUT for these tests
BOUND = 8 * DB_TIMEOUT  # what the tests allow for a stall to end the job (documented: about 3 × ETL_DB_TIMEOUT)
SYMBOLS = [f"S{i}:STOCK" for i in range(12)]


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


def assert_one_line(ended, prefix: str) -> None:
    assert "Traceback" not in ended.stderr, ended.stderr
    last = ended.error_lines[-1]
    assert last.startswith(prefix) and len(last) <= 200, last


def test_a_backfill_whose_database_stalls_after_some_commits_ends_within_the_bound_with_exit_3(
        proxied, slow_yahoo, db, etl_env):
    proxy, through_proxy = proxied
    outcome = stalled_run(backfill_argv(SYMBOLS), {**etl_env, **through_proxy}, etl_env, proxy, db,
                          commits_first=2, limit=BOUND)
    assert outcome.ended.code == 3, (outcome.ended.seconds, outcome.ended.stderr[-2000:])
    assert_one_line(outcome.ended, "fetch_historical_market_data: stopped after ")
    assert "database stopped answering" in outcome.line and "ETL_DB_TIMEOUT" in outcome.line


def test_a_run_whose_database_stalls_before_any_commit_ends_within_the_bound_with_exit_1_and_one_line(
        proxied, db, etl_env):
    proxy, through_proxy = proxied
    outcome = stalled_run(["generate_mock_transactions", "--accounts", "300", "--months", "24", "--seed", "7"],
                          {**etl_env, **through_proxy}, etl_env, proxy, db, commits_first=0, limit=BOUND)
    assert outcome.ended.code == 1, (outcome.ended.seconds, outcome.ended.stderr[-2000:])
    assert_one_line(outcome.ended, "generate_mock_transactions: database stopped answering")


def test_the_run_after_a_stall_takes_over_the_lock_the_stalled_session_still_holds(proxied, slow_yahoo, db,
                                                                                   etl_env):
    proxy, through_proxy = proxied
    stale = {"ETL_DB_TIMEOUT": str(DB_TIMEOUT), "ETL_STALE_RUN_SECONDS": "3"}
    outcome = stalled_run(backfill_argv(SYMBOLS), {**etl_env, **through_proxy}, {**etl_env, **stale}, proxy, db,
                          commits_first=1, limit=BOUND, wait_stale=3.5)
    assert outcome.ended.code in (1, 3), outcome.ended.stderr[-2000:]
    assert outcome.next_run.code == 0, outcome.next_run.stderr[-2000:]
    assert "stopped answering (no heartbeat for" in outcome.next_run.stderr
    assert outcome.left_running == 0
    assert rows(db, "SELECT status, left(error, 9) FROM etl_job_runs ORDER BY run_id")[0] == ("failed", "abandoned")


def test_a_statement_the_server_is_still_running_is_never_cut(etl_env, db):
    """Past ETL_DB_TIMEOUT the server is asked, and a session busy with its statement goes on."""
    from support.runner import PYTHON, REPO, run_etl_process

    result = run_etl_process([PYTHON, str(REPO / "tests" / "support" / "sample_job.py"), "--sql-sleep",
                              str(4 * DB_TIMEOUT)], {**etl_env, "ETL_DB_TIMEOUT": str(DB_TIMEOUT)})
    assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT status FROM etl_job_runs") == [("success",)]

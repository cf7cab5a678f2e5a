"""Bad input is exit 2 with one line, before anything is written: dates outside a sane range, counts and
amounts past their bounds, a run that would do nothing. Each runs as a real process, as a user types it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from support.db import row_count
from support.runner import PYTHON, run_etl_process

TOMORROW = date.today() + timedelta(days=1)

BAD_COMMAND_LINES = [
    (["fetch_historical_market_data", "--start", "0001-01-01"], "--start"),
    (["fetch_historical_market_data", "--start", "1899-12-31"], "1900-01-01"),
    (["fetch_historical_market_data", "--end", "9999-12-31"], "--end"),
    (["fetch_historical_market_data", "--end", (TOMORROW + timedelta(days=1)).isoformat()], "--end"),
    (["generate_mock_transactions", "--months", "100000"], "--months"),
    (["generate_mock_transactions", "--months", "0"], "--months"),
    (["generate_mock_transactions", "--accounts", "100000000"], "--accounts"),
    (["generate_mock_transactions", "--accounts", "0"], "--accounts 0"),
    (["generate_mock_transactions", "--per-month", "1000000000"], "--per-month"),
    (["generate_mock_transactions", "--start-balance", "1e400"], "--start-balance"),
    (["generate_mock_transactions", "--start-balance", "1e13"], "--start-balance"),
    (["generate_mock_transactions", "--start-balance", "NaN"], "--start-balance"),
    (["runs", "--limit", "99999999999999999999"], "--limit"),
    (["runs", "--limit", "0"], "--limit"),
    (["worker", "--stop-grace", "nan"], "--stop-grace"),
    (["worker", "--stop-grace", "inf"], "--stop-grace"),
    (["worker", "--session-timeout-ms", "99999999999999999999"], "--session-timeout-ms"),
]


@pytest.mark.parametrize("argv, named", BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_a_bad_command_line_is_exit_2_with_one_line_naming_the_option(argv, named, etl_env, db):
    result = run_etl_process([PYTHON, "-m", "etl", *argv], etl_env, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith(" ")]
    assert len(lines) == 1 and named in lines[0] and len(lines[0]) <= 250, result.stderr
    assert row_count(db, "etl_job_runs") == 0


def test_the_edges_of_the_ranges_are_accepted(etl_env, db, fake_api):
    from support.yahoo_server import YahooServer

    YahooServer(fake_api)
    env = {**etl_env, "YAHOO_BASE_URL": fake_api.base_url}
    result = run_etl_process([PYTHON, "-m", "etl", "fetch_historical_market_data", "--symbols", "AAPL",
                              "--start", "1900-01-01", "--end", TOMORROW.isoformat(), "--plan"], env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert run_etl_process([PYTHON, "-m", "etl", "runs", "--limit", "100000"], env).returncode == 0
    accounts_zero_with_ids = run_etl_process(
        [PYTHON, "-m", "etl", "generate_mock_transactions", "--accounts", "0", "--account-id",
         "0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b", "--months", "1", "--per-month", "2", "--seed", "3",
         "--start-balance", "999999999999.99"], env, timeout=120)
    assert accounts_zero_with_ids.returncode == 0, accounts_zero_with_ids.stderr


def test_etl_history_start_outside_the_range_is_exit_2_naming_the_variable(etl_env, db):
    result = run_etl_process([PYTHON, "-m", "etl", "fetch_historical_market_data", "--plan"],
                             {**etl_env, "ETL_HISTORY_START": "0001-01-01"}, timeout=60)
    assert result.returncode == 2 and "ETL_HISTORY_START" in result.stderr, result.stderr

"""The `etl` command line: help, assets, runs, migrate, and every documented exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.db import row_count
from support.runner import PYTHON, run_etl, run_etl_process

SAMPLE_JOB = str(Path(__file__).resolve().parent / "support" / "sample_job.py")


def etl(env, *args):
    return run_etl_process([PYTHON, "-m", "etl", *args], env)


def table_rows(output: str) -> list[list[str]]:
    """The data rows of a printed table (the header dropped), split into cells."""
    return [line.split() for line in output.strip().splitlines()[1:]]


def test_help_lists_commands_jobs_and_exit_codes(etl_env):
    result = etl(etl_env, "--help")
    assert result.returncode == 0
    for word in ("migrate", "assets", "outbox", "runs", "fetch_market_data", "generate_mock_transactions",
                 "75"):
        assert word in result.stdout


def test_no_command_prints_help_and_exits_2(etl_env, capsys):
    assert run_etl() == 2
    assert "usage: etl" in capsys.readouterr().out


def test_assets_add_list_remove_round_trip(etl_env, db, capsys):
    assert run_etl("assets", "add", "AAPL:STOCK", "btc:crypto", "^GSPC") == 0
    assert run_etl("assets", "add", "VOO:ETF", "--name", "Vanguard S&P 500", "--provider", "yahoo") == 0
    capsys.readouterr()
    assert run_etl("assets", "list") == 0
    listed = capsys.readouterr().out
    assert [row[:2] for row in table_rows(listed)] == [["BTC", "CRYPTO"], ["VOO", "ETF"], ["^GSPC", "INDEX"],
                                                      ["AAPL", "STOCK"]]
    assert "Vanguard S&P 500" in listed
    assert run_etl("assets", "remove", "AAPL:STOCK") == 0
    assert "deactivated 1 asset(s)" in capsys.readouterr().out
    assert row_count(db, "asset", "active") == 3
    assert row_count(db, "asset") == 4


def test_adding_an_inactive_asset_reactivates_it(etl_env, db):
    run_etl("assets", "add", "AAPL")
    run_etl("assets", "remove", "AAPL")
    assert run_etl("assets", "add", "AAPL:STOCK") == 0
    assert row_count(db, "asset", "active") == 1


def test_assets_add_with_an_unknown_type_exits_2_with_one_clear_line(etl_env):
    result = etl(etl_env, "assets", "add", "AAPL:BOND")
    assert result.returncode == 2
    assert "unknown type 'BOND'" in result.stderr
    assert "Traceback" not in result.stderr


def test_name_for_several_assets_at_once_exits_2(etl_env):
    result = etl(etl_env, "assets", "add", "AAPL", "MSFT", "--name", "Apple")
    assert result.returncode == 2
    assert "one asset at a time" in result.stderr


def test_provider_symbol_without_its_provider_exits_2(etl_env):
    result = etl(etl_env, "assets", "add", "^GSPC:INDEX", "--provider-symbol", "SPX")
    assert result.returncode == 2
    assert "--provider-symbol needs --provider" in result.stderr


def test_runs_shows_the_most_recent_runs_up_to_the_limit(etl_env, db, capsys):
    for price in ("10", "11", "12"):
        assert run_etl_process([PYTHON, SAMPLE_JOB, "--price", price], etl_env).returncode == 0
    assert run_etl("runs", "--limit", "2") == 0
    shown = table_rows(capsys.readouterr().out)
    assert [row[0] for row in shown] == ["3", "2"]
    assert all(row[1:3] == ["sample_job", "success"] for row in shown)


def test_runs_limit_must_be_positive(etl_env):
    result = etl(etl_env, "runs", "--limit", "0")
    assert result.returncode == 2
    assert "--limit" in result.stderr


def test_migrate_exits_0(etl_env):
    result = etl(etl_env, "migrate")
    assert result.returncode == 0
    assert "applied 0001_initial_schema" in result.stdout


def test_database_unreachable_exits_1(etl_env):
    result = etl({**etl_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}, "runs")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1


def test_bad_configuration_exits_2(etl_env):
    assert etl({**etl_env, "DB_PORT": "port"}, "runs").returncode == 2


def test_partial_job_exits_3_and_lists_the_failure(etl_env):
    result = run_etl_process([PYTHON, SAMPLE_JOB, "--fail", "MSFT"], etl_env)
    assert result.returncode == 3
    assert "partial: 1 ok, 1 failed" in result.stdout


def test_job_locked_by_another_run_exits_75(etl_env, db):
    env = {**{k: v for k, v in os.environ.items()}, **etl_env, "PYTHONPATH": str(Path(SAMPLE_JOB).parents[2])}
    first = subprocess.Popen([PYTHON, SAMPLE_JOB, "--sleep", "20"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while row_count(db, "etl_job_runs", "status = 'running'") == 0:
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.1)
        assert run_etl_process([PYTHON, SAMPLE_JOB], etl_env).returncode == 75
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()


@pytest.mark.parametrize("job", ["fetch_market_data", "fetch_historical_market_data",
                                 "fetch_market_index_data", "generate_mock_transactions"])
def test_every_job_is_a_documented_subcommand(job, etl_env):
    assert job in etl(etl_env, "--help").stdout

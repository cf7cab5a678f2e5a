"""The three market-data jobs at the command line: help, bad arguments, running by path, the lock."""

import re

import pytest

from support.db import row_count
from support.locks import held_by_another_run
from support.runner import PYTHON, REPO, run_etl, run_etl_process
from support.yahoo_server import YahooServer

JOBS = {
    "fetch_historical_market_data": "etl/jobs/fetch_historical_market_data/fetch_historical_market_data.py",
    "fetch_market_data": "etl/jobs/fetch_market_data/fetch_market_data.py",
    "fetch_market_index_data": "etl/jobs/fetch_market_index_data/fetch_market_index_data.py",
}


def exit_code(*argv: str) -> int:
    try:
        return run_etl(*argv)
    except SystemExit as exc:  # argparse's own exit for unusable arguments
        return exc.code


@pytest.mark.parametrize("job", JOBS)
def test_each_job_has_help_describing_it_and_its_exit_codes(job, capsys):
    assert exit_code(job, "--help") == 0
    out = capsys.readouterr().out
    assert f"usage: {job}" in out and "--symbols" in out and "--dry-run" in out and "75" in out


def test_historical_help_lists_its_own_options(capsys):
    exit_code("fetch_historical_market_data", "--help")
    out = capsys.readouterr().out
    assert "--full-refresh" in out and "--plan" in out and "--start" in out


def test_start_after_end_is_exit_2_with_one_clear_line(etl_env, db, capsys):
    assert exit_code("fetch_historical_market_data", "--symbols", "AAPL", "--start", "2024-05-01",
                     "--end", "2024-04-01") == 2
    assert "--start 2024-05-01 is after --end 2024-04-01" in capsys.readouterr().err
    assert row_count(db, "etl_job_runs") == 0


@pytest.mark.parametrize("argv, message", [
    (["--start", "2024-13-01"], "'2024-13-01' is not an ISO date"),
    (["--end", "yesterday"], "'yesterday' is not an ISO date"),
    (["--symbols", "AAPL:BOND"], "unknown type 'BOND'"),
    (["--provider", "bloomberg"], "invalid choice: 'bloomberg'"),
])
def test_unusable_arguments_are_exit_2_with_a_clear_line(argv, message, capsys):
    assert exit_code("fetch_historical_market_data", *argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("job", ["fetch_market_data", "fetch_market_index_data"])
def test_live_jobs_reject_an_unknown_type_and_provider(job, capsys):
    assert exit_code(job, "--symbols", "AAPL:BOND") == 2
    assert exit_code(job, "--provider", "bloomberg") == 2
    assert "unknown type 'BOND'" in capsys.readouterr().err


def test_cash_has_no_market_data(etl_env, capsys):
    assert exit_code("fetch_market_data", "--symbols", "USD:CASH") == 2
    assert "cash has no market data" in capsys.readouterr().err


def test_an_unknown_provider_in_the_settings_is_exit_2(etl_env, monkeypatch, capsys):
    monkeypatch.setenv("STOCK_PROVIDERS", "bloomberg")
    assert exit_code("fetch_market_data") == 2
    assert "STOCK_PROVIDERS: unknown provider 'bloomberg'" in capsys.readouterr().err


def test_a_provider_whose_key_is_missing_is_exit_2(etl_env, db, monkeypatch, capsys):
    assert exit_code("fetch_market_data", "--symbols", "AAPL", "--provider", "twelvedata") == 2
    assert "TWELVE_DATA_API_KEY is not set" in capsys.readouterr().err


@pytest.mark.parametrize("job", JOBS)
def test_each_job_runs_by_path_with_help_from_any_directory(job, tmp_path):
    result = run_etl_process([PYTHON, str(REPO / JOBS[job]), "--help"], {}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"usage: {job}" in result.stdout


def test_a_real_run_by_path_from_another_directory(fake_api, etl_env, tmp_path):
    YahooServer(fake_api)
    env = {**etl_env, "YAHOO_BASE_URL": fake_api.base_url}
    result = run_etl_process([PYTHON, str(REPO / JOBS["fetch_historical_market_data"]), "--symbols", "AAPL",
                              "--start", "2024-01-02", "--end", "2024-01-05"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"1 asset\(s\) done, 0 failed, 4 rows upserted, 1 request\(s\)", result.stdout)


@pytest.mark.parametrize("job", JOBS)
def test_a_run_whose_every_asset_another_run_holds_exits_75_and_does_nothing(job, etl_env, db, database_url,
                                                                             schema, capsys):
    asset = "^GSPC:INDEX" if job == "fetch_market_index_data" else "AAPL:STOCK"
    assert run_etl("assets", "add", asset) == 0
    with held_by_another_run(database_url, schema, job, asset):
        assert exit_code(job, "--symbols", asset) == 75
    assert "another run holds the lock of every asset" in capsys.readouterr().err
    assert row_count(db, "etl_job_runs") == 0
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == 0

"""The README's run command on a machine with no database set up and no network.

`make run` is `scripts/run_example.sh` in the project's virtualenv; here the
same script runs with this interpreter. No DATABASE_URL: the embedded
PostgreSQL is started. Every provider base URL refuses connections, as the
real ones do without network: the fetch jobs must say so in one line each and
exit 1 or 3, never with a traceback, and the mock job still fills the database.
"""

from __future__ import annotations

import re
import stat

from support.runner import PYTHON, REPO, run_etl_process


def etl_command(folder) -> str:
    """An `etl` executable for this interpreter, like the virtualenv's console script."""
    script = folder / "etl"
    script.write_text(f'#!/bin/sh\nexec "{PYTHON}" -m etl "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_run_command_migrates_an_embedded_database_and_reaches_every_job(embedded_env, tmp_path):
    env = {**embedded_env, "ETL": etl_command(tmp_path), "ETL_HTTP_RETRIES": "1"}
    result = run_etl_process(["bash", str(REPO / "scripts" / "run_example.sh")], env, timeout=600)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "applied 0001_initial_schema" in result.stdout
    assert "tracking 7 asset(s)" in result.stdout
    for job in ("fetch_historical_market_data", "fetch_market_data", "fetch_market_index_data"):
        assert re.search(rf"^{job} exited with [13]$", result.stdout, re.MULTILINE), output
    provider_errors = [line for line in result.stderr.splitlines() if "yahoo: cannot connect" in line]
    assert provider_errors, result.stderr
    assert all(len(line) < 400 for line in provider_errors)
    runs = re.findall(r"^\d+\s+(\S+)\s+(\S+)", result.stdout, re.MULTILINE)
    assert ("generate_mock_transactions", "success") in runs

    again = run_etl_process(["bash", str(REPO / "scripts" / "run_example.sh")], env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up to date" in again.stdout

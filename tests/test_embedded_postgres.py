"""With no database configured, `etl migrate` starts the embedded PostgreSQL and reuses it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from support.runner import PYTHON, run_etl_process


def stop_server(pgdata) -> None:
    """Fast-shut-down the postmaster found in pgdata, so the test leaks no server."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@pytest.fixture
def embedded_env(etl_env, tmp_path):
    data_dir = tmp_path / "etl-data"
    env = {k: v for k, v in etl_env.items() if k != "DATABASE_URL"}
    env.update(ETL_DATA_DIR=str(data_dir), DB_SCHEMA="public")
    yield env
    stop_server(data_dir / "pgdata")


def test_migrate_without_a_database_starts_the_embedded_one_then_reuses_it(embedded_env):
    first = run_etl_process([PYTHON, "-m", "etl", "migrate"], embedded_env, timeout=300)
    assert first.returncode == 0, first.stderr
    pgdata = os.path.join(embedded_env["ETL_DATA_DIR"], "pgdata")
    where = [line for line in first.stderr.splitlines() if "embedded PostgreSQL" in line]
    assert len(where) == 1 and pgdata in where[0]
    assert "applied 0001_initial_schema" in first.stdout
    assert os.path.exists(os.path.join(pgdata, "PG_VERSION"))

    second = run_etl_process([PYTHON, "-m", "etl", "migrate"], embedded_env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout

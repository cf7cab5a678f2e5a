"""With no database configured, `etl migrate` starts the embedded PostgreSQL and reuses it."""

from __future__ import annotations

import os

from support.runner import PYTHON, run_etl_process


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

"""`etl db url` and `etl db stop`: the database in use, and the embedded server's lifecycle."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from support.runner import PYTHON, run_etl_process
from support.services import stop_server

NOTICE = "using the embedded PostgreSQL"


def etl(env, *args, timeout=300):
    return run_etl_process([PYTHON, "-m", "etl", *args], env, timeout=timeout)


def test_db_url_masks_a_configured_password_unless_asked(etl_env):
    env = {**etl_env, "DATABASE_URL": "postgresql://etl:s3cret-pw@db.example:5432/finance"}
    masked = etl(env, "db", "url")
    assert masked.returncode == 0
    assert masked.stdout.strip().startswith("postgresql://etl:***@db.example:5432/finance")
    assert "s3cret-pw" not in masked.stdout + masked.stderr
    shown = etl(env, "db", "url", "--show-password")
    assert shown.stdout.startswith("postgresql://etl:s3cret-pw@db.example:5432/finance")
    assert f"options=-csearch_path%3D{etl_env['DB_SCHEMA']}" in shown.stdout   # psql lands in DB_SCHEMA


def test_db_stop_leaves_a_configured_server_alone_and_exits_2(etl_env):
    result = etl(etl_env, "db", "stop")
    assert result.returncode == 2
    assert "stops only the embedded PostgreSQL" in result.stderr


@pytest.fixture
def embedded_here(embedded_env):
    """The embedded server's data in a folder of its own under /tmp: pytest's own temporary folders are
    0700 and reset by every pytest that starts, which would lock the server's system user out."""
    folder = Path(tempfile.mkdtemp(prefix="etl-db-command-"))
    yield {**embedded_env, "ETL_DATA_DIR": str(folder)}
    stop_server(folder / "pgdata")
    shutil.rmtree(folder, ignore_errors=True)


def test_embedded_server_url_stop_and_a_following_job_starts_it_again(embedded_here):
    embedded_env = embedded_here
    started = etl(embedded_env, "db", "url")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("postgresql://postgres") and started.stderr.count(NOTICE) == 1
    psycopg2.connect(url, connect_timeout=5).close()

    stopped = etl(embedded_env, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    pgdata = os.path.join(embedded_env["ETL_DATA_DIR"], "pgdata")
    assert not os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    again = etl(embedded_env, "db", "stop")
    assert again.returncode == 0 and "is not running" in again.stdout

    job = etl(embedded_env, "generate_mock_transactions", "--accounts", "1", "--months", "2", "--seed", "7")
    assert job.returncode == 0, job.stderr
    assert job.stderr.count(NOTICE) == 1                   # once per command, however many connections
    assert job.stderr.count("KAFKA_BOOTSTRAP_SERVERS is not set") == 1
    assert os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    flush = etl(embedded_env, "outbox", "flush")
    assert flush.returncode == 0
    assert (flush.stdout + flush.stderr).count("KAFKA_BOOTSTRAP_SERVERS") == 1

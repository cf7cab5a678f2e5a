"""Fixtures that provide real services: PostgreSQL, a Kafka broker, a loopback HTTP API.

Each test gets its own schema (DB_SCHEMA) in the run's fresh database and its
own Kafka topic prefix, so tests never see each other's rows or events.
"""

from __future__ import annotations

import itertools
import os

import psycopg2
import pytest

from support.fake_api import FakeApi
from support.runner import BASE_URL_VARIABLES, ETL_VARIABLES, UNREACHABLE
from support.services import TansuBroker, TestDatabaseServer, stop_server

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def database_server():
    server = TestDatabaseServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def database_url(database_server) -> str:
    return database_server.url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    broker = TansuBroker().start()
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def own_broker():
    """A broker of this test's own, which the test may stop and start again."""
    broker = TansuBroker().start()
    yield broker
    broker.stop()


@pytest.fixture
def fake_api():
    server = FakeApi()
    yield server
    server.close()


@pytest.fixture
def schema() -> str:
    return f"t{os.getpid()}_{next(_schemas)}"


@pytest.fixture
def etl_env(monkeypatch, tmp_path, database_url, schema) -> dict[str, str]:
    """The process environment of one test: its database schema, no broker, no real APIs.

    Returns the variables set, to pass to subprocesses; tests add to it with
    monkeypatch.setenv (and the dict) as they need.
    """
    for name in ETL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = {
        "DATABASE_URL": database_url,
        "DB_SCHEMA": schema,
        "ETL_DATA_DIR": str(tmp_path / "data"),
        **{variable: UNREACHABLE for variable in BASE_URL_VARIABLES},
        "YAHOO_COOKIE_URL": UNREACHABLE,
        "KAFKA_TOPIC_PREFIX": f"{schema}.",
        "ETL_HTTP_BACKOFF": "0.01",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return env


@pytest.fixture
def db(etl_env, database_url, schema):
    """An autocommit connection to the test's schema, migrated."""
    from etl.utils.db_utils import migrate

    conn = psycopg2.connect(database_url, options=f"-c search_path={schema}")
    migrate(conn, schema)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def with_kafka(etl_env, monkeypatch, kafka_bootstrap) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    etl_env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    return kafka_bootstrap


@pytest.fixture
def embedded_env(etl_env, tmp_path):
    """The test's environment with no database configured: the embedded PostgreSQL, stopped afterwards."""
    data_dir = tmp_path / "etl-data"
    env = {k: v for k, v in etl_env.items() if k != "DATABASE_URL"}
    env.update(ETL_DATA_DIR=str(data_dir), DB_SCHEMA="public")
    yield env
    stop_server(data_dir / "pgdata")

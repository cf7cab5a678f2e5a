"""Bounded database waits: no call waits for the server for ever.

A server behind a proxy or NAT that accepts and acknowledges packets but
forwards nothing never produces an error: TCP keepalives, `tcp_user_timeout`
and a server-side statement timeout all stay silent, and libpq waits for ever
(even Ctrl-C cannot interrupt it, as Python runs signal handlers only between
calls). So every call on a connection made by `db_utils.connect` —
`execute`, `copy_expert`, `commit`, `rollback` — is watched by one
watchdog thread. A call that has waited `timeout` seconds (ETL_DB_TIMEOUT)
without a sign of life is checked from a fresh connection: if our server
session is busy running the statement (a long but legitimate statement — a
holdings rebuild, a history rebase, a migration), the wait is extended;
otherwise (the server cannot be reached, the session is gone, idle or waiting
for us) the watchdog shuts the connection's socket down, which makes the
blocked libpq call fail at once, and the call raises `DatabaseUnresponsive`.
COPY counts each chunk it moves as a sign of life, so a long COPY streaming
steadily is never cut.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import psycopg2
import psycopg2.extensions

from etl.errors import EtlError

log = logging.getLogger(__name__)

# pg_stat_activity's wait events of a backend that waits for its client: nothing for the server to do.
_WAITING_FOR_CLIENT = ("ClientRead", "ClientWrite")


class DatabaseUnresponsive(EtlError):
    """A database call got no answer within ETL_DB_TIMEOUT and its connection was cut."""

    def __init__(self, message: str, *, server_reachable: bool):
        super().__init__(message)
        self.server_reachable = server_reachable  # a fresh connection may still record the run's end


class _Wait:
    __slots__ = ("conn", "what", "started", "deadline", "cut", "reachable", "probing")

    def __init__(self, conn: "GuardedConnection", what: str):
        self.conn, self.what = conn, what
        self.started = time.monotonic()
        self.deadline = self.started + conn.deadline_timeout
        self.cut = False
        self.reachable = False
        self.probing = False


class _Watchdog:
    """One daemon thread watching every database call in flight in this process."""

    def __init__(self):
        self._waits: set[_Wait] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def begin(self, wait: _Wait) -> None:
        with self._changed:
            if unreachable():
                wait.deadline = wait.started  # the server was just found unreachable: do not wait again
            self._waits.add(wait)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="db-deadline", daemon=True)
                self._thread.start()
            self._changed.notify()

    def end(self, wait: _Wait) -> None:
        with self._changed:
            self._waits.discard(wait)

    def touch(self, wait: _Wait) -> None:
        wait.deadline = time.monotonic() + wait.conn.deadline_timeout

    def _watch(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [w for w in self._waits if w.deadline <= now and not w.probing]
                if not due:
                    soonest = min((w.deadline for w in self._waits if not w.probing), default=now + 60)
                    self._changed.wait(max(0.05, soonest - now))
                    continue
                for wait in due:
                    wait.probing = True
            for wait in due:  # each asked on its own thread: one stalled probe must not delay the others
                threading.Thread(target=self._expire, args=(wait,), name="db-expire", daemon=True).start()

    def _expire(self, wait: _Wait) -> None:
        conn = wait.conn
        busy, reachable = (False, False) if unreachable() else _server_is_working(conn)
        if not reachable:
            global _unreachable_until
            _unreachable_until = time.monotonic() + 2 * conn.deadline_timeout
        with self._changed:
            if wait not in self._waits:
                return  # it finished while we looked
            if busy:
                wait.deadline, wait.probing = time.monotonic() + conn.deadline_timeout, False
                self._changed.notify()
                log.debug("database: %s still running after %.0f s; the server is working on it", wait.what,
                          time.monotonic() - wait.started)
                return
            wait.cut, wait.reachable = True, reachable
            self._waits.discard(wait)
        log.debug("database: no answer to %s for %.0f s; cutting the connection", wait.what,
                  time.monotonic() - wait.started)
        cut(conn)


_watchdog = _Watchdog()
# Until when the database counts as unreachable, once a probe could not reach it: every wait on it is cut
# at once and `db_utils.connect` gives up at once, so a failing run's last steps (recording its end, its
# provider health) cost nothing more. One database per process, so one flag.
_unreachable_until = 0.0


def unreachable() -> bool:
    """Whether a probe found the database unreachable moments ago."""
    return time.monotonic() < _unreachable_until


def cut(conn) -> None:
    """Shut the connection's socket down: a libpq call blocked on it fails at once."""
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except (OSError, psycopg2.Error):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _server_is_working(conn: "GuardedConnection") -> tuple[bool, bool]:
    """(busy, reachable): whether our session is running a statement on the server, and whether the
    server answered at all. Asked from a fresh connection, itself bounded by the connection's timeout."""
    answer: list[tuple[bool, bool]] = []

    def ask() -> None:
        try:
            probe = conn.open_probe()
        except Exception:
            return
        try:
            probe.autocommit = True
            with probe.cursor() as cur:
                cur.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s", (conn.backend_pid,))
                row = cur.fetchone()
            answer.append((row is not None and row[0] == "active" and row[1] not in _WAITING_FOR_CLIENT, True))
        except Exception:
            return
        finally:
            probe.close()

    helper = threading.Thread(target=ask, name="db-probe", daemon=True)
    helper.start()
    helper.join(conn.deadline_timeout + 1)
    return answer[0] if answer else (False, False)


class _Progress:
    """A file for COPY whose every read or write counts as a sign of life of the call."""

    def __init__(self, file, wait: _Wait):
        self._file, self._wait = file, wait

    def read(self, *args):
        _watchdog.touch(self._wait)
        return self._file.read(*args)

    def readline(self, *args):
        _watchdog.touch(self._wait)
        return self._file.readline(*args)

    def write(self, data):
        _watchdog.touch(self._wait)
        return self._file.write(data)


class GuardedCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):
        with self.connection.waiting("a statement"):
            return super().execute(query, vars)

    def executemany(self, query, vars_list):
        with self.connection.waiting("a statement"):
            return super().executemany(query, vars_list)

    def callproc(self, procname, parameters=None):
        with self.connection.waiting("a procedure call"):
            return super().callproc(procname, parameters)

    def copy_expert(self, sql, file, size=8192):
        with self.connection.waiting("a COPY") as wait:
            return super().copy_expert(sql, _Progress(file, wait), size)


class GuardedConnection(psycopg2.extensions.connection):
    """A connection whose every wait for the server is watched (see the module docstring)."""

    deadline_timeout: float = 15.0
    open_probe: Callable[[], Any]
    backend_pid: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cursor_factory = GuardedCursor
        self.backend_pid = self.info.backend_pid

    def guard(self, timeout: float, open_probe: Callable[[], Any]) -> None:
        """Bound every wait by `timeout` seconds without a sign of life; `open_probe()` opens the fresh
        connection that asks whether the server is still working on a long call."""
        self.deadline_timeout, self.open_probe = timeout, open_probe

    def commit(self):
        with self.waiting("a commit"):
            return super().commit()

    def rollback(self):
        with self.waiting("a rollback"):
            return super().rollback()

    @contextmanager
    def waiting(self, what: str) -> Iterator[_Wait]:
        wait = _Wait(self, what)
        _watchdog.begin(wait)
        try:
            yield wait
        except psycopg2.Error as exc:
            if not wait.cut:
                raise
            seconds = time.monotonic() - wait.started
            waited = f"no answer to {what} for {seconds:.0f} s, ETL_DB_TIMEOUT={self.deadline_timeout:g}"
            raise DatabaseUnresponsive(
                f"database session lost ({waited}; the server itself answers) — run again" if wait.reachable else
                f"database stopped answering ({waited}) — check the server and the network, then run again",
                server_reachable=wait.reachable) from exc
        finally:
            _watchdog.end(wait)

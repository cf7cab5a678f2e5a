"""Fault scenarios shared by the fault tests and bench/faults.py: a database that stops answering,
jobs killed or signalled mid-run, and the helpers to run them as real processes.

`StallingProxy` sits between a job and PostgreSQL on loopback. Until `stall()` it
forwards bytes both ways; after it, it keeps every socket open and keeps reading
(the kernel acknowledges every packet) but forwards nothing, and new connections
are accepted and left unanswered — the network fault that TCP keepalives,
`tcp_user_timeout` and a server-side statement timeout do not notice.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from support.runner import ETL_VARIABLES, PYTHON, REPO


class StallingProxy:
    """A loopback TCP proxy to `target` ("host:port") that can be told to stop forwarding."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.connections = 0
        self._closing = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._thread = threading.Thread(target=self._serve, name="stalling-proxy", daemon=True)
        self._thread.start()

    @classmethod
    def for_url(cls, database_url: str) -> tuple["StallingProxy", str]:
        """A proxy in front of the server of `database_url`, and the same URL pointed at the proxy."""
        parts = urlsplit(database_url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
        return proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def stall(self) -> None:
        """From now on forward nothing, in either direction, on old and new connections alike."""
        self.stalled.set()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        for sock in list(self._peers):
            sock.close()
        self.listener.close()

    def _serve(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._selector.select(0.1):
                sock = key.fileobj
                if sock is self.listener:
                    self._accept()
                else:
                    self._pump(sock)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        upstream = None
        if not self.stalled.is_set():
            upstream = socket.create_connection(self.target)
            self._peers[upstream] = client
            self._selector.register(upstream, selectors.EVENT_READ, None)
        self._peers[client] = upstream
        self._selector.register(client, selectors.EVENT_READ, None)

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if self.stalled.is_set():
            if not data:  # a peer that closed: stop watching it, keep the other side open (stalled)
                self._selector.unregister(sock)
            return
        peer = self._peers.get(sock)
        if not data:
            for end in (sock, peer):
                if end is not None and end in self._peers:
                    self._selector.unregister(end)
                    self._peers.pop(end, None)
                    end.close()
            return
        if peer is not None:
            try:
                peer.sendall(data)
            except OSError:
                pass


# --- jobs as real processes ----------------------------------------------------------------------

def child_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a job process: this one's, without any ETL setting, plus `env`."""
    full = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full.update(env, PYTHONPATH=str(REPO))
    return full


def start_job(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `python -m etl ARGV…` as a process of its own (its own process group)."""
    return subprocess.Popen([PYTHON, "-m", "etl", *argv], env=child_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(REPO), start_new_session=True)


@dataclass(frozen=True)
class Ended:
    """How a job process ended: its exit code, seconds from `since`, and what it printed."""

    code: int | None   # None: still running when given up on (then killed)
    seconds: float
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def wait_for_end(process: subprocess.Popen, since: float, limit: float) -> Ended:
    """Wait up to `limit` seconds for `process`; kill it if it is still running then."""
    try:
        stdout, stderr = process.communicate(timeout=max(0.0, since + limit - time.monotonic()))
        return Ended(process.returncode, time.monotonic() - since, stdout, stderr)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return Ended(None, time.monotonic() - since, stdout, stderr)


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll `condition()` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def signal_job(process: subprocess.Popen, signum: int) -> None:
    """Send `signum` to the job process alone (not its children, not this test)."""
    os.kill(process.pid, signum)


# --- scenarios: each returns its figures, for the tests to assert and bench/faults.py to time ------

BACKFILL_START, BACKFILL_END = "2024-01-01", "2024-03-29"
HISTORY_JOB = "fetch_historical_market_data"
# market_data as a clean run leaves it: every column but the fetch and write stamps.
MARKET_COLUMNS = ("symbol", "asset_type", "date", "price", "adj_close", "open", "high", "low", "volume",
                  "change", "percent_change", "currency", "source")


def backfill_argv(symbols: list[str]) -> list[str]:
    return [HISTORY_JOB, "--symbols", ",".join(symbols), "--start", BACKFILL_START, "--end", BACKFILL_END]


def market_rows(db, schema: str) -> list[tuple]:
    columns = ", ".join(MARKET_COLUMNS)
    with db.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {schema}.market_data ORDER BY symbol, asset_type, date")
        return cur.fetchall()


def run_to_the_end(argv: list[str], env: dict[str, str], *, limit: float = 120) -> Ended:
    """Run a job to its end; while a killed run's session still holds the lock (exit 75), run it again."""
    deadline = time.monotonic() + limit
    while True:
        started = time.monotonic()
        ended = wait_for_end(start_job(argv, env), started, max(1.0, deadline - started))
        if ended.code != 75 or time.monotonic() > deadline:
            return ended
        time.sleep(0.2)


def _running_run(db, schema: str) -> int | None:
    with db.cursor() as cur:
        cur.execute(f"SELECT run_id FROM {schema}.etl_job_runs WHERE status = 'running' ORDER BY run_id DESC")
        row = cur.fetchone()
    return row[0] if row else None


def _committed(db, schema: str, run_id: int) -> int:
    with db.cursor() as cur:
        cur.execute(f"SELECT symbols_ok FROM {schema}.etl_job_runs WHERE run_id = %s", (run_id,))
        return cur.fetchone()[0]


@dataclass(frozen=True)
class KilledBackfill:
    kills: int                   # SIGKILLs delivered while the job was running
    moments: list[float]         # seconds after its start each one was sent
    final: Ended                 # the run after the kills
    clean: Ended                 # the same backfill into an untouched schema
    rows: int                    # rows of the clean run
    differences: list[tuple]     # rows in one and not the other (both ways): none expected
    unloaded_announced: list[str]  # assets an abandoned run's event named as committed but with no rows


def killed_backfill(env: dict[str, str], clean_env: dict[str, str], db, symbols: list[str], *, kills: int,
                    rng: random.Random, window: tuple[float, float] = (0.2, 3.0)) -> KilledBackfill:
    """Kill a backfill with SIGKILL `kills` times at random moments, then let one run finish; compare its
    market_data row for row with a clean run of the same backfill in `clean_env`'s schema. `db` is an
    autocommit connection to the database of both schemas."""
    argv = backfill_argv(symbols)
    moments, delivered = [], 0
    while delivered < kills:
        process = start_job(argv, env)
        moment = rng.uniform(*window)
        try:
            process.wait(moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            delivered += 1
            moments.append(moment)
        process.communicate()
    final = run_to_the_end(argv, env)
    clean = run_to_the_end(argv, clean_env)
    mine, theirs = market_rows(db, env["DB_SCHEMA"]), market_rows(db, clean_env["DB_SCHEMA"])
    differences = sorted(set(mine) ^ set(theirs))
    return KilledBackfill(delivered, moments, final, clean, len(theirs), differences,
                          _announced_but_unloaded(db, env["DB_SCHEMA"]))


def _announced_but_unloaded(db, schema: str) -> list[str]:
    """Symbols that an event of an abandoned run lists as committed but that have no row at all."""
    with db.cursor() as cur:
        cur.execute(f"""
            SELECT DISTINCT s.symbol FROM {schema}.etl_outbox o,
                   jsonb_array_elements_text(o.payload -> 'symbols') AS s(symbol)
             WHERE o.payload ->> 'error' LIKE 'abandoned%%'
               AND NOT EXISTS (SELECT 1 FROM {schema}.market_data m WHERE m.symbol = s.symbol)""")
        return [row[0] for row in cur.fetchall()]


@dataclass(frozen=True)
class SignalledBackfill:
    signal: str
    ended: Ended                 # seconds counted from the signal
    committed_before: int        # assets committed when the signal was sent
    status: str                  # of the run's row
    announced: list[str]         # the run's event: its committed assets
    running_left: int            # runs still `running` afterwards (none expected)


def signalled_backfill(env: dict[str, str], db, symbols: list[str], signum: int, *,
                       second_after: float | None = None) -> SignalledBackfill:
    """Start a backfill, send `signum` once it has committed an asset (and again `second_after` seconds
    later, if given), and report how it ended."""
    schema = env["DB_SCHEMA"]
    process = start_job(backfill_argv(symbols), env)
    run_id = wait_for(lambda: _running_run(db, schema) or process.poll() is not None, 60, "the run to start")
    wait_for(lambda: _committed(db, schema, run_id) >= 1 or process.poll() is not None, 60, "a committed asset")
    committed = _committed(db, schema, run_id)
    signalled = time.monotonic()
    signal_job(process, signum)
    if second_after is not None:
        time.sleep(second_after)
        if process.poll() is None:
            signal_job(process, signum)
    ended = wait_for_end(process, signalled, 60)
    with db.cursor() as cur:
        cur.execute(f"SELECT status FROM {schema}.etl_job_runs WHERE run_id = %s", (run_id,))
        status = cur.fetchone()[0]
        cur.execute(f"SELECT payload -> 'symbols' FROM {schema}.etl_outbox WHERE (payload ->> 'run_id')::int = %s",
                    (run_id,))
        event = cur.fetchone()
        cur.execute(f"SELECT count(*) FROM {schema}.etl_job_runs WHERE status = 'running'")
        running = cur.fetchone()[0]
    return SignalledBackfill(signal.Signals(signum).name, ended, committed, status, event[0] if event else [],
                             running)


@dataclass(frozen=True)
class StalledRun:
    ended: Ended                 # the stalled job; seconds counted from the stall
    committed_before: int        # assets it had committed when the database stalled
    line: str                    # its last line on stderr
    next_run: Ended | None       # the run after it, straight to the database (when asked for)
    left_running: int            # runs still `running` after the next run (none expected)


def stalled_run(argv: list[str], env: dict[str, str], direct_env: dict[str, str], proxy: StallingProxy, db, *,
                commits_first: int, limit: float, wait_stale: float | None = None) -> StalledRun:
    """Run `argv` through `proxy` (`env`), stall the proxy once the run has started and committed
    `commits_first` assets, and wait up to `limit` seconds for the job to end. With
    `wait_stale` seconds, then run the job again straight to the database (`direct_env`)."""
    schema = env["DB_SCHEMA"]
    process = start_job(argv, env)
    run_id = wait_for(lambda: _running_run(db, schema) or process.poll() is not None, 60, "the run to start")
    if commits_first:
        wait_for(lambda: _committed(db, schema, run_id) >= commits_first or process.poll() is not None, 60,
                 "committed assets")
    committed = _committed(db, schema, run_id) if commits_first else 0
    proxy.stall()
    ended = wait_for_end(process, time.monotonic(), limit)
    lines = ended.error_lines
    next_run = None
    if wait_stale is not None:
        time.sleep(wait_stale)
        next_run = run_to_the_end(argv, direct_env)
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {schema}.etl_job_runs WHERE status = 'running'")
        left = cur.fetchone()[0]
    return StalledRun(ended, committed, lines[-1] if lines else "", next_run, left)

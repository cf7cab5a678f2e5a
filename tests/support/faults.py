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


def kill_at_random(argv: list[str], env: dict[str, str], *, kills: int, started, rng: random.Random,
                   window: tuple[float, float] = (0.05, 1.5)) -> list[float]:
    """Start the job `kills` times and SIGKILL it at a random moment after `started(process)` says it
    has begun its work; return the moments chosen (seconds after that). A run that ends by itself
    before its moment simply ends."""
    moments = []
    for _ in range(kills):
        process = start_job(argv, env)
        try:
            wait_for(lambda: started(process) or process.poll() is not None, 60, "the job to start")
            moment = rng.uniform(*window)
            moments.append(moment)
            try:
                process.wait(moment)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
    return moments

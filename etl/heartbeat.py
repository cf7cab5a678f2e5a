"""Run heartbeats, and ending the session of a run that stopped answering.

A run's process can stop answering while its database session stays alive on
the server, and with it the run's own lock and the locks of the assets it had
in flight (`run_locks`): a network that silently drops everything between them,
a stopped (SIGSTOP) or wedged process. Later runs would skip those assets, and
never mark the run abandoned, for as long as the server keeps the session. So a
running run stamps `etl_job_runs.heartbeat_at` every few seconds from a
connection of its own, and a starting run looks for runs of its job still
`running` whose heartbeat is older than ETL_STALE_RUN_SECONDS: it ends the
backend holding such a run's lock (`pg_terminate_backend`), which releases all
of that run's locks, and the usual abandoned-run handling (`runs._start_run`)
then marks the run failed and announces what it had committed.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg2

from etl import run_locks
from etl.config import Settings
from etl.errors import EtlError

log = logging.getLogger(__name__)

# The backend holding the run lock of each stale running run of the job (a bigint advisory key shows
# in pg_locks as classid = its high half, objid = its low half, objsubid = 1).
_STALE_HOLDERS = f"""
    SELECT l.pid, r.run_id, extract(epoch FROM now() - coalesce(r.heartbeat_at, r.started_at))
      FROM etl_job_runs r
      JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended({run_locks.RUN_KEY_SQL}, 0)
     WHERE r.job = %(job)s AND r.status = 'running'
       AND coalesce(r.heartbeat_at, r.started_at) < now() - make_interval(secs => %(stale)s)
"""


def interval(settings: Settings) -> float:
    """Seconds between heartbeats: several per ETL_STALE_RUN_SECONDS, at most every 30 s."""
    return max(0.5, min(30.0, settings.stale_run_seconds / 6))


class Heartbeat:
    """Stamps a running run's `heartbeat_at` from a thread and a connection of its own."""

    def __init__(self, settings: Settings, run_id: int, connect):
        self.settings, self.run_id, self._connect = settings, run_id, connect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(1)

    def _beat(self) -> None:
        conn = None
        while not self._stop.wait(interval(self.settings)):
            try:
                if conn is None:
                    conn = self._connect(self.settings, autocommit=True)
                with conn.cursor() as cur:
                    cur.execute("UPDATE etl_job_runs SET heartbeat_at = now() WHERE run_id = %s", (self.run_id,))
            except (psycopg2.Error, EtlError):
                log.debug("heartbeat of run %s failed; trying again", self.run_id, exc_info=True)
                _close_quietly(conn)
                conn = None
        _close_quietly(conn)


def end_stale_runs(conn, settings: Settings, job: str) -> None:
    """End the sessions of `job`'s running runs that stopped answering, and wait (a few seconds at most)
    until the server has let go of their locks."""
    with conn.cursor() as cur:
        cur.execute(_STALE_HOLDERS, {"job": job, "schema": settings.db_schema, "stale": settings.stale_run_seconds})
        holders = cur.fetchall()
        for pid, run_id, silent in holders:
            log.warning("%s: run %s stopped answering (no heartbeat for %.0f s, ETL_STALE_RUN_SECONDS=%d); "
                        "ending its database session (pid %s)", job, run_id, silent, settings.stale_run_seconds,
                        pid)
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.commit()
    deadline = time.monotonic() + 10
    while holders and time.monotonic() < deadline:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", ([h[0] for h in holders],))
            if cur.fetchone()[0] == 0:
                break
        conn.commit()
        time.sleep(0.1)
    conn.commit()


def _close_quietly(conn) -> None:
    if conn is not None:
        try:
            conn.close()
        except psycopg2.Error:
            pass

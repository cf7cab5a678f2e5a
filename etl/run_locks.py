"""The advisory locks of job runs: one per (schema, job, asset) and one per run.

An asset's lock is taken when a run starts working on it and released once that
asset is committed, so overlapping runs of a job (cron, workers) share its
assets instead of one waiting for the other, and the quote jobs are never held
up by the backfill. Locks are session-level on the run's own connection: a run
that dies releases them with its connection, and holding them across the
asset's transaction is what lets the next run see its rows before it may start.
Only the assets in flight are held at once (a server's lock table holds a few
thousand). Each run also holds the lock of its own `run_id` for its whole life,
so a starting run can tell a live run from an abandoned one.

Keys are 64-bit hashes of readable text (`hashtextextended`), so thousands of
assets do not collide the way 32-bit hashes would.
"""

from __future__ import annotations

from typing import Iterable

TRY_LOCKS = ("SELECT pg_try_advisory_lock(hashtextextended(k.key, 0)) "
             "FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, n) ORDER BY k.n")
LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(k, 0)) FROM unnest(%s::text[]) AS k"
# As a condition of the UPDATE that marks abandoned runs: true only for runs whose lock is free
# (held until that transaction ends, so the run cannot come back to life meanwhile).
RUN_KEY_SQL = "%(schema)s || ':run:' || run_id"  # `run_key` in SQL, for a row of etl_job_runs
RUN_LOCK_IS_FREE = f"pg_try_advisory_xact_lock(hashtextextended({RUN_KEY_SQL}, 0))"


def work_key(schema: str, job: str, item: str) -> str:
    """The lock text of one unit of a job's work: an asset (`AAPL:STOCK`), or a set of accounts."""
    return f"{schema}:{job}:{item}"


def run_key(schema: str, run_id: int) -> str:
    return f"{schema}:run:{run_id}"


def try_locks(conn, keys: list[str]) -> list[bool]:
    """Take the lock of each of `keys` that no other session holds, in one statement: whether each was taken."""
    if not keys:
        return []
    with conn.cursor() as cur:
        cur.execute(TRY_LOCKS, (keys,))
        return [got for got, in cur.fetchall()]


def lock(cur, key: str) -> None:
    cur.execute(LOCK, (key,))


def unlock(cur, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        cur.execute(UNLOCK, (keys,))

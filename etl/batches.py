"""Batches of requests from `etl enqueue`: recorded before they are published, counted as their chunks finish.

A chunk is done when one of its runs finished as success or partial (a redelivered
request may run a chunk twice; it counts once). A chunk whose runs all failed is
failed; one with a run still `running` is running; the rest wait in Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2.extras import Json

PROGRESS = """
    SELECT b.job, b.chunks, b.assets, b.created_at,
           count(c.chunk) FILTER (WHERE c.done),
           count(c.chunk) FILTER (WHERE NOT c.done AND c.running),
           count(c.chunk) FILTER (WHERE NOT c.done AND NOT c.running)
      FROM etl_batches b
      LEFT JOIN (SELECT batch_chunk AS chunk,
                        bool_or(status IN ('success', 'partial')) AS done,
                        bool_or(status = 'running') AS running
                   FROM etl_job_runs
                  WHERE batch_id = %(batch)s
                  GROUP BY batch_chunk) c ON true
     WHERE b.batch_id = %(batch)s
     GROUP BY b.batch_id"""


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    job: str
    chunks: int
    assets: int
    created_at: datetime
    done: int
    running: int
    failed: int

    def describe(self) -> str:
        waiting = self.chunks - self.done - self.running - self.failed
        parts = [f"{self.done} of {self.chunks} chunks done"]
        parts += [f"{n} {what}" for n, what in ((self.running, "running"), (self.failed, "failed"),
                                               (waiting, "waiting")) if n]
        return (f"batch {self.batch_id} ({self.job}, {self.assets} assets, enqueued "
                f"{self.created_at:%Y-%m-%d %H:%M:%S %Z}): " + ", ".join(parts))


def record_batch(cur, batch_id: str, job: str, chunks: int, assets: int, params: dict) -> None:
    cur.execute("INSERT INTO etl_batches (batch_id, job, chunks, assets, params) VALUES (%s, %s, %s, %s, %s)",
                (batch_id, job, chunks, assets, Json(params)))


def batch_progress(conn, batch_id: str) -> BatchProgress | None:
    with conn.cursor() as cur:
        cur.execute(PROGRESS, {"batch": batch_id})
        row = cur.fetchone()
    return None if row is None else BatchProgress(batch_id, *row)

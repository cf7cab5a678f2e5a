"""Holding a run's locks from the test, as another run would."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg2

from etl.run_locks import work_key


@contextmanager
def held_by_another_run(database_url: str, schema: str, job: str, *items: str) -> Iterator[None]:
    """Hold the locks of `items` (asset specs like AAPL:STOCK) of `job` on a connection of our own."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            for item in items:
                cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (work_key(schema, job, item),))
                assert cur.fetchone()[0], f"{item} is already locked"
        conn.commit()
        yield
    finally:
        conn.close()

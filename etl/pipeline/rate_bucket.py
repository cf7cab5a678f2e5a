"""Each provider's per-minute limit, shared by every process using the database.

Threads, cron runs and workers all reserve their requests from one token bucket
per provider in `provider_rate_bucket`, with one atomic statement like the daily
budget's: N processes together start at most `capacity + rate × w` requests in
any window of w seconds, instead of N times the limit. The bucket is kept in its
virtual-scheduling form (GCRA): `next_free` is when the bucket is empty again; a
reservation of n units starts at greatest(now, next_free − (capacity − 1) ×
interval) and moves `next_free` n intervals on. The statement returns how long
to wait, measured on the database's clock, so the hosts' clocks never matter;
the process then waits locally (no query while it waits) and sends.

With the default capacity of 1 the requests of every process are spaced one
interval apart: at most the limit in any 60-second window, plus one request of
tolerance (a request that woke up late next to one sent on time). A
`Retry-After` seen by any process moves `next_free` past it, holding them all.
A limit so high that its interval is shorter than BLOCK_SECONDS (one that
hardly binds) is reserved BLOCK_SECONDS of turns per statement, which the
process then hands out itself one interval apart: no statement per request, the
same limit; turns left unused when the process ends delay the others by at
most BLOCK_SECONDS.

Should the database fail for a reservation, the limiter paces this process
alone (logged once): requests go on, under the old per-process limit.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import psycopg2

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.05

RESERVE = """
    INSERT INTO provider_rate_bucket AS b (provider, next_free, updated_at)
    VALUES (%(provider)s, clock_timestamp() + make_interval(secs => %(units)s * %(interval)s), clock_timestamp())
    ON CONFLICT (provider) DO UPDATE
       SET next_free = greatest(b.next_free, EXCLUDED.updated_at) + make_interval(secs => %(units)s * %(interval)s),
           updated_at = EXCLUDED.updated_at
    RETURNING extract(epoch FROM greatest(b.updated_at, b.next_free
                                          - make_interval(secs => (%(units)s + %(capacity)s - 1) * %(interval)s))
                                 - b.updated_at)"""
HOLD = """
    INSERT INTO provider_rate_bucket AS b (provider, next_free)
    VALUES (%(provider)s, clock_timestamp() + make_interval(secs => %(seconds)s + (%(capacity)s - 1) * %(interval)s))
    ON CONFLICT (provider) DO UPDATE SET next_free = greatest(b.next_free, EXCLUDED.next_free), updated_at = now()"""


class RateBucket:
    """One provider's share of the bucket table, reserved through `connection()` (an autocommit connection
    that `guard` serializes between threads). `reserve` returns the seconds to wait before sending, or None
    when the database could not be asked (the caller then paces locally)."""

    def __init__(self, connection: Callable[[], object], guard: threading.Lock, provider: str, per_minute: float,
                 capacity: int = 1):
        if capacity < 1:
            raise ValueError(f"{provider}: a rate bucket holds at least 1 request, not {capacity}")
        self.connection = connection
        self.guard = guard
        self.provider = provider
        self.interval = 60.0 / per_minute
        self.capacity = capacity
        self.broken = False
        self.block = max(1, int(BLOCK_SECONDS / self.interval))
        self._prepaid = 0            # turns reserved and not handed out yet (with `block` > 1)
        self._next = 0.0             # when the next of them may start (time.monotonic)
        self._turns = threading.Lock()

    def reserve(self, units: int = 1) -> float | None:
        if self.block == 1:
            return self._reserve(units)
        with self._turns:
            now = time.monotonic()
            if self._prepaid < units:
                block = max(units, self.block)
                delay = self._reserve(block)
                if delay is None:
                    return None
                self._next, self._prepaid = max(self._next, now + delay), block
            self._prepaid -= units
            start = max(now, self._next)
            self._next = start + units * self.interval
            return start - now

    def _reserve(self, units: int) -> float | None:
        row = self._execute(RESERVE, units=units)
        return None if row is None else max(0.0, float(row[0]))

    def hold(self, seconds: float) -> None:
        """Start no request of this provider, in any process, for `seconds` (the provider said Retry-After)."""
        with self._turns:
            self._prepaid = 0
        self._execute(HOLD, seconds=seconds, fetch=False)

    def _execute(self, statement: str, *, fetch: bool = True, **values):
        if self.broken:
            return None
        params = {"provider": self.provider, "interval": self.interval, "capacity": self.capacity, **values}
        try:
            with self.guard, self.connection().cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchone() if fetch else None
        except psycopg2.Error as exc:
            self.broken = True
            log.warning("%s: the shared rate limit in provider_rate_bucket cannot be used (%s); pacing this "
                        "process alone — check the database", self.provider, str(exc).strip().splitlines()[0])
            return None

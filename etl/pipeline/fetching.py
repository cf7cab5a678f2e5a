"""The fetch threads of a backfill: a small pool fetching assets while the writer thread loads those done.

Fetching runs on threads (provider sessions are thread-safe and share their rate
limiter) so a backfill can reach a provider's rate limit despite network latency;
each thread also validates and encodes what it fetched. The writer thread takes
what is ready as groups, and draws more work (taking its locks) as fetches end.
"""

from __future__ import annotations

import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

Plan = TypeVar("Plan")
Result = TypeVar("Result")

IN_FLIGHT = 4  # assets per fetch thread fetched or waiting to be written
# While a backfill runs, how long a thread may hold the interpreter before another gets it (Python's
# default: 5 ms). The writer thread makes some twenty round trips to the database per group and needs
# the interpreter back after each; CPU-bound fetch threads (parsing, encoding) would otherwise keep it
# waiting for up to the default after every one.
SWITCH_INTERVAL = 0.0005


def in_flight(workers: int, count: int) -> int:
    """How many of `count` assets to have fetched or waiting to be written (and locked) at once:
    IN_FLIGHT per fetch thread, enough for the writer to find several ready while it waits on the
    database (fewer, larger groups: fewer round trips); yet never more than half of them (but one per
    thread), so that an overlapping run still finds work to share; and few enough that fetched rows
    never pile up in memory when writing is slower than fetching."""
    return min(IN_FLIGHT * workers, max(workers, count // 2))


@contextmanager
def switching_every(seconds: float = SWITCH_INTERVAL) -> Iterator[None]:
    """Python's thread switch interval set to `seconds` for the block (SWITCH_INTERVAL says why)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def fetch_all(fetch: Callable[[Plan], Result], draw: Callable[[int], list[Plan]], count: int, *,
              threads: int) -> Iterator[list[Result]]:
    """Yield `fetch(plan)` of the plans `draw(n)` gives (at most `count`) as they are ready: each time,
    every one ready by then; an exception stops everything (after those ready with it). `draw` is
    called on this thread, for as many plans as there are fetches to submit."""
    workers = max(1, min(threads, count))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        running: set[Future] = {pool.submit(fetch, plan) for plan in draw(in_flight(workers, count))}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            failed = [future for future in done if future.exception() is not None]
            ready = [future.result() for future in done if future.exception() is None]
            if ready:
                yield ready
            for future in failed:
                future.result()
            for plan in draw(len(done)):
                running.add(pool.submit(fetch, plan))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

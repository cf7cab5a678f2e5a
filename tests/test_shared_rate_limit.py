"""One per-minute limit for every process: the token bucket in provider_rate_bucket, against real PostgreSQL
and a loopback server that counts the requests it receives."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import date, timedelta

import psycopg2

from etl.pipeline.rate_bucket import RateBucket
from etl.utils.fetch_utils import get_json, make_session
from support.fake_api import Response
from support.runner import ETL_VARIABLES, PYTHON, REPO
from support.yahoo_server import YahooServer

RATE_PER_SECOND = 10
TOLERANCE = 1  # one request: a reserved request that woke up late beside one sent on time (rate_bucket's docstring)


def bucket(database_url: str, schema: str, per_minute: float, capacity: int = 1) -> RateBucket:
    """A bucket on a connection of its own, as another process would hold it."""
    conn = psycopg2.connect(database_url, options=f"-c search_path={schema}")
    conn.autocommit = True
    return RateBucket(lambda: conn, threading.Lock(), "testapi", per_minute, capacity)


def most_in_a_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start <= window) for i, start in enumerate(times))


def test_reservations_from_two_connections_are_spaced_one_interval_apart(db, database_url, schema):
    first, second = bucket(database_url, schema, 600), bucket(database_url, schema, 600)
    waits = [b.reserve() for b in (first, second, first, second)]
    assert waits[0] == 0
    for turn, wait in enumerate(waits[1:], start=1):
        assert abs(wait - 0.1 * turn) < 0.05, waits


def test_a_bucket_of_capacity_three_lets_three_go_at_once_then_spaces_the_rest(db, database_url, schema):
    shared = bucket(database_url, schema, 600, capacity=3)
    waits = [shared.reserve() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert 0.05 < waits[3] < 0.15 and 0.15 < waits[4] < 0.25, waits


def test_a_request_of_cost_three_takes_three_turns(db, database_url, schema):
    shared = bucket(database_url, schema, 600)
    assert shared.reserve(3) == 0
    assert 0.25 < shared.reserve() < 0.35


def test_a_retry_after_seen_by_one_process_holds_the_others(fake_api, db, database_url, schema):
    fake_api.route("/quote", lambda request: (Response(429, {"error": "slow down"}, headers={"Retry-After": "1"})
                                              if len(fake_api.requests) == 1 else Response(200, {"ok": True})))
    one = make_session("testapi", timeout=5, retries=1, backoff=0.01, per_minute=6000,
                       bucket=bucket(database_url, schema, 6000))
    other = make_session("testapi", timeout=5, retries=0, backoff=0.01, per_minute=6000,
                         bucket=bucket(database_url, schema, 6000))
    assert get_json(one, f"{fake_api.base_url}/quote") == {"ok": True}  # 429, held 1 s, then answered
    assert get_json(other, f"{fake_api.base_url}/quote") == {"ok": True}
    first_429, *later = [r.at for r in fake_api.requests]
    assert len(later) == 2 and all(at - first_429 >= 0.95 for at in later)


def test_an_unusable_database_leaves_the_limiter_pacing_locally(fake_api):
    def broken():
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    fake_api.route("/quote", {"ok": True})
    client = make_session("testapi", timeout=5, per_minute=600,
                          bucket=RateBucket(broken, threading.Lock(), "testapi", 600))
    started = time.monotonic()
    for _ in range(3):
        assert get_json(client, f"{fake_api.base_url}/quote") == {"ok": True}
    assert time.monotonic() - started >= 0.19  # still 10 a second, paced by this process alone


def test_four_processes_sharing_a_limit_stay_within_it_in_every_window(fake_api, etl_env, db):
    yahoo = YahooServer(fake_api)
    env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    env.update(etl_env, PYTHONPATH=str(REPO), YAHOO_BASE_URL=fake_api.base_url,
               PROVIDER_RATE_LIMITS=f"yahoo={RATE_PER_SECOND * 60}")
    start = (date.today() - timedelta(days=6)).isoformat()
    jobs = [subprocess.Popen([PYTHON, "-m", "etl", "fetch_historical_market_data", "--start", start, "--symbols",
                              ",".join(f"P{process}S{n}:STOCK" for n in range(8))],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for process in range(4)]
    for job in jobs:
        _, stderr = job.communicate(timeout=120)
        assert job.returncode == 0, stderr
    arrivals = [r.at for r in yahoo.chart_requests()]
    assert len(arrivals) == 32
    for window in (0.25, 0.5, 1.0, 2.0):
        bound = 1 + RATE_PER_SECOND * window + TOLERANCE  # the bucket's size (1) + rate × w, and the tolerance
        assert most_in_a_window(arrivals, window) <= bound, (window, sorted(arrivals))
    assert max(arrivals) - min(arrivals) >= 31 / RATE_PER_SECOND - 0.1


def test_a_limit_that_hardly_binds_reserves_its_turns_a_block_at_a_time_and_keeps_the_rate(db, database_url, schema):
    from etl.utils.fetch_utils import RateLimiter

    class Counted(RateBucket):
        statements: list[int] = []

        def _reserve(self, units: int) -> float | None:
            self.statements.append(units)
            return super()._reserve(units)

    def counted(per_minute: float) -> Counted:
        conn = psycopg2.connect(database_url, options=f"-c search_path={schema}")
        conn.autocommit = True
        shared = Counted(lambda: conn, threading.Lock(), "testapi", per_minute)
        shared.statements = []
        return shared

    per_minute = 600_000                          # 10,000 a second: a 0.1 ms interval
    fast = counted(per_minute)
    limiter = RateLimiter(per_minute, fast)
    started = time.monotonic()
    for _ in range(1200):
        limiter.wait()
    seconds = time.monotonic() - started
    assert fast.statements == [500, 500, 500]     # 50 ms of turns per statement, not one statement a request
    assert seconds >= 1199 * 60 / per_minute       # and never faster than the limit
    slow = counted(600)
    slow.reserve(), slow.reserve()
    assert slow.statements == [1, 1]               # a limit that binds reserves each request

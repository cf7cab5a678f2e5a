"""The fault suite: a backfill killed with SIGKILL at random points, then interrupted by SIGINT and
SIGTERM, against the loopback Yahoo stand-in and real PostgreSQL. Scenarios live in
tests/support/faults.py, which bench/faults.py times."""

from __future__ import annotations

import os
import random
import re
import signal
import time

import pytest

from support.db import rows
from support.faults import killed_backfill, run_to_the_end, backfill_argv, signalled_backfill
from support.yahoo_server import YahooServer

SYMBOLS = [f"K{i}:STOCK" for i in range(16)]


@pytest.fixture
def yahoo_env(fake_api, etl_env):
    """The test's environment with the Yahoo stand-in, paced at 10 requests a second so that a backfill of
    16 assets takes about 2 s and the faults land in the middle of it."""
    YahooServer(fake_api, holidays={__import__("datetime").date(2024, 1, 15)})
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, PROVIDER_RATE_LIMITS="yahoo=600")
    return etl_env


def test_a_backfill_killed_at_twelve_random_points_ends_identical_to_a_clean_run(yahoo_env, db, schema):
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(10**6))
    clean_env = {**yahoo_env, "DB_SCHEMA": f"{schema}_clean", "KAFKA_TOPIC_PREFIX": f"{schema}_clean."}
    outcome = killed_backfill(yahoo_env, clean_env, db, SYMBOLS, kills=12, rng=random.Random(seed))
    context = f"FAULT_SEED={seed}, kills at {[round(m, 2) for m in outcome.moments]} s"
    assert outcome.kills == 12, context
    assert outcome.final.code == 0 and outcome.clean.code == 0, (context, outcome.final.stderr[-1500:])
    assert outcome.rows > 16 * 50, context
    assert outcome.differences == [], context
    assert outcome.unloaded_announced == [], context
    assert rows(db, "SELECT count(*) FROM etl_job_runs WHERE status = 'running'") == [(0,)]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_real_backfill_at_its_next_asset_announcing_what_it_committed(
        signum, code, fake_api, etl_env, db):
    YahooServer(fake_api)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, PROVIDER_RATE_LIMITS="yahoo=120")
    outcome = signalled_backfill(etl_env, db, SYMBOLS, signum)
    assert outcome.ended.code == code, outcome.ended.stderr[-1500:]
    assert outcome.ended.seconds < 5
    assert outcome.status in ("partial", "failed") and outcome.running_left == 0
    assert len(outcome.announced) >= outcome.committed_before >= 1
    loaded = {r[0] for r in rows(db, "SELECT DISTINCT symbol FROM market_data")}
    assert set(outcome.announced) <= loaded
    assert len(outcome.announced) < len(SYMBOLS)
    assert run_to_the_end(backfill_argv(SYMBOLS), etl_env).code == 0


def test_a_second_signal_ends_a_backfill_at_once_while_the_first_waits_for_a_slow_answer(fake_api, etl_env, db):
    yahoo = YahooServer(fake_api)

    def slow_after_the_first(request):
        if not request.path.endswith(("/K0", "/K1")):
            time.sleep(15)
        return yahoo._chart(request)

    fake_api.route(re.compile(r"/v8/finance/chart/(.+)"), slow_after_the_first)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url)
    outcome = signalled_backfill(etl_env, db, SYMBOLS[:4], signal.SIGTERM, second_after=1.0)
    assert outcome.ended.code == 143, outcome.ended.stderr[-1500:]
    assert 1.0 <= outcome.ended.seconds < 2.5, "the first signal waits for the answer; the second does not"

"""The outbox: events committed with their data, published to a real broker, never lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from support.db import row_count, rows, scalar
from support.events import read_events
from support.runner import PYTHON, run_etl_process

SAMPLE_JOB = str(Path(__file__).resolve().parent / "support" / "sample_job.py")
NOT_CONFIGURED = "KAFKA_BOOTSTRAP_SERVERS is not set"


def run_sample(env, *args):
    return run_etl_process([PYTHON, SAMPLE_JOB, *args], env, timeout=90)


def flush(env):
    return run_etl_process([PYTHON, "-m", "etl", "outbox", "flush"], env, timeout=90)


def topic(env) -> str:
    return f"{env['KAFKA_TOPIC_PREFIX']}SAMPLE_JOB_COMPLETE"


def pending(db) -> int:
    return row_count(db, "etl_outbox", "published_at IS NULL")


@pytest.fixture
def broker_env(etl_env, own_broker):
    etl_env["KAFKA_BOOTSTRAP_SERVERS"] = own_broker.bootstrap
    return etl_env


def test_event_is_committed_with_the_data_and_consumed_exactly_once(etl_env, with_kafka, db):
    assert run_sample(etl_env).returncode == 0
    assert flush(etl_env).returncode == 0
    events = read_events(with_kafka, topic(etl_env))
    assert [e["event_id"] for e in events] == [str(scalar(db, "SELECT event_id FROM etl_outbox"))]
    assert events[0]["status"] == "success" and events[0]["symbols"] == ["AAPL:STOCK", "MSFT:STOCK"]
    assert pending(db) == 0
    assert row_count(db, "market_data") == 2


def test_event_key_is_the_job_name(etl_env, with_kafka, db):
    assert run_sample(etl_env).returncode == 0
    assert rows(db, "SELECT key, topic FROM etl_outbox") == [("sample_job", topic(etl_env))]


def test_with_the_broker_down_the_job_exits_0_quickly_and_the_event_waits(broker_env, own_broker, db):
    own_broker.stop()
    started = time.monotonic()
    result = run_sample(broker_env)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20, "a dead broker must cost seconds, not minutes"
    assert "stay in the outbox" in result.stderr
    assert row_count(db, "market_data") == 2
    assert pending(db) == 1


def test_a_run_stopped_after_a_checkpoint_with_the_broker_down_tries_kafka_only_once(broker_env, own_broker, db):
    own_broker.stop()
    assert run_sample(broker_env).returncode == 0  # leaves an event waiting, so the next run tries Kafka first
    result = run_sample(broker_env, "--checkpoint", "--raise-after-write")
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("is unreachable") == 1, result.stderr
    assert pending(db) == 2


def test_after_the_broker_is_back_outbox_flush_delivers_the_waiting_event(broker_env, own_broker, db):
    own_broker.stop()
    assert run_sample(broker_env).returncode == 0
    own_broker.start()
    result = flush(broker_env)
    assert result.returncode == 0, result.stderr
    assert "published 1 event(s); 0 pending" in result.stdout
    assert pending(db) == 0
    events = read_events(own_broker.bootstrap, topic(broker_env), expect=1)
    assert [e["event_id"] for e in events] == [str(scalar(db, "SELECT event_id FROM etl_outbox"))]


def test_the_next_job_publishes_events_left_by_earlier_runs(broker_env, own_broker, db):
    own_broker.stop()
    assert run_sample(broker_env).returncode == 0
    own_broker.start()
    assert run_sample(broker_env, "--price", "101").returncode == 0
    assert pending(db) == 0
    assert len(read_events(own_broker.bootstrap, topic(broker_env), expect=2)) == 2


def test_nothing_is_published_for_a_run_that_rolled_back(etl_env, with_kafka, db):
    assert run_sample(etl_env, "--raise-after-write").returncode == 1
    assert flush(etl_env).returncode == 0
    assert row_count(db, "etl_outbox") == 0
    assert read_events(with_kafka, topic(etl_env), timeout=3) == []


def test_without_kafka_configured_events_stay_pending_and_the_job_says_so_once(etl_env, db):
    first = run_sample(etl_env)
    second = run_sample(etl_env, "--price", "101")
    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stderr.count(NOT_CONFIGURED) == 1
    assert second.stderr.count(NOT_CONFIGURED) == 1
    assert pending(db) == 2


def test_outbox_flush_exits_0_when_nothing_is_pending(etl_env, db):
    result = flush(etl_env)
    assert result.returncode == 0, result.stderr
    assert "published 0 event(s); 0 pending" in result.stdout


def test_outbox_flush_exits_0_and_says_the_events_wait_when_kafka_is_not_configured(etl_env, db):
    assert run_sample(etl_env).returncode == 0
    result = flush(etl_env)
    assert result.returncode == 0
    assert NOT_CONFIGURED in result.stderr
    assert pending(db) == 1


def test_an_event_the_broker_refuses_holds_back_every_later_event(etl_env, with_kafka, db):
    too_big = "x" * (1024 * 1024 + 1)  # over the producer's max_request_size: never accepted
    events = [("good-1", {"n": 1}), ("refused", {"n": 2, "blob": too_big}), ("good-3", {"n": 3})]
    with db.cursor() as cur:
        for minute, (key, payload) in enumerate(events):
            cur.execute("INSERT INTO etl_outbox (topic, key, payload, created_at) "
                        "VALUES (%s, %s, %s, now() + make_interval(mins => %s))",
                        (topic(etl_env), key, json.dumps(payload), minute))
    result = flush(etl_env)
    assert result.returncode == 1, result.stderr
    assert "published 1 event(s); 2 pending" in result.stdout and "stay in the outbox" in result.stderr
    assert [e["n"] for e in read_events(with_kafka, topic(etl_env))] == [1]
    assert rows(db, "SELECT key FROM etl_outbox WHERE published_at IS NULL ORDER BY created_at") == [
        ("refused",), ("good-3",)]


def test_outbox_flush_exits_1_when_the_broker_is_unreachable(broker_env, own_broker, db):
    own_broker.stop()
    assert run_sample(broker_env).returncode == 0
    result = flush(broker_env)
    assert result.returncode == 1
    assert "published 0 event(s); 1 pending" in result.stdout
    assert pending(db) == 1

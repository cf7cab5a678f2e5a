"""`etl enqueue` fans a job out over the worker group: one request per chunk, one batch, counted by `etl runs`."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from types import SimpleNamespace

from kafka import KafkaConsumer, TopicPartition

from etl.worker_kafka import request_batch
from support.db import row_count
from support.events import read_events
from support.runner import PYTHON, run_etl, run_etl_process
from support.yahoo_server import YahooServer
from test_worker import wait_until, workers  # noqa: F401 (the fixture)

REQUESTS = "HISTORICAL_MARKET_DATA_REQUEST"
EVENTS = "HISTORICAL_MARKET_DATA_COMPLETE"


def requests_on(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        consumer.seek_to_beginning()
        records, deadline = [], time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if not batch and records:
                break
            records += [r for rs in batch.values() for r in rs]
        return records
    finally:
        consumer.close()


def etl_runs_batch(env, batch_id: str) -> str:
    result = run_etl_process([PYTHON, "-m", "etl", "runs", "--batch", batch_id], env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_enqueue_of_400_assets_in_chunks_of_50_is_8_requests_that_two_workers_run_as_one_batch(
        workers, with_kafka, fake_api, etl_env, db):  # noqa: F811
    YahooServer(fake_api)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, PROVIDER_RATE_LIMITS="yahoo=1000000")
    specs = [f"E{n:03d}:STOCK" for n in range(400)]
    assert run_etl("assets", "add", *specs) == 0
    first, second = workers(), workers()
    wait_until(lambda: all("partitions assigned: " + etl_env["KAFKA_TOPIC_PREFIX"] in w.log() for w in (first, second)),
               60, "both workers to be given partitions", logs=(first, second))

    result = run_etl_process([PYTHON, "-m", "etl", "enqueue", "fetch_historical_market_data", "--all-active",
                              "--chunk", "50", "--start", (date.today() - timedelta(days=5)).isoformat()], etl_env)
    assert result.returncode == 0, result.stderr
    batch_id = re.search(r"batch ([0-9a-f-]{36}): 8 request\(s\) of up to 50 asset\(s\) \(400 in all\)",
                         result.stdout).group(1)

    sent = requests_on(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + REQUESTS)
    assert len(sent) == 8
    assert {dict(r.headers)["batch_id"].decode() for r in sent} == {batch_id}
    assert sorted(int(dict(r.headers)["batch_chunk"]) for r in sent) == list(range(8))
    assert len({r.partition for r in sent}) == 6, "round-robin over the six partitions"
    assert all(b"batch" not in r.value for r in sent), "the batch is not among the job's options"

    wait_until(lambda: "8 of 8 chunks done" in etl_runs_batch(etl_env, batch_id), 120, "the batch to finish",
               logs=(first, second))
    events = read_events(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + EVENTS, expect=8, timeout=30)
    assert len(events) == 8
    assert {e["batch_id"] for e in events} == {batch_id}
    assert sorted(e["batch_chunk"] for e in events) == list(range(8))
    assert sorted(s for e in events for s in e["symbols"]) == sorted(s.split(":")[0] for s in specs)
    assert first.jobs_started("fetch_historical_market_data") and second.jobs_started("fetch_historical_market_data")
    assert row_count(db, "etl_job_runs", "batch_id = %s AND status = 'success'", (batch_id,)) == 8


def test_runs_batch_counts_chunks_and_names_an_unknown_batch(etl_env, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO etl_batches (batch_id, job, chunks, assets) "
                    "VALUES ('6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f', 'fetch_market_data', 3, 30)")
        cur.execute("INSERT INTO etl_job_runs (job, status, finished_at, batch_id, batch_chunk) VALUES "
                    "('fetch_market_data', 'success', now(), '6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f', 0), "
                    "('fetch_market_data', 'success', now(), '6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f', 0), "
                    "('fetch_market_data', 'running', NULL, '6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f', 1)")
    out = etl_runs_batch(etl_env, "6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f")
    assert "1 of 3 chunks done, 1 running, 1 waiting" in out
    unknown = run_etl_process([PYTHON, "-m", "etl", "runs", "--batch", "0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b"],
                              etl_env)
    assert unknown.returncode == 1 and "no batch 0b6c1b9e" in unknown.stderr


def test_enqueue_without_a_broker_exits_2_naming_the_setting(etl_env):
    result = run_etl_process([PYTHON, "-m", "etl", "enqueue", "fetch_market_data", "--all-active"], etl_env)
    assert result.returncode == 2 and "KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_unreadable_batch_headers_run_the_request_outside_any_batch():
    record = SimpleNamespace(topic="T", partition=0, offset=1, headers=[("batch_id", b"not-a-uuid")])
    assert request_batch(record) is None
    good = SimpleNamespace(topic="T", partition=0, offset=1,
                           headers=[("batch_id", b"6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f"), ("batch_chunk", b"3")])
    assert (request_batch(good).batch_id, request_batch(good).chunk) == ("6f1c1c8e-5b7a-4d0e-9a43-2b1f0c3d4e5f", 3)
    assert request_batch(SimpleNamespace(headers=[])) is None

"""The transactional outbox and the Kafka producer that drains it.

An event is first a row of `etl_outbox`, written in the same transaction as the
data it announces; `flush_outbox` then publishes pending rows (acks=all) and
marks them published. A broker that is down leaves the rows pending for the
next flush: consumers may see an event twice (they deduplicate by event_id),
never zero times. Every producer timeout is bounded so a dead broker costs a
few seconds, not minutes.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

from kafka.serializer import Serializer
from psycopg2.extras import Json

log = logging.getLogger(__name__)

PRODUCER_TIMEOUT_MS = 5_000
_warned_unconfigured = False


def enqueue_event(cur, topic: str, key: str, payload: dict | Callable[[str], dict]) -> str:
    """Write one event to the outbox in the caller's transaction; return its event_id.

    `payload` may be a function of the new event_id, so the id can be part of it.
    """
    event_id = str(uuid.uuid4())
    body = payload(event_id) if callable(payload) else {"event_id": event_id, **payload}
    cur.execute("INSERT INTO etl_outbox (event_id, topic, key, payload) VALUES (%s, %s, %s, %s)",
                (event_id, topic, key, Json(body, dumps=lambda v: json.dumps(v, default=str))))
    return event_id


class Utf8Serializer(Serializer):
    def serialize(self, topic, headers, data):
        return None if data is None else data.encode("utf-8")


class JsonSerializer(Serializer):
    """UTF-8 JSON, compact; Decimals and dates as strings."""

    def serialize(self, topic, headers, data):
        return json.dumps(data, default=str, separators=(",", ":")).encode("utf-8")


def make_producer(bootstrap_servers: tuple[str, ...] | list[str], timeout_ms: int = PRODUCER_TIMEOUT_MS):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=list(bootstrap_servers),
        acks="all",
        client_id="financial-tracker-etl",
        bootstrap_timeout_ms=timeout_ms,
        max_block_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms * 2,
        retries=2,
        key_serializer=Utf8Serializer(),
        value_serializer=JsonSerializer(),
    )


def flush_outbox(conn, settings, *, limit: int = 10_000) -> tuple[int, int]:
    """Publish pending outbox events in creation order; return (published, still pending).

    Never raises for broker problems: they are logged once and the events stay
    pending. Rows are locked with SKIP LOCKED so concurrent flushes do not
    publish the same row at the same time.
    """
    global _warned_unconfigured
    with conn.cursor() as cur:
        if not settings.kafka_bootstrap_servers:
            cur.execute("SELECT count(*) FROM etl_outbox WHERE published_at IS NULL")
            pending = cur.fetchone()[0]
            conn.commit()
            if pending and not _warned_unconfigured:
                _warned_unconfigured = True
                log.info("KAFKA_BOOTSTRAP_SERVERS is not set: %d event(s) wait in etl_outbox "
                         "(set it and run `etl outbox flush` to publish them)", pending)
            return 0, pending
        cur.execute("""
            SELECT event_id, topic, key, payload FROM etl_outbox
             WHERE published_at IS NULL
             ORDER BY created_at, event_id
             LIMIT %s
               FOR UPDATE SKIP LOCKED""", (limit,))
        events = cur.fetchall()
        if not events:
            conn.commit()
            return 0, 0
        published = _publish(settings.kafka_bootstrap_servers, events)
        if published:
            cur.execute("UPDATE etl_outbox SET published_at = now() WHERE event_id = ANY(%s::uuid[])",
                        ([str(event_id) for event_id in published],))
        cur.execute("SELECT count(*) FROM etl_outbox WHERE published_at IS NULL")
        pending = cur.fetchone()[0]
    conn.commit()
    return len(published), pending


def _publish(bootstrap_servers, events: list[tuple[Any, str, str, dict]]) -> list[Any]:
    """Send events; return the ids the broker acknowledged, stopping at the first failure."""
    from kafka.errors import KafkaError

    where = ",".join(bootstrap_servers)
    try:
        producer = make_producer(bootstrap_servers)
    except (KafkaError, OSError) as exc:
        log.warning("Kafka at %s is unreachable (%s): %d event(s) stay in the outbox — they are sent by "
                    "the next job or `etl outbox flush`", where, type(exc).__name__, len(events))
        return []
    published = []
    try:
        for event_id, topic, key, payload in events:
            try:
                producer.send(topic, key=key, value=payload).get(timeout=PRODUCER_TIMEOUT_MS / 1000)
            except (KafkaError, OSError) as exc:
                log.warning("Kafka at %s did not take event %s for %s (%s): %d event(s) stay in the outbox",
                            where, event_id, topic, type(exc).__name__, len(events) - len(published))
                break
            published.append(event_id)
    finally:
        producer.close(timeout=PRODUCER_TIMEOUT_MS / 1000)
    if published:
        log.info("published %d event(s) to Kafka", len(published))
    return published

"""Read what the jobs published: every message of a topic, from the beginning."""

from __future__ import annotations

import json
import time

from kafka import KafkaConsumer, TopicPartition


def read_events(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 10.0) -> list[dict]:
    """All messages on `topic` as decoded JSON, waiting up to `timeout` for `expect` of them
    (or, with `expect=None`, until the topic stays quiet for a second)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             request_timeout_ms=5000)
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            time.sleep(0.2)
            consumer.topics()
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        events: list[dict] = []
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                events.extend(json.loads(r.value) for r in records)
            if batch:
                quiet_since = time.monotonic()
            if expect is not None and len(events) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > 1.0:
                break
        return events
    finally:
        consumer.close()

"""The worker's Kafka plumbing: requests in (parsed by the job's own parser), its topics and consumer,
dead letters and offset commits."""

from __future__ import annotations

import argparse
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from etl.config import Settings
from etl.errors import PoisonMessage, UsageError
from etl.registry import Job
from etl.runs import Batch

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".DLQ"


def request_argv(options: object) -> list[str]:
    """The command line of a request's JSON options: {"symbols": ["AAPL:STOCK", "BTC:CRYPTO"], "dry_run": true}
    → ["--symbols=AAPL:STOCK,BTC:CRYPTO", "--dry-run"]. false and null leave an option out."""
    if not isinstance(options, dict):
        raise PoisonMessage(f"the request must be a JSON object of options, got {type(options).__name__}")
    argv = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
            continue
        if value is False or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, (dict, list, bool)) or item is None for item in values):
            raise PoisonMessage(f"option {key!r} takes text or numbers, got {value!r}")
        argv.append(f"{flag}={','.join(str(item) for item in values)}")
    return argv


def request_options(job: Job, value: bytes | None) -> argparse.Namespace:
    """A request's options, parsed by the job's own parser; PoisonMessage when it would reject them."""
    try:
        options = json.loads(value.decode("utf-8")) if value else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"the request is not UTF-8 JSON: {exc}") from None
    if isinstance(options, dict) and "help" in options:
        raise PoisonMessage("option 'help' cannot be requested")
    try:
        return job.load().build_parser().parse_args(request_argv(options))
    except UsageError as exc:
        raise PoisonMessage(str(exc)) from None


def request_batch(record) -> Batch | None:
    """The `etl enqueue` batch of a request, from its headers; None without one (or with one unreadable,
    which is logged: the request still runs, as a request of no batch)."""
    headers = {key: value for key, value in (record.headers or ())}
    if "batch_id" not in headers:
        return None
    try:
        batch_id = str(uuid.UUID(headers["batch_id"].decode("ascii")))
        chunk = int(headers["batch_chunk"]) if headers.get("batch_chunk") is not None else None
    except (ValueError, UnicodeDecodeError):
        log.warning("%s[%d]@%d: unreadable batch headers %r; running it as a request of no batch",
                    record.topic, record.partition, record.offset, headers)
        return None
    return Batch(batch_id, chunk)


@dataclass(frozen=True)
class WorkerOptions:
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    max_poll_interval_ms: int = 3_600_000
    stop_grace: float = 8.0
    poll_timeout_ms: int = 500
    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0)  # before each retry of a failed (exit 1) request


def ensure_topics(settings: Settings, topics: Mapping[str, object]) -> None:
    """Create the request topics (and their DLQs) that do not exist yet."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=list(settings.kafka_bootstrap_servers),
                             client_id="financial-tracker-etl-worker", request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        wanted = {topic: settings.worker_partitions for topic in topics}
        wanted.update({topic + DLQ_SUFFIX: 1 for topic in topics})
        for topic, partitions in wanted.items():
            if topic in existing:
                continue
            try:
                admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})
                log.info("created topic %s with %d partition(s)", topic, partitions)
            except TopicAlreadyExistsError:
                pass  # another worker created it a moment ago
    finally:
        admin.close()


def make_consumer(settings: Settings, options: WorkerOptions, topics: Mapping[str, object]):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=list(settings.kafka_bootstrap_servers),
        group_id=settings.worker_group,
        client_id="financial-tracker-etl-worker",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        session_timeout_ms=options.session_timeout_ms,
        heartbeat_interval_ms=options.heartbeat_interval_ms,
        max_poll_interval_ms=options.max_poll_interval_ms,
        request_timeout_ms=max(30_000, options.session_timeout_ms + 5_000),
    )
    consumer.subscribe(list(topics), listener=_assignment_log())
    return consumer


def _assignment_log():
    """A listener logging the partitions this worker is given and loses at each rebalance of the group."""
    from kafka import ConsumerRebalanceListener

    class AssignmentLog(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked) -> None:
            log.info("partitions revoked: %s", _partitions(revoked))

        def on_partitions_assigned(self, assigned) -> None:
            log.info("partitions assigned: %s", _partitions(assigned))

    return AssignmentLog()


def _partitions(partitions) -> str:
    return ", ".join(sorted(f"{p.topic}[{p.partition}]" for p in partitions)) or "none"


def dead_letter(producer, record, where: str, error: str, default_key: str, *, kind: str = "poison request",
                exit_code: int | None = None, attempts: int = 1) -> None:
    """Send the request to <topic>.DLQ with why, to be replayed (re-sent to its topic) once fixed."""
    log.error("%s: %s sent to %s%s: %s", where, kind, record.topic, DLQ_SUFFIX, error)
    letter = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode("utf-8", "replace") if record.key else None,
        "value": record.value.decode("utf-8", "replace") if record.value is not None else None,
        "error": error,
        "exit_code": exit_code,
        "attempts": attempts,
        "failed_at": datetime.now(timezone.utc).isoformat(),
    }
    producer.send(record.topic + DLQ_SUFFIX, key=letter["key"] or default_key, value=letter).get(timeout=10)


def commit(consumer, record, where: str) -> None:
    """Commit the offset after `record`; if the partition moved to another worker meanwhile, it redoes it."""
    from kafka import TopicPartition
    from kafka.errors import CommitFailedError
    from kafka.structs import OffsetAndMetadata

    try:
        consumer.commit({TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1, "", -1)})
    except CommitFailedError as exc:
        log.warning("%s: offset not committed (%s): the partition moved to another worker, "
                    "which redoes the request", where, exc)

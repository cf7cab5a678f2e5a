"""Run jobs on request from Kafka: one consumer group shared by any number of workers.

Each message on a request topic is a JSON object of the job's options
({"symbols": ["AAPL:STOCK"], "start": "2024-01-01"}; empty for the defaults),
checked with the job's own parser and run in this process. The offset is
committed only after the job has finished, so a worker that dies mid-job leaves
the request to the next member of the group; jobs are idempotent, so redoing
one is harmless. A request that cannot be run (not JSON, an unknown option, a
bad value: exit 2) goes to <topic>.DLQ with its error. A request whose job
failed (exit 1: the database unreachable, every asset failed) is retried in
place after each of --retry-delays (its offset sought back, not committed);
only when those are used up does it go to the DLQ with its error and attempts,
to be replayed once the cause is fixed. Exit 3 (some assets failed) is a
finished run: committed once. A job that finds every asset held by other runs
(exit 75) is retried shortly. A request from `etl enqueue` carries its batch
in Kafka headers (`batch_id`, `batch_chunk`), outside the job's options: the
run is recorded and announced as part of that batch.

SIGTERM or Ctrl-C: the current job may finish within --stop-grace seconds;
then it is asked to stop at its next safe point (exit 143: what it committed
is announced, the request is not committed and stays for the next worker), and
given up after 4 s more. The worker leaves the group and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from etl import registry, stopping
from etl.cli import CommandParser, guarded, parse_or_exit, positive_int, run_cli, seconds, usage_error
from etl.config import Settings
from etl.errors import (EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_TERMINATED, EXIT_USAGE,
                        ConfigError)
from etl.registry import Job
from etl.runs import Batch, RunResult, in_batch
from etl.worker_kafka import (PoisonMessage, WorkerOptions, commit, dead_letter, ensure_topics, make_consumer,
                              request_batch, request_options)

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 2.0
GIVE_UP_AFTER_STOP = 4.0  # seconds a stopped job has to reach a safe point before the worker leaves without it


class Worker:
    def __init__(self, settings: Settings, options: WorkerOptions):
        self.settings = settings
        self.options = options
        self.topics = {settings.topic(job.request_topic): job for job in registry.JOBS.values()}
        self.stop_at: float | None = None  # when the current job is asked to stop, once SIGTERM came
        self._failed_attempts: dict[tuple[str, int, int], int] = {}  # (topic, partition, offset) → failures
        self.consumer = None
        self.producer = None

    @property
    def stopping(self) -> bool:
        return self.stop_at is not None

    def run(self) -> int:
        from etl.utils.kafka_utils import make_producer

        ensure_topics(self.settings, self.topics)
        self.consumer = make_consumer(self.settings, self.options, self.topics)
        self.producer = make_producer(self.settings.kafka_bootstrap_servers)
        log.info("worker in group %s consuming %s", self.settings.worker_group, ", ".join(self.topics))
        try:
            while not self.stopping:
                batch = self.consumer.poll(timeout_ms=self.options.poll_timeout_ms, max_records=1)
                for record in (r for records in batch.values() for r in records):
                    if self.stopping:
                        return EXIT_OK
                    self.handle(record)
        finally:
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=5)
        return EXIT_OK

    def handle(self, record) -> None:
        job = self.topics[record.topic]
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        attempt_key = (record.topic, record.partition, record.offset)
        try:
            options = request_options(job, record.value)
        except PoisonMessage as exc:
            dead_letter(self.producer, record, where, str(exc), job.name)
        else:
            batch = request_batch(record)
            log.info("%s: running %s%s", where, job.name, f" (batch {batch.batch_id})" if batch else "")
            result = self.run_job(job, options, batch)
            if result is None or result.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                code = "no exit" if result is None else f"exit {result.exit_code}"
                log.warning("%s: %s abandoned on shutdown (%s); the request stays for the next worker",
                            where, job.name, code)
                return
            if result.exit_code == EXIT_LOCKED:
                log.info("%s: %s is running elsewhere (exit 75); retrying this request in %.0f s",
                         where, job.name, LOCK_RETRY_SECONDS)
                self.retry(record, LOCK_RETRY_SECONDS)
                return
            if result.exit_code == EXIT_USAGE:
                dead_letter(self.producer, record, where, result.message, job.name)
            elif result.exit_code in (EXIT_OK, EXIT_PARTIAL):
                log.info("%s: %s finished with exit %d", where, job.name, result.exit_code)
            else:
                attempt = self._failed_attempts.pop(attempt_key, 0) + 1
                if attempt <= len(self.options.retry_delays):
                    delay = self.options.retry_delays[attempt - 1]
                    log.warning("%s: %s failed with exit %d (attempt %d of %d): %s; retrying in %g s",
                                where, job.name, result.exit_code, attempt, len(self.options.retry_delays) + 1,
                                result.message, delay)
                    self._failed_attempts[attempt_key] = attempt
                    self.retry(record, delay)
                    return
                dead_letter(self.producer, record, where,
                            f"{job.name} failed with exit {result.exit_code} (see etl_job_runs): {result.message}",
                            job.name, kind="failed request", exit_code=result.exit_code, attempts=attempt)
        self._failed_attempts.pop(attempt_key, None)
        commit(self.consumer, record, where)

    def run_job(self, job: Job, options: argparse.Namespace, batch: Batch | None = None) -> RunResult | None:
        """Run the job in a thread of this process and wait for its result; None when given up on shutdown.

        The thread keeps this one free for the signal handler and the stop deadline: once the grace
        period is over the job is asked to stop (exit 143), and after GIVE_UP_AFTER_STOP more seconds
        the worker leaves it behind (the process exits; the server rolls its transaction back).
        """
        stopping.reset()
        outcome: list[RunResult] = []
        module = job.load()
        def body() -> RunResult:
            with in_batch(batch):
                return module.run(options, self.settings)

        thread = threading.Thread(target=lambda: outcome.append(guarded(job.name, body)), name=job.name, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if self.stop_at is not None and time.monotonic() >= self.stop_at:
                if stopping.requested() is None:
                    log.info("stop grace over: asking %s to stop", job.name)
                    stopping.request(EXIT_TERMINATED)
                if time.monotonic() >= self.stop_at + GIVE_UP_AFTER_STOP:
                    return None
        return outcome[0] if outcome else None

    def retry(self, record, delay: float) -> None:
        from kafka import TopicPartition

        self.consumer.seek(TopicPartition(record.topic, record.partition), record.offset)
        deadline = time.monotonic() + delay
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)

    def request_stop(self, signum, frame) -> None:
        if self.stop_at is not None:  # a second signal: stop the job now
            self.stop_at = time.monotonic()
            return
        self.stop_at = time.monotonic() + self.options.stop_grace
        log.info("stop requested: the current job (if any) may go on for up to %.0f s, then the worker leaves "
                 "the group", self.options.stop_grace)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl worker", description=__doc__, exit_codes=(0, 1, 2),
                           examples=("etl worker", "etl worker --stop-grace 30 --retry-delays 10,60"))
    parser.add_argument("--session-timeout-ms", type=positive_int, default=WorkerOptions.session_timeout_ms,
                        help="how long the group waits for a silent worker before moving its partitions "
                             "(default %(default)s)")
    parser.add_argument("--heartbeat-interval-ms", type=positive_int,
                        default=WorkerOptions.heartbeat_interval_ms,
                        help="heartbeats, sent from a background thread even while a job runs "
                             "(default %(default)s)")
    parser.add_argument("--max-poll-interval-ms", type=positive_int, default=WorkerOptions.max_poll_interval_ms,
                        help="the longest a job may run before the group gives its partitions away "
                             "(default %(default)s, one hour)")
    parser.add_argument("--stop-grace", type=seconds(3600), default=WorkerOptions.stop_grace, metavar="SECONDS",
                        help="on SIGTERM, how long the current job may go on before it is asked to stop "
                             "(default %(default)s)")
    parser.add_argument("--retry-delays", type=_delays, default=WorkerOptions.retry_delays, metavar="SECONDS,…",
                        help="a request whose job fails (exit 1) is run again after each of these waits, then "
                             "sent to <topic>.DLQ; 'none' sends it at once (default 5,30,120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_or_exit(parser, argv)
    if args.heartbeat_interval_ms >= args.session_timeout_ms:
        usage_error(parser, "--heartbeat-interval-ms must be smaller than --session-timeout-ms")
    options = WorkerOptions(session_timeout_ms=args.session_timeout_ms,
                            heartbeat_interval_ms=args.heartbeat_interval_ms,
                            max_poll_interval_ms=args.max_poll_interval_ms, stop_grace=args.stop_grace,
                            retry_delays=args.retry_delays)

    def body(settings: Settings) -> int:
        if not settings.kafka_bootstrap_servers:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the worker needs a broker to take requests from")
        worker = Worker(settings, options)
        signal.signal(signal.SIGTERM, worker.request_stop)
        signal.signal(signal.SIGINT, worker.request_stop)
        code = worker.run()
        log.info("worker stopped")
        return code

    return run_cli("etl worker", body)


def _delays(text: str) -> tuple[float, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = ()
    if not delays or any(not 0 <= d < float("inf") for d in delays):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seconds (like 5,30,120) "
                                         "or 'none'")
    return delays

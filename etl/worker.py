"""Run jobs on request from Kafka: one consumer group shared by any number of workers.

Each message on a request topic is a JSON object of the job's options
({"symbols": ["AAPL:STOCK"], "start": "2024-01-01"}; empty for the defaults).
The offset is committed only after the job has finished, so a worker that dies
mid-job leaves the request to the next member of the group; jobs are
idempotent, so redoing one is harmless. A request that cannot be run (not
JSON, an unknown option, a bad value) goes to <topic>.DLQ with its error. A
request whose job failed (exit 1: the database unreachable, every asset
failed) is retried in place after each of --retry-delays (its offset sought
back, not committed, so the partition waits instead of draining into the DLQ
while the cause is transient); only when those are used up does it go to the
DLQ with its error and attempts, to be replayed once the cause is fixed rather
than lost. A job that finds its lock held (exit 75) is retried shortly, not dropped.

SIGTERM or Ctrl-C: the current job may finish within --stop-grace seconds,
otherwise it is abandoned (rolled back, its offset not committed); the worker
leaves the group and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from etl.cli import EXIT_CODES_HELP, run_cli
from etl.config import Settings
from etl.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, ConfigError

log = logging.getLogger(__name__)

REQUEST_TOPICS = {
    "MARKET_DATA_UPDATE_REQUEST": "fetch_market_data",
    "MARKET_INDEX_DATA_UPDATE_REQUEST": "fetch_market_index_data",
    "HISTORICAL_MARKET_DATA_REQUEST": "fetch_historical_market_data",
    "MOCK_TRANSACTIONS_REQUEST": "generate_mock_transactions",
}
DLQ_SUFFIX = ".DLQ"
LOCK_RETRY_SECONDS = 2.0


class PoisonMessage(Exception):
    """A request no run of the job can satisfy: it goes to the dead-letter topic."""


class JobAbandoned(BaseException):
    """Raised in the job's thread when the worker must stop before the job finishes.

    A BaseException, so the job's own error handling does not swallow it:
    job_run rolls the data back and marks the run failed on its way out.
    """


# --- turning a request into a command line -------------------------------------------------

def job_parser(job: str) -> argparse.ArgumentParser:
    """The argument parser `etl <job>` uses (every job module has `build_parser()`)."""
    from etl.__main__ import JOBS

    return importlib.import_module(JOBS[job]).build_parser()


def request_argv(parser: argparse.ArgumentParser, options: object) -> list[str]:
    """The command line for a request's JSON options, checked against the job's parser.

    {"symbols": ["AAPL:STOCK", "BTC:CRYPTO"], "start": "2024-01-01", "dry_run": true}
    → ["--symbols", "AAPL:STOCK,BTC:CRYPTO", "--start", "2024-01-01", "--dry-run"].
    Lists become one comma-separated value, or a repeated option where the job
    accepts the option several times. Raises PoisonMessage naming what is wrong.
    """
    if not isinstance(options, dict):
        raise PoisonMessage(f"the request must be a JSON object of options, got {type(options).__name__}")
    actions = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                actions[option[2:].replace("-", "_")] = action
    argv: list[str] = []
    for key, value in options.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            known = ", ".join(sorted(actions)) or "none"
            raise PoisonMessage(f"unknown option {key!r} for {parser.prog} (known: {known})")
        flag = action.option_strings[-1]
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise PoisonMessage(f"option {key!r} is a flag: give true or false, got {value!r}")
            if value != bool(action.const):
                raise PoisonMessage(f"option {key!r} can only be {bool(action.const)!r} for {parser.prog}")
            argv.append(flag)
            continue
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, (dict, list)) or isinstance(item, bool):
                raise PoisonMessage(f"option {key!r} takes text or numbers, got {item!r}")
        texts = [str(item) for item in values]
        if isinstance(action, argparse._AppendAction):
            for text in texts:
                argv += [flag, text]
        else:
            argv += [flag, ",".join(texts)]
    _check(parser, argv)
    return argv


def _check(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Parse `argv` as the job will, turning argparse's exit into PoisonMessage."""
    def reject(message):
        raise PoisonMessage(f"{parser.prog}: {message}")

    original_error = parser.error
    parser.error = reject
    try:
        parser.parse_args(argv)
    finally:
        parser.error = original_error


def decode_request(value: bytes | None) -> object:
    if not value:
        return {}
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"the request is not UTF-8 JSON: {exc}") from None


# --- the stderr tail: the error line of a job that rejected its request --------------------

class StderrTail:
    """A pass-through stderr that remembers its last lines (the job's own error line)."""

    def __init__(self, stream, keep: int = 20):
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            pieces = (self._partial + text).split("\n")
            self._partial = pieces.pop()
            self.lines.extend(p for p in pieces if p.strip())
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def last_line(self) -> str:
        with self._lock:
            return self.lines[-1] if self.lines else ""

    def __getattr__(self, name):
        return getattr(self.stream, name)


# --- the worker -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerOptions:
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    max_poll_interval_ms: int = 3_600_000
    stop_grace: float = 8.0
    poll_timeout_ms: int = 500
    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0)  # before each retry of a failed (exit 1) request


class Worker:
    def __init__(self, settings: Settings, options: WorkerOptions, stderr: StderrTail):
        self.settings = settings
        self.options = options
        self.stderr = stderr
        self.topics = {settings.topic(name): job for name, job in REQUEST_TOPICS.items()}
        self.stopping = False
        self.in_job = False
        self.abandoned = False
        self._parsers: dict[str, argparse.ArgumentParser] = {}
        self._failed_attempts: dict[tuple[str, int, int], int] = {}  # (topic, partition, offset) → failures
        self.consumer = None
        self.producer = None

    # setup

    def ensure_topics(self) -> None:
        """Create the request topics (and their DLQs) that do not exist yet."""
        from kafka.admin import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=list(self.settings.kafka_bootstrap_servers),
                                 client_id="financial-tracker-etl-worker", request_timeout_ms=10_000)
        try:
            existing = set(admin.list_topics())
            wanted = {topic: self.settings.worker_partitions for topic in self.topics}
            wanted.update({topic + DLQ_SUFFIX: 1 for topic in self.topics})
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

    def connect(self) -> None:
        from kafka import KafkaConsumer

        from etl.utils.kafka_utils import make_producer

        self.consumer = KafkaConsumer(
            *self.topics,
            bootstrap_servers=list(self.settings.kafka_bootstrap_servers),
            group_id=self.settings.worker_group,
            client_id="financial-tracker-etl-worker",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
            session_timeout_ms=self.options.session_timeout_ms,
            heartbeat_interval_ms=self.options.heartbeat_interval_ms,
            max_poll_interval_ms=self.options.max_poll_interval_ms,
            request_timeout_ms=max(30_000, self.options.session_timeout_ms + 5_000),
        )
        self.producer = make_producer(self.settings.kafka_bootstrap_servers)

    # the loop

    def run(self) -> int:
        self.ensure_topics()
        self.connect()
        log.info("worker in group %s consuming %s", self.settings.worker_group, ", ".join(self.topics))
        try:
            while not self.stopping:
                batch = self.consumer.poll(timeout_ms=self.options.poll_timeout_ms, max_records=1)
                for records in batch.values():
                    for record in records:
                        if self.stopping:
                            return EXIT_OK
                        self.handle(record)
        finally:
            self.close()
        return EXIT_OK

    def handle(self, record) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        job = self.topics[record.topic]
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        partition = TopicPartition(record.topic, record.partition)
        try:
            argv = request_argv(self.parser(job), decode_request(record.value))
        except PoisonMessage as exc:
            self.dead_letter(record, where, str(exc))
        else:
            log.info("%s: running %s %s", where, job, " ".join(argv))
            code = self.run_job(job, argv)
            if code is None:
                log.warning("%s: %s abandoned on shutdown; the request stays for the next worker", where, job)
                return
            if code == EXIT_LOCKED:
                log.info("%s: %s is running elsewhere (exit 75); retrying this request in %.0f s",
                         where, job, LOCK_RETRY_SECONDS)
                self.consumer.seek(partition, record.offset)
                self._sleep(LOCK_RETRY_SECONDS)
                return
            if code == EXIT_USAGE:
                self.dead_letter(record, where, self.stderr.last_line() or f"{job} rejected the request (exit 2)")
            elif code in (EXIT_OK, EXIT_PARTIAL):
                log.info("%s: %s finished with exit %d", where, job, code)
            else:
                cause = self.stderr.last_line() or "no error line"
                attempt = self._failed_attempts.pop((record.topic, record.partition, record.offset), 0) + 1
                if attempt <= len(self.options.retry_delays):
                    delay = self.options.retry_delays[attempt - 1]
                    log.warning("%s: %s failed with exit %d (attempt %d of %d): %s; retrying in %g s",
                                where, job, code, attempt, len(self.options.retry_delays) + 1, cause, delay)
                    self._failed_attempts[(record.topic, record.partition, record.offset)] = attempt
                    self.consumer.seek(partition, record.offset)
                    self._sleep(delay)
                    return
                self.dead_letter(record, where, f"{job} failed with exit {code} (see etl_job_runs): {cause}",
                                 kind="failed request", exit_code=code, attempts=attempt)
        self._failed_attempts.pop((record.topic, record.partition, record.offset), None)
        self._commit(partition, OffsetAndMetadata(record.offset + 1, "", -1), where)

    def parser(self, job: str) -> argparse.ArgumentParser:
        if job not in self._parsers:
            self._parsers[job] = job_parser(job)
        return self._parsers[job]

    def run_job(self, job: str, argv: list[str]) -> int | None:
        """Run the job in this process; None when it was abandoned on shutdown."""
        from etl.__main__ import JOBS

        module = importlib.import_module(JOBS[job])
        self.in_job, self.abandoned = True, False
        try:
            code = module.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        except JobAbandoned:
            return None
        finally:
            self.in_job = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        # JobAbandoned raised inside a driver callback (psycopg2's COPY) comes back as a database error
        return None if self.abandoned else code

    def dead_letter(self, record, where: str, error: str, *, kind: str = "poison request",
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
        key = letter["key"] or self.topics[record.topic]
        self.producer.send(record.topic + DLQ_SUFFIX, key=key, value=letter).get(timeout=10)

    def _commit(self, partition, offset, where: str) -> None:
        from kafka.errors import CommitFailedError

        try:
            self.consumer.commit({partition: offset})
        except CommitFailedError as exc:
            log.warning("%s: offset not committed (%s): the partition moved to another worker, "
                        "which redoes the request", where, exc)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)

    # stopping

    def request_stop(self, signum, frame) -> None:
        if self.stopping:
            self._abandon(signum, frame)
            return
        self.stopping = True
        if self.in_job:
            log.info("stop requested: letting the current job finish for up to %.0f s", self.options.stop_grace)
            signal.signal(signal.SIGALRM, self._abandon)
            signal.setitimer(signal.ITIMER_REAL, max(self.options.stop_grace, 0.01))
        else:
            log.info("stop requested: leaving the group")

    def _abandon(self, signum, frame) -> None:
        if self.in_job:
            self.abandoned = True
            raise JobAbandoned()

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.close(timeout=5)


# --- the command --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl worker", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session-timeout-ms", type=_positive_int, default=WorkerOptions.session_timeout_ms,
                        help="how long the group waits for a silent worker before moving its partitions "
                             "(default %(default)s)")
    parser.add_argument("--heartbeat-interval-ms", type=_positive_int,
                        default=WorkerOptions.heartbeat_interval_ms,
                        help="heartbeats, sent from a background thread even while a job runs "
                             "(default %(default)s)")
    parser.add_argument("--max-poll-interval-ms", type=_positive_int, default=WorkerOptions.max_poll_interval_ms,
                        help="the longest a job may run before the group gives its partitions away "
                             "(default %(default)s, one hour)")
    parser.add_argument("--stop-grace", type=float, default=WorkerOptions.stop_grace, metavar="SECONDS",
                        help="on SIGTERM, how long the current job may go on before it is abandoned "
                             "(default %(default)s)")
    parser.add_argument("--retry-delays", type=_delays, default=WorkerOptions.retry_delays, metavar="SECONDS,…",
                        help="a request whose job fails (exit 1) is run again after each of these waits, then "
                             "sent to <topic>.DLQ; 'none' sends it at once (default 5,30,120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.heartbeat_interval_ms >= args.session_timeout_ms:
        build_parser().error("--heartbeat-interval-ms must be smaller than --session-timeout-ms")
    options = WorkerOptions(session_timeout_ms=args.session_timeout_ms,
                            heartbeat_interval_ms=args.heartbeat_interval_ms,
                            max_poll_interval_ms=args.max_poll_interval_ms, stop_grace=args.stop_grace,
                            retry_delays=args.retry_delays)

    def body(settings: Settings) -> int:
        if not settings.kafka_bootstrap_servers:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the worker needs a broker to take requests from")
        tail = sys.stderr if isinstance(sys.stderr, StderrTail) else StderrTail(sys.stderr)
        sys.stderr = tail
        worker = Worker(settings, options, tail)
        signal.signal(signal.SIGTERM, worker.request_stop)
        signal.signal(signal.SIGINT, worker.request_stop)
        code = worker.run()
        log.info("worker stopped")
        return code

    return run_cli("etl worker", body)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


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

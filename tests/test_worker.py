"""`etl worker` against the real broker and PostgreSQL: workers are real child processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from etl import worker as worker_module
from etl.errors import UsageError
from etl.registry import JOBS
from etl.worker_kafka import PoisonMessage, request_argv, request_options
from support.db import row_count, rows, scalar
from support.events import read_events
from support.runner import ETL_VARIABLES, PYTHON, REPO, run_etl_process
from support.yahoo_server import YahooServer

REQUEST = "MOCK_TRANSACTIONS_REQUEST"
FAST_GROUP = ["--session-timeout-ms", "2000", "--heartbeat-interval-ms", "500"]


# --- helpers -------------------------------------------------------------------------------

class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *args: str):
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
        full_env.update(env, PYTHONPATH=str(REPO))
        self.log_file = open(log_path, "w")
        self.process = subprocess.Popen([PYTHON, "-m", "etl", "worker", *FAST_GROUP, *args], env=full_env,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def jobs_started(self, job: str = "generate_mock_transactions") -> int:
        return self.log().count(f": running {job}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.log_file.close()


@pytest.fixture
def workers(with_kafka, etl_env, tmp_path, schema):
    etl_env["ETL_WORKER_GROUP"] = f"group-{schema}"
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(etl_env, tmp_path / f"worker{len(started) + 1}.log", *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.log_file.close()


def send_requests(bootstrap: str, topic: str, values: list[bytes | dict], *, partitions: int | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=10_000)
    try:
        for number, value in enumerate(values):
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            partition = number % partitions if partitions else None
            producer.send(topic, value=body, partition=partition).get(timeout=10)
    finally:
        producer.close()


def wait_until(condition, timeout: float = 30, what: str = "condition", logs=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    detail = "\n".join(w.log()[-3000:] for w in logs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def finished_runs(db) -> int:
    return row_count(db, "etl_job_runs", "status <> 'running'")


def seeds_run(db) -> list[int]:
    return sorted(r[0] for r in rows(db, "SELECT (params->>'seed')::int FROM etl_job_runs WHERE status = 'success'"))


def mock_request(seed: int, **extra) -> dict:
    return {"accounts": 1, "months": 2, "per_month": 3, "seed": seed, **extra}


def database_digest(db) -> tuple:
    """Everything the mock job writes, independent of insertion order and timestamps."""
    return (
        scalar(db, "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM "
                   "(SELECT account_id, date, symbol, asset_type, credit, debit, unit FROM transactions) t"),
        scalar(db, "SELECT md5(coalesce(string_agg(h::text, '|' ORDER BY h::text), '')) FROM "
                   "(SELECT account_id, symbol, asset_type, total_balance, unit, date FROM holdings) h"),
        scalar(db, "SELECT md5(coalesce(string_agg(m::text, '|' ORDER BY m::text), '')) FROM "
                   "(SELECT account_id, symbol, asset_type, month, total_balance FROM holdings_monthly) m"),
        row_count(db, "transactions"),
    )


# --- requests to command lines (pure) --------------------------------------------------------

MOCK = JOBS["generate_mock_transactions"]
HISTORY = JOBS["fetch_historical_market_data"]


def test_json_options_become_a_command_line_for_the_jobs_own_parser():
    argv = request_argv({"symbols": ["AAPL:STOCK", "BTC:CRYPTO"], "start": "2024-01-01", "months": 3,
                         "dry_run": True, "full_refresh": False, "end": None})
    assert argv == ["--symbols=AAPL:STOCK,BTC:CRYPTO", "--start=2024-01-01", "--months=3", "--dry-run"]


def test_a_request_is_parsed_by_the_jobs_own_parser():
    options = request_options(MOCK, json.dumps({"account_id": ["0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b",
                                                               "1b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b"],
                                                "months": 3, "symbols": ["AAPL:STOCK", "BTC:CRYPTO"]}).encode())
    assert [str(a) for group in options.account_id for a in group] == [
        "0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b", "1b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b"]
    assert options.months == 3 and [a.spec for group in options.symbols for a in group] == ["AAPL:STOCK",
                                                                                         "BTC:CRYPTO"]


def test_an_empty_request_runs_the_job_with_its_defaults():
    assert vars(request_options(HISTORY, b"")) == vars(HISTORY.load().build_parser().parse_args([]))


@pytest.mark.parametrize("options, error", [
    ({"bogus": 1}, "unrecognized arguments: --bogus=1"),
    ({"months": "three"}, "not a whole number"),
    ({"start": "yesterday"}, "not an ISO date"),
    ({"dry_run": "yes"}, "--dry-run"),
    ({"symbols": "AAPL:BOND"}, "BOND"),
    ({"months": {"n": 3}}, "takes text or numbers"),
    ({"help": True}, "help"),
    (["not", "an", "object"], "JSON object"),
])
def test_a_request_the_job_would_reject_is_poison(options, error):
    job = MOCK if "months" in options else HISTORY
    with pytest.raises(PoisonMessage, match=error):
        request_options(job, json.dumps(options).encode())


def test_retry_delays_are_seconds_separated_by_commas_or_none():
    parse = worker_module.build_parser().parse_args
    assert parse([]).retry_delays == (5.0, 30.0, 120.0)
    assert parse(["--retry-delays", "0.5,2"]).retry_delays == (0.5, 2.0)
    assert parse(["--retry-delays", "none"]).retry_delays == ()
    for bad in ("soon", "1,,2", "-1", "inf"):
        with pytest.raises(UsageError):
            parse(["--retry-delays", bad])


# --- against the broker ------------------------------------------------------------------

def test_a_request_produces_the_jobs_rows_and_its_completion_event(workers, with_kafka, etl_env, db):
    worker = workers()
    send_requests(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST, [mock_request(7)])

    wait_until(lambda: finished_runs(db) == 1, what="the requested run", logs=[worker])
    assert seeds_run(db) == [7]
    assert row_count(db, "transactions") > 0
    events = read_events(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + "MOCK_TRANSACTIONS_COMPLETE", expect=1)
    assert [(e["job"], e["status"], e["params"]["seed"]) for e in events] == [
        ("generate_mock_transactions", "success", 7)]
    assert worker.stop(signal.SIGTERM) == 0


def test_two_workers_split_the_partitions_and_run_each_of_20_requests_exactly_once(
        workers, with_kafka, etl_env, db, monkeypatch):
    etl_env["ETL_WORKER_PARTITIONS"] = "4"
    first, second = workers(), workers()
    topic = etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST
    wait_until(lambda: topic_partitions(with_kafka, topic) == 4, what="the request topic", logs=[first, second])
    send_requests(with_kafka, topic, [mock_request(seed) for seed in range(1, 21)], partitions=4)

    wait_until(lambda: len(seeds_run(db)) >= 20, timeout=90, what="20 runs", logs=[first, second])
    time.sleep(3)  # a request redone because its offset was not committed would show up now
    assert seeds_run(db) == list(range(1, 21))
    assert first.jobs_started() > 0 and second.jobs_started() > 0
    assert first.stop() == 0 and second.stop() == 0


def test_a_poison_request_lands_in_the_dlq_and_the_next_request_still_runs(workers, with_kafka, etl_env, db):
    worker = workers()
    topic = etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST
    send_requests(with_kafka, topic, [b"{not json", {"bogus": 1}, mock_request(3, months=0), mock_request(11)],
                  partitions=1)

    wait_until(lambda: finished_runs(db) == 1, what="the good request", logs=[worker])
    letters = read_events(with_kafka, topic + ".DLQ", expect=3)
    assert [(letter["offset"], letter["topic"]) for letter in letters] == [(0, topic), (1, topic), (2, topic)]
    errors = [letter["error"] for letter in letters]
    assert "not UTF-8 JSON" in errors[0]
    assert "unrecognized arguments: --bogus=1" in errors[1]
    assert "--months" in errors[2]
    assert letters[0]["value"] == "{not json"
    assert seeds_run(db) == [11]
    assert "@0: poison request" in worker.log()
    assert worker.stop() == 0


def test_a_request_whose_job_keeps_failing_lands_in_the_dlq_after_its_retries_instead_of_being_lost(
        workers, with_kafka, etl_env, db):
    worker = workers("--retry-delays", "0.2,0.2")
    topic = etl_env["KAFKA_TOPIC_PREFIX"] + "HISTORICAL_MARKET_DATA_REQUEST"
    # Yahoo's base URL points at a closed port: every asset fails and the job exits 1, every time.
    failing = {"symbols": ["AAPL:STOCK"], "start": "2024-01-02", "end": "2024-01-05"}
    send_requests(with_kafka, topic, [failing], partitions=1)

    (letter,) = read_events(with_kafka, topic + ".DLQ", expect=1, timeout=40)
    assert (letter["topic"], letter["offset"], letter["exit_code"], letter["attempts"]) == (topic, 0, 1, 3)
    assert json.loads(letter["value"]) == failing
    assert "exit 1" in letter["error"] and "fetch_historical_market_data" in letter["error"]
    assert rows(db, "SELECT status FROM etl_job_runs") == [("failed",)] * 3
    assert worker.log().count("retrying in 0.2 s") == 2
    assert "failed request sent to" in worker.log()
    assert worker.stop() == 0


def test_a_request_whose_job_ends_partial_is_committed_once_and_neither_retried_nor_dead_lettered(
        workers, fake_api, with_kafka, etl_env, db):
    etl_env["YAHOO_BASE_URL"] = fake_api.base_url
    YahooServer(fake_api, unknown={"NOPE"})
    worker = workers("--retry-delays", "0.2")
    topic = etl_env["KAFKA_TOPIC_PREFIX"] + "HISTORICAL_MARKET_DATA_REQUEST"
    # AAPL loads, NOPE is unknown: the job exits 3 (partial), which is done, not failed.
    send_requests(with_kafka, topic, [{"symbols": ["AAPL:STOCK", "NOPE:STOCK"], "start": "2024-01-02",
                                       "end": "2024-01-05"}], partitions=1)

    wait_until(lambda: committed_offsets(with_kafka, etl_env["ETL_WORKER_GROUP"], topic) == {0: 1},
               what="the request's offset to be committed", logs=[worker])
    assert rows(db, "SELECT status FROM etl_job_runs") == [("partial",)]
    assert read_events(with_kafka, topic + ".DLQ", timeout=3) == []
    assert worker.jobs_started("fetch_historical_market_data") == 1
    assert worker.stop() == 0


def test_a_request_failing_while_the_database_is_unreachable_is_retried_and_runs_once_it_is_back(
        workers, with_kafka, etl_env, db, database_url):
    outage = DatabaseOutage(database_url)
    etl_env["DATABASE_URL"] = outage.url
    worker = workers("--retry-delays", "1,1,1,1,1,1,1,1,1,1")
    topic = etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST
    send_requests(with_kafka, topic, [mock_request(4)], partitions=1)

    wait_until(lambda: "(attempt 1 of 11)" in worker.log(), what="a failure at connect", logs=[worker])
    assert "cannot connect" in worker.log()
    outage.end()
    try:
        wait_until(lambda: seeds_run(db) == [4], what="the run once the database is back", logs=[worker])
        assert read_events(with_kafka, topic + ".DLQ", timeout=3) == []
        assert worker.stop() == 0
    finally:
        outage.close()


def test_a_worker_killed_mid_job_leaves_the_request_to_the_other_which_redoes_it(
        workers, with_kafka, etl_env, db, database_url):
    big = mock_request(5, accounts=300, months=24, per_month=20)
    doomed = workers()
    send_requests(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST, [big])
    wait_until(lambda: row_count(db, "etl_job_runs", "status = 'running'") == 1, what="the job to start",
               logs=[doomed])
    doomed.stop(signal.SIGKILL)
    assert row_count(db, "transactions") == 0

    survivor = workers()
    wait_until(lambda: row_count(db, "etl_job_runs", "status = 'success'") == 1, timeout=60,
               what="the redone run", logs=[survivor])
    assert survivor.jobs_started() == 1

    clean_env = dict(etl_env, DB_SCHEMA=etl_env["DB_SCHEMA"] + "_clean")
    clean_env.pop("KAFKA_BOOTSTRAP_SERVERS")
    argv = request_argv(big)
    assert run_etl_process([PYTHON, "-m", "etl", "generate_mock_transactions", *argv], clean_env).returncode == 0
    with db.cursor() as cur:
        cur.execute(f"SET search_path = {clean_env['DB_SCHEMA']}")
        clean = database_digest(db)
        cur.execute(f"SET search_path = {etl_env['DB_SCHEMA']}")
    assert database_digest(db) == clean
    assert survivor.stop() == 0


def test_sigterm_mid_job_lets_the_job_finish_then_commits_and_exits_0(workers, with_kafka, etl_env, db):
    worker = workers()
    send_requests(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST, [mock_request(9, accounts=100, months=24)])
    # the worker's own log line, not the run row: the job may finish before a poll of etl_job_runs sees it run
    wait_until(lambda: worker.jobs_started() == 1, what="the job to start", logs=[worker])
    assert worker.stop(signal.SIGTERM) == 0
    assert seeds_run(db) == [9]

    successor = workers()
    wait_until(lambda: "worker in group" in successor.log(), what="the successor", logs=[successor])
    time.sleep(4)  # time enough to join the group and see the request again, were it not committed
    assert successor.jobs_started() == 0
    assert successor.stop() == 0


def test_sigterm_past_the_grace_period_abandons_the_job_cleanly_and_exits_0(workers, with_kafka, etl_env, db):
    worker = workers("--stop-grace", "0.1")
    send_requests(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + REQUEST,
                  [mock_request(9, accounts=300, months=24, per_month=20)])
    wait_until(lambda: row_count(db, "etl_job_runs", "status = 'running'") == 1, what="the job to start",
               logs=[worker])
    assert worker.stop(signal.SIGTERM) == 0
    assert row_count(db, "transactions") == 0
    assert rows(db, "SELECT status FROM etl_job_runs") == [("failed",)]
    assert "abandoned on shutdown" in worker.log()


def test_the_worker_without_a_broker_says_so_and_exits_2(etl_env):
    result = run_etl_process([PYTHON, "-m", "etl", "worker"], etl_env)
    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stderr


class DatabaseOutage:
    """A port where PostgreSQL is unreachable (connections refused) until `end()`, then reachable:
    from then on it forwards each connection to the real server."""

    def __init__(self, database_url: str):
        self.target = urlsplit(database_url)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = urlunsplit(self.target._replace(netloc=self.target.netloc.replace(
            f"{self.target.hostname}:{self.target.port or 5432}", f"127.0.0.1:{self.port}")))
        assert self.url != database_url, "the database URL has no host:port to replace"
        self.listener: socket.socket | None = None

    def end(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.target.hostname, self.target.port or 5432))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of `topic` (none before its first commit)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:
        return {}
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def topic_partitions(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"]) if described and not described[0].get("error_code") else 0
    except Exception:
        return 0
    finally:
        admin.close()

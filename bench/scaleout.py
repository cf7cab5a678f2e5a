"""Benchmark: the Kafka worker group scaling out one historical batch, wait-bound as separate machines would be.

A tansu broker, a Yahoo-shaped loopback server answering every request after
200 ms, and 1, 2 and 4 `etl worker` processes (ETL_FETCH_THREADS=1: one fetch
thread each, so the work waits on the API, not on this machine's two cores)
processing the same batch: 400 assets × a short history (one request each),
enqueued with `etl enqueue … --chunk 25` (16 requests over 4 partitions). Each
group gets a fresh schema and topics; its time runs from the enqueue to the
moment `etl runs --batch` counts every chunk done. Reported:

- throughput of 1, 2 and 4 workers, and the efficiency at 4: time with 1 ÷
  (4 × time with 4), target ≥ 0.8, the API's limit not binding
  (PROVIDER_RATE_LIMITS=yahoo=100000);
- with a server limit that binds (LIMIT requests in any 10 s window, 429 with
  Retry-After above it; the workers configured 5 % under it, the shared bucket
  pacing all four), the group's request rate, its busiest 10 s window and the
  429s received (target: within the limit, none);
- a worker SIGKILLed when half the chunks are done: every chunk still done,
  and every finished run (the killed one announced as abandoned, when it had
  committed assets) has its event on the completion topic.

The last line is the efficiency.

    python bench/scaleout.py [--assets 400] [--chunk 25]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import date, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import psycopg2

from benchdb import REPO, throwaway_database

sys.path.insert(0, str(REPO / "tests"))
from backfill import TOO_MANY_REQUESTS, ChartHandler, chart  # noqa: E402
from support.services import TansuBroker  # noqa: E402

LATENCY = 0.200
PARTITIONS = 4
WINDOW = 10.0          # the binding server's window, seconds
LIMIT = 60             # requests it allows in any WINDOW (360 a minute)
CLIENT_PER_MINUTE = int(LIMIT * 60 / WINDOW * 0.95)
TOPIC = "HISTORICAL_MARKET_DATA_COMPLETE"


# ---- the API (child process): 200 ms per answer, optionally a limit per window ----

def serve(port_value, limit_value, served, throttled, arrivals_path, ready) -> None:
    recent: deque[float] = deque()
    counting = [limit_value.value]  # the limit `recent` counts for: a new one starts with an empty window
    lock = threading.Lock()
    log = open(arrivals_path, "a", buffering=1)

    class Handler(ChartHandler):
        def do_GET(self):  # noqa: N802
            with lock:
                now = time.monotonic()
                if counting[0] != limit_value.value:
                    recent.clear()
                    counting[0] = limit_value.value
                while recent and now - recent[0] >= WINDOW:
                    recent.popleft()
                allowed = not limit_value.value or len(recent) < limit_value.value
                if allowed:
                    recent.append(now)
                    served.value += 1
                    log.write(f"{now}\n")
                else:
                    throttled.value += 1
            time.sleep(LATENCY)
            if not allowed:
                self.send_json(429, TOO_MANY_REQUESTS, {"Retry-After": "2"})
                return
            self.send_json(200, chart(*self.chart_request()))

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a SIGKILLed worker's request, expected
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    port_value.value = server.server_address[1]
    ready.set()
    server.serve_forever()


class Api:
    def __init__(self):
        self.port, self.limit = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
        self.served, self.throttled = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
        self.arrivals = Path(tempfile.mkstemp(prefix="scaleout-arrivals-")[1])
        ready = multiprocessing.Event()
        self.process = multiprocessing.Process(target=serve, daemon=True, args=(
            self.port, self.limit, self.served, self.throttled, str(self.arrivals), ready))
        self.process.start()
        ready.wait(10)
        self.base_url = f"http://127.0.0.1:{self.port.value}"

    def reset(self, limit: int = 0) -> None:
        self.limit.value, self.served.value, self.throttled.value = limit, 0, 0
        self.arrivals.write_text("")

    def arrival_times(self) -> list[float]:
        return sorted(float(line) for line in self.arrivals.read_text().split())

    def close(self) -> None:
        self.process.terminate()
        self.arrivals.unlink(missing_ok=True)


# ---- one group of workers on a fresh schema ----

class Group:
    def __init__(self, url: str, bootstrap: str, api: Api, workers: int, *, per_minute: int = 100_000):
        name = f"g{uuid.uuid4().hex[:8]}"
        self.schema = name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "KAFKA_", "ETL_", "PROVIDER"))}
        self.env.update(DATABASE_URL=url, DB_SCHEMA=name, KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                        KAFKA_TOPIC_PREFIX=f"{name}.", ETL_WORKER_GROUP=name, ETL_WORKER_PARTITIONS=str(PARTITIONS),
                        ETL_FETCH_THREADS="1", YAHOO_BASE_URL=api.base_url, STOCK_PROVIDERS="yahoo",
                        PROVIDER_RATE_LIMITS=f"yahoo={per_minute}", LOG_LEVEL="INFO", ETL_HTTP_BACKOFF="0.2",
                        PYTHONPATH=str(REPO))
        self.url = url
        self.logs = [tempfile.NamedTemporaryFile("w+", prefix=f"scaleout-{name}-{n}-", suffix=".log", delete=False)
                     for n in range(workers)]
        self.processes: list[subprocess.Popen] = []

    def etl(self, *argv: str) -> str:
        result = subprocess.run([sys.executable, "-m", "etl", *argv], env=self.env, cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            raise SystemExit(f"etl {' '.join(argv[:2])} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def start(self, symbols: list[str]) -> None:
        self.symbols = [f"{s}:STOCK" for s in symbols]
        self.etl("migrate")
        self.etl("assets", "add", *(f"{s}:STOCK" for s in symbols))
        # Topics exist before the workers join, so the group is formed once, over every partition.
        self.etl("enqueue", "fetch_historical_market_data", "--symbols", "WARMUP:STOCK", "--chunk", "1")
        for log in self.logs:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "etl", "worker", "--session-timeout-ms", "2000", "--heartbeat-interval-ms",
                 "500"], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        while not self.warmed_up() or not all(self.assigned(n) for n in range(len(self.logs))):
            if time.monotonic() > deadline:
                raise SystemExit("the worker group did not form within 90 s:\n" + self.log_tail())
            time.sleep(0.2)

    def assigned(self, n: int) -> bool:
        text = Path(self.logs[n].name).read_text()
        last = text.rfind("partitions assigned:")
        return last >= 0 and "partitions assigned: none" not in text[last:last + 40]

    def warmed_up(self) -> bool:
        with psycopg2.connect(self.url, options=f"-c search_path={self.schema}") as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM etl_job_runs WHERE status <> 'running'")
            return cur.fetchone()[0] >= 1

    def enqueue(self, start: date) -> str:
        out = self.etl("enqueue", "fetch_historical_market_data", "--symbols", ",".join(self.symbols),
                       "--chunk", str(self.chunk), "--start", start.isoformat())
        return out.split()[1].rstrip(":")

    def progress(self, batch: str) -> tuple[int, int]:
        with psycopg2.connect(self.url, options=f"-c search_path={self.schema}") as conn, conn.cursor() as cur:
            cur.execute("SELECT chunks FROM etl_batches WHERE batch_id = %s", (batch,))
            chunks = cur.fetchone()[0]
            cur.execute("SELECT count(DISTINCT batch_chunk) FROM etl_job_runs WHERE batch_id = %s "
                        "AND status IN ('success', 'partial')", (batch,))
            return cur.fetchone()[0], chunks

    def run_batch(self, start: date, on_progress=None) -> tuple[str, float]:
        began = time.monotonic()
        batch = self.enqueue(start)
        while True:
            done, chunks = self.progress(batch)
            if on_progress:
                on_progress(done, chunks)
            if done == chunks:
                return batch, time.monotonic() - began
            if time.monotonic() - began > 900:
                raise SystemExit(f"batch {batch}: {done} of {chunks} chunks after 900 s:\n" + self.log_tail())
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()
            os.unlink(log.name)

    def log_tail(self) -> str:
        return "\n".join(Path(log.name).read_text()[-1500:] for log in self.logs)


def events_of(bootstrap: str, topic: str, expect_runs: set[int], timeout: float = 60) -> list[dict]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not expect_runs <= {e["run_id"] for e in events}:
            for records in consumer.poll(timeout_ms=500).values():
                events.extend(json.loads(r.value) for r in records)
        return events
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=400)
    parser.add_argument("--chunk", type=int, default=25)
    args = parser.parse_args()
    Group.chunk = args.chunk
    symbols = [f"S{n:03d}" for n in range(args.assets)]
    start = date.today() - timedelta(days=6)  # a short history: one request per asset

    api = Api()
    broker = TansuBroker().start()
    seconds: dict[int, float] = {}
    try:
        with throwaway_database("bench_scaleout") as url:
            for workers in (1, 2, 4):
                api.reset()
                group = Group(url, broker.bootstrap, api, workers)
                try:
                    group.start(symbols)
                    api.reset()
                    _, seconds[workers] = group.run_batch(start)
                finally:
                    group.stop()
                print(f"{workers} worker(s): {args.assets} assets in {seconds[workers]:.1f} s = "
                      f"{args.assets / seconds[workers]:.1f} assets/s ({api.served.value} requests, "
                      f"{api.throttled.value} answered 429)", flush=True)

            bound = args.assets // 2
            group = Group(url, broker.bootstrap, api, 4, per_minute=CLIENT_PER_MINUTE)
            try:
                group.start(symbols[:bound])
                api.reset(limit=LIMIT)
                _, took = group.run_batch(start)
            finally:
                group.stop()
            times = api.arrival_times()
            busiest = max(sum(1 for t in times[i:] if t - first < WINDOW) for i, first in enumerate(times))
            print(f"binding limit ({LIMIT} per {WINDOW:.0f} s at the server = {LIMIT * 60 / WINDOW:.0f}/min; workers "
                  f"set to {CLIENT_PER_MINUTE}/min): {bound} assets in {took:.1f} s, group rate "
                  f"{len(times) / (times[-1] - times[0]) * 60:.0f}/min, busiest {WINDOW:.0f} s window {busiest} "
                  f"requests (limit {LIMIT}), {api.throttled.value} answered 429", flush=True)

            api.reset()
            group = Group(url, broker.bootstrap, api, 4)
            killed: list[int] = []

            def kill_halfway(done: int, chunks: int) -> None:
                if not killed and done >= chunks // 2:
                    victim = group.processes[0]
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append(done)

            try:
                group.start(symbols)
                batch, took = group.run_batch(start, kill_halfway)
                with psycopg2.connect(url, options=f"-c search_path={group.schema}") as conn, conn.cursor() as cur:
                    cur.execute("SELECT run_id FROM etl_job_runs WHERE batch_id = %s AND status <> 'running' "
                                "AND (status <> 'failed' OR jsonb_array_length(symbols) > 0)", (batch,))
                    finished = {row[0] for row in cur.fetchall()}
                    cur.execute("SELECT count(*) FROM etl_job_runs WHERE batch_id = %s AND error LIKE 'abandoned%%'",
                                (batch,))
                    abandoned = cur.fetchone()[0]
                    cur.execute("SELECT count(DISTINCT symbol) FROM market_data WHERE symbol <> 'WARMUP'")
                    stored = cur.fetchone()[0]
                events = [e for e in events_of(broker.bootstrap, f"{group.schema}.{TOPIC}", finished)
                          if e.get("batch_id") == batch]
                done, chunks = group.progress(batch)
            finally:
                group.stop()
            missing = finished - {e["run_id"] for e in events}
            print(f"SIGKILL of a worker at {killed[0] if killed else '?'} of {chunks} chunks: {done} of {chunks} "
                  f"chunks done in {took:.1f} s, {stored} of {args.assets} assets stored, {len(finished)} finished "
                  f"runs ({abandoned} abandoned), {len(events)} events, {len(missing)} missing", flush=True)
    finally:
        broker.stop()
        api.close()

    efficiency = seconds[1] / (4 * seconds[4])
    print(f"efficiency at 4 workers = time with 1 / (4 × time with 4) = {seconds[1]:.1f} / (4 × {seconds[4]:.1f}) "
          f"= {efficiency:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

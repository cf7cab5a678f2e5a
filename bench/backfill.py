"""Benchmark: a full historical backfill of 500 symbols × 5 years against a Yahoo-shaped server.

The server (a child process) answers `/v8/finance/chart/{symbol}` with one bar
per weekday of the requested period, adds 50 ms of latency to every answer and
allows 20 requests a second (429 with Retry-After above it). Reported:

- the backfill's wall time against the floor: requests ÷ allowed rate, plus the
  time a plain COPY of the same rows takes into an identical empty table;
- a serial row-by-row baseline (one request at a time, one INSERT per row),
  measured on a sample of symbols and scaled to all of them;
- rows lost (must be 0), 429s answered and absorbed, the rerun (0 requests) and
  the job's own peak memory (maxrss of the child process that ran it).

The job runs as `python -m etl fetch_historical_market_data` in a child process,
exactly as a user would start it, so its peak memory is its own and not this
script's. Yahoo's provider declares a polite 60 requests a minute; the job is
given PROVIDER_RATE_LIMITS=yahoo=1140 (5 % under the server's 20 a second: at
exactly the limit, scheduling jitter alone draws 429s), the setting a user with
a faster allowance would use, so the benchmark measures the pipeline, not our
own politeness. The floor still counts the server's full 20 a second. Uses its own fresh database (TEST_DATABASE_URL /
DATABASE_URL, else 127.0.0.1:5432), dropped at the end. The last line is the
headline ratio.

With --unthrottled the backfill is CPU-bound instead: the server neither limits
nor waits, its answers are built before the clock starts (a real API's work is
not done on the client's machine), the job is given the highest
PROVIDER_RATE_LIMITS (a limit that never binds) and fetches the last 5 years
through yesterday, and its time is set against a plain COPY of the rows it
stored into an identical table: market_data's columns, CHECKs, primary key and
foreign key to asset (which costs PostgreSQL a lookup per row; `LIKE …
INCLUDING ALL` leaves it out, so it is added). The COPY into the table without
that foreign key is printed too. Last line: job ÷ COPY; target ≤ 2.5 with peak
memory under 300 MB.

    python bench/backfill.py [--symbols 500] [--years 5] [--sample 20] [--client-rate N]
    python bench/backfill.py --unthrottled [--symbols 500] [--years 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import date, datetime, time as clock, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg2

from benchdb import REPO, throwaway_database

LATENCY = 0.050
RATE = 20
CLIENT_RATE_PER_MINUTE = RATE * 60 * 95 // 100  # 5 % under the server's limit, as a user would set it
UNLIMITED_RATE = 1_000_000  # the highest PROVIDER_RATE_LIMITS accepts: a limit that never binds
END = date(2024, 12, 31)


# ---- the server (child process) ----

TOO_MANY_REQUESTS = b'{"finance":{"result":null,"error":{"code":"Too Many Requests"}}}'


class ChartHandler(BaseHTTPRequestHandler):
    """What a Yahoo-format chart server's handlers share: JSON answers over keep-alive, no access log."""

    protocol_version = "HTTP/1.1"

    def chart_request(self) -> tuple[str, int, int]:
        """(symbol, period1, period2) of this `/v8/finance/chart/{symbol}` request."""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return unquote(parts.path.rsplit("/", 1)[1]), int(query["period1"]), int(query["period2"])

    def send_json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(port_value, requests_value, throttled_value, ready, limited: bool = True,
          prebuilt: tuple[list[str], int, int] | None = None) -> None:
    """Answer chart requests; `limited`: RATE a second and LATENCY per answer, else neither.
    `prebuilt` (symbols, period1, period2): those answers are built before `ready`, so building
    them costs the timed run nothing (a real API's work is not on the client's machine)."""
    recent: deque[float] = deque()
    lock = threading.Lock()
    bodies = {} if prebuilt is None else {(symbol, prebuilt[1], prebuilt[2]): chart(symbol, *prebuilt[1:])
                                          for symbol in prebuilt[0]}

    class Handler(ChartHandler):
        def do_GET(self):  # noqa: N802
            with lock:
                now = time.monotonic()
                while recent and now - recent[0] >= 1.0:
                    recent.popleft()
                allowed = not limited or len(recent) < RATE
                if allowed:
                    recent.append(now)
                    requests_value.value += 1
                else:
                    throttled_value.value += 1
            if limited:
                time.sleep(LATENCY)
            if not allowed:
                self.send_json(429, TOO_MANY_REQUESTS, {"Retry-After": "1"})
                return
            key = self.chart_request()
            self.send_json(200, bodies.get(key) or chart(*key))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_value.value = server.server_address[1]
    ready.set()
    server.serve_forever()


def chart(symbol: str, period1: int, period2: int) -> bytes:
    first = datetime.fromtimestamp(period1, timezone.utc).date()
    last = datetime.fromtimestamp(period2, timezone.utc).date() - timedelta(days=1)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    days = [d for d in days if d.weekday() < 5]
    base = 50 + sum(map(ord, symbol)) % 200
    closes = [base + (d.toordinal() % 97) / 4 + 0.25 for d in days]
    result = {
        "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
                 "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                 "regularMarketPrice": closes[-1] if closes else base, "dataGranularity": "1d"},
        "timestamp": [int(datetime.combine(d, clock(14, 30), timezone.utc).timestamp()) for d in days],
        "indicators": {"quote": [{"open": [c - 1 for c in closes], "high": [c + 2 for c in closes],
                                  "low": [c - 2 for c in closes], "close": closes,
                                  "volume": [1_000_000 + d.toordinal() % 1000 for d in days]}],
                       "adjclose": [{"adjclose": [round(c * 0.98, 4) for c in closes]}]},
    }
    return json.dumps({"chart": {"result": [result], "error": None}}).encode()


# ---- measurements ----

def weekdays(start: date, end: date) -> int:
    """The bars the server answers for `start`..`end`: one per weekday."""
    return sum(1 for i in range((end - start).days + 1) if (start + timedelta(days=i)).weekday() < 5)


def run_job(argv: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """Run the job in a child process: its exit code, wall seconds and peak memory (MB); its CPU seconds
    (user + system) in `last_cpu_seconds`."""
    with tempfile.TemporaryFile() as output:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "etl", "fetch_historical_market_data", *argv],
                                 env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace")[-4000:])
    global last_cpu_seconds
    last_cpu_seconds = usage.ru_utime + usage.ru_stime
    return code, seconds, usage.ru_maxrss / 1024


last_cpu_seconds = 0.0


def copy_floor(url: str, *, foreign_key: bool = True) -> tuple[int, float]:
    """Rows stored, and the seconds a plain COPY of them takes into an identical empty table: market_data's
    columns, defaults, CHECKs and primary key (LIKE … INCLUDING ALL) and, unless `foreign_key` is False,
    its foreign key to asset, which LIKE does not copy.

    The rows go through a temporary file, streamed both ways, so this process
    never holds the table in memory."""
    conn = psycopg2.connect(url, options="-c search_path=bench")
    table = "copy_floor" if foreign_key else "copy_floor_without_fk"
    with conn.cursor() as cur, tempfile.TemporaryFile() as dump:
        cur.copy_expert("COPY (SELECT * FROM market_data) TO STDOUT", dump)
        cur.execute("SELECT count(*) FROM market_data")
        stored = cur.fetchone()[0]
        cur.execute(f"CREATE TABLE {table} (LIKE market_data INCLUDING ALL)")
        if foreign_key:
            cur.execute(f"ALTER TABLE {table} ADD FOREIGN KEY (symbol, asset_type) REFERENCES asset "
                        "ON UPDATE CASCADE")
        conn.commit()
        dump.seek(0)
        started = time.monotonic()
        cur.copy_expert(f"COPY {table} FROM STDIN", dump)
        conn.commit()
        seconds = time.monotonic() - started
    conn.close()
    return stored, seconds


def serial_baseline(url: str, base_url: str, symbols: list[str], start: date) -> float:
    """One request at a time and one INSERT per row, for `symbols`: seconds taken."""
    from etl.config import Settings
    from etl.models import Asset
    from etl.pipeline.provider_setup import make_provider

    settings = Settings.from_env({"YAHOO_BASE_URL": base_url,
                                  "PROVIDER_RATE_LIMITS": f"yahoo={CLIENT_RATE_PER_MINUTE}"}, dotenv=False)
    provider = make_provider("yahoo", settings)
    conn = psycopg2.connect(url, options="-c search_path=bench")
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE serial_rows (LIKE market_data INCLUDING ALL)")
        for symbol in symbols:
            for bar in provider.history(Asset(symbol, "STOCK"), start, END):
                cur.execute("INSERT INTO serial_rows (symbol, asset_type, date, price, adj_close, open, high, low, "
                            "volume, currency, source, as_of) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                            "now())", (bar.symbol, bar.asset_type, bar.date, bar.price, bar.adj_close, bar.open,
                                       bar.high, bar.low, bar.volume, bar.currency, bar.source))
            conn.commit()
    conn.close()
    return time.monotonic() - started


def start_server(**options) -> tuple[multiprocessing.Process, str, object, object]:
    """The chart server in a child process: (process, base URL, requests served, answered 429)."""
    port, requests_made, throttled = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0), \
        multiprocessing.Value("i", 0)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, requests_made, throttled, ready), kwargs=options,
                                     daemon=True)
    server.start()
    if not ready.wait(120):
        raise SystemExit("bench: the chart server did not start within 120 s")
    return server, f"http://127.0.0.1:{port.value}", requests_made, throttled


def job_env(url: str, base_url: str, rate: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "STOCK_PROVIDERS", "MARKET_DATA_PROVIDERS", "DB_HOST")}
    env.update({"DATABASE_URL": url, "DB_SCHEMA": "bench", "YAHOO_BASE_URL": base_url,
                "LOG_LEVEL": "WARNING", "ETL_HTTP_BACKOFF": "0.2",
                "PROVIDER_RATE_LIMITS": f"yahoo={rate}", "PYTHONPATH": str(REPO)})
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--sample", type=int, default=20, help="symbols in the serial baseline")
    parser.add_argument("--client-rate", type=int, default=CLIENT_RATE_PER_MINUTE,
                        help="the job's PROVIDER_RATE_LIMITS for yahoo, requests a minute "
                             f"(default {CLIENT_RATE_PER_MINUTE}; {RATE * 60} = exactly the server's limit)")
    parser.add_argument("--unthrottled", action="store_true",
                        help="CPU-bound instead: a server with no limit and no latency, the job against a plain "
                             "COPY of the same rows (last line: job time ÷ COPY time)")
    args = parser.parse_args()
    return unthrottled(args) if args.unthrottled else throttled(args)


def unthrottled(args) -> int:
    """The backfill of the last `args.years` years through yesterday against a server that never limits
    nor waits, side by side with a plain COPY of the rows it stored."""
    from etl.providers.yahoo import chart_window

    today = datetime.now(timezone.utc).date()
    end = today - timedelta(days=1)
    start = end.replace(year=end.year - args.years) + timedelta(days=1)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    server, base_url, requests_made, _ = start_server(
        limited=False, prebuilt=(symbols, *chart_window(start, end, today)))
    argv = ["--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", end.isoformat()]
    try:
        with throwaway_database("bench_backfill") as url:
            env = job_env(url, base_url, UNLIMITED_RATE)
            subprocess.run([sys.executable, "-m", "etl", "migrate"], env=env, cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)
            code, job_seconds, job_mb = run_job(argv, env)
            stored, copy_seconds = copy_floor(url)
            _, copy_without_fk_seconds = copy_floor(url, foreign_key=False)
    finally:
        server.terminate()
    ratio = job_seconds / copy_seconds
    expected = len(symbols) * weekdays(start, end)
    print(f"symbols {len(symbols)} × {args.years} years ({start}..{end}), server unthrottled: {stored} rows "
          f"stored of {expected} expected (lost {expected - stored}), {requests_made.value} requests; "
          f"exit code {code}")
    print(f"backfill job: {job_seconds:.2f} s ({stored / job_seconds:,.0f} rows/s), {last_cpu_seconds:.1f} s of "
          f"CPU in its process, peak memory (maxrss) {job_mb:.0f} MB")
    print(f"plain COPY of the same rows into an identical table (its foreign key to asset included): "
          f"{copy_seconds:.2f} s")
    print(f"plain COPY into the same table without the foreign key: {copy_without_fk_seconds:.2f} s "
          f"(backfill / that COPY = {job_seconds / copy_without_fk_seconds:.2f})")
    print(f"backfill / COPY = {ratio:.2f}")
    return 0 if code == 0 else 1


def throttled(args) -> int:
    server, base_url, requests_made, answered_429 = start_server()

    start = END.replace(year=END.year - args.years) + timedelta(days=1)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    argv = ["--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", END.isoformat()]
    try:
        with throwaway_database("bench_backfill") as url:
            env = job_env(url, base_url, args.client_rate)
            code, backfill_seconds, backfill_mb = run_job(argv, env)
            backfill_requests, backfill_429 = requests_made.value, answered_429.value
            stored, copy_seconds = copy_floor(url, foreign_key=False)  # the floor of the figures quoted since 2026-11-26
            expected = len(symbols) * weekdays(start, END)
            requests_made.value = 0
            rerun_code, rerun_seconds, rerun_mb = run_job(argv, env)
            rerun_requests = requests_made.value
            time.sleep(1.1)
            sample = symbols[:args.sample]
            serial_seconds = serial_baseline(url, base_url, sample, start) * len(symbols) / len(sample)
    finally:
        server.terminate()

    floor = backfill_requests / RATE + copy_seconds
    print(f"symbols {len(symbols)} × {args.years} years: {stored} rows stored of {expected} expected "
          f"(lost {expected - stored}); exit code {code}")
    print(f"backfill: {backfill_seconds:.1f} s, {backfill_requests} requests served, {backfill_429} answered 429 "
          f"and retried")
    print(f"floor: {backfill_requests} requests / {RATE} per s = {backfill_requests / RATE:.1f} s "
          f"+ plain COPY {copy_seconds:.1f} s = {floor:.1f} s")
    print(f"serial row-by-row baseline (measured on {len(sample)} symbols, scaled): {serial_seconds:.1f} s "
          f"→ backfill is {serial_seconds / backfill_seconds:.1f}× faster")
    print(f"rerun: {rerun_requests} requests, {rerun_seconds:.2f} s, exit code {rerun_code}")
    print(f"peak memory of the job process (maxrss): backfill {backfill_mb:.0f} MB, rerun {rerun_mb:.0f} MB")
    print(f"backfill / floor = {backfill_seconds / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

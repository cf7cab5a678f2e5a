"""Fault scenarios with their figures: what each fault costs, and that nothing is lost.

1. Data faults: a loopback Yahoo-format server gives each of 17 "faulty" symbols
   one fault (HTTP 429 with Retry-After, 500, 503, truncated JSON, HTML with 200,
   nulls, zero and negative prices, NaN, Infinity, 1e400, close outside the
   range, future dates, duplicated timestamps, an empty result, a malformed
   structure, adjclose [7, {}]) beside healthy symbols. The historical job runs
   as a child process; survived = the run ended 0 or 3 (never 1), every healthy
   symbol is loaded row for row as served, and no stored number is out of bounds.
2. Offline: 100 assets (stocks, crypto, forex on the default chains) with every
   provider's host unresolvable; seconds until each job gives up (target < 15 s).
3. kill -9: a backfill killed at random points (KILLS times), then a final run,
   compared row for row with a clean run of the same backfill.
4. A stalled database: the backfill's PostgreSQL connection goes through a
   loopback proxy that stops forwarding after two assets are committed; seconds
   until the job gives up (exit 3, one line; bound about 3 × ETL_DB_TIMEOUT),
   then a run straight to the database takes over the stale lock and finishes.
5. SIGTERM and SIGINT once a backfill has committed an asset: exit 143 / 130,
   the run row partial, nothing left running (tests/support/faults.py).

Uses a throwaway database on the test server (benchdb). The last line is the headline.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import date

from benchdb import REPO, throwaway_database

sys.path.insert(0, str(REPO / "tests"))

import psycopg2  # noqa: E402

from support.fake_api import FakeApi, Request, Response  # noqa: E402
from support.faults import StallingProxy, backfill_argv, signalled_backfill, stalled_run  # noqa: E402
from support.yahoo_server import YahooServer  # noqa: E402

START, END = date(2023, 1, 2), date(2024, 6, 28)
HEALTHY = [f"OK{i:02d}" for i in range(8)]
OFFLINE_URL = "http://etl-offline-host.invalid"
KILLS = 10
KILL_SYMBOLS = 100
PROVIDER_URL_VARIABLES = ("YAHOO_BASE_URL", "TWELVE_DATA_BASE_URL", "COINGECKO_BASE_URL", "FRANKFURTER_BASE_URL",
                          "ALPHA_VANTAGE_BASE_URL")


def raw(body: dict, marker: str, token: str) -> Response:
    return Response(body=json.dumps(body).replace(f'"{marker}"', token))


def chart_fault(name: str, server: YahooServer):
    """A handler answering one symbol's chart with fault `name`."""
    def quote_arrays(body):
        return body["chart"]["result"][0]["indicators"]["quote"][0]

    def mangle(request: Request) -> Response:
        body = server._chart(request).body
        result = body["chart"]["result"][0]
        arrays = quote_arrays(body)
        if name == "nulls":
            arrays["close"] = [None] * len(arrays["close"])
        elif name in ("zero price", "negative price"):
            arrays["close"] = [0 if name == "zero price" else -5] * len(arrays["close"])
        elif name in ("NaN", "Infinity", "1e400"):
            arrays["close"] = ["BAD"] * len(arrays["close"])
            return raw(body, "BAD", name)
        elif name == "close outside the range":
            arrays["close"] = [h * 3 for h in arrays["high"]]
        elif name == "future dates":
            result["timestamp"] = [t + 400 * 86400 for t in result["timestamp"]]
        elif name == "duplicated timestamps":
            result["timestamp"] = [result["timestamp"][0]] * len(result["timestamp"])
        elif name == "empty result":
            body["chart"]["result"] = []
        elif name == "malformed structure":
            result["indicators"] = ["quote", 1]
        elif name == "adjclose [7, {}]":
            result["indicators"]["adjclose"] = [7, {}]
        return Response(body=body)

    fixed = {"429 with Retry-After": Response(status=429, body={"error": "Too Many Requests"},
                                              headers={"Retry-After": "1"}),
             "500": Response(status=500, body="<html>Internal Server Error</html>", content_type="text/html"),
             "503": Response(status=503, body="<html>Service Unavailable</html>", content_type="text/html"),
             "truncated JSON": Response(body='{"chart": {"result": [{"meta": {"currency": "USD"'),
             "HTML with 200": Response(body="<html><body>Maintenance</body></html>", content_type="text/html")}
    return fixed.get(name) or mangle


FAULTS = ["429 with Retry-After", "500", "503", "truncated JSON", "HTML with 200", "nulls", "zero price",
          "negative price", "NaN", "Infinity", "1e400", "close outside the range", "future dates",
          "duplicated timestamps", "empty result", "malformed structure", "adjclose [7, {}]"]


def job_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "ETL_", "KAFKA_", "YAHOO_", "TWELVE_",
                                                                      "COINGECKO_", "FRANKFURTER_", "ALPHA_"))}
    env.update({"DATABASE_URL": url, "PYTHONPATH": str(REPO), "ETL_HTTP_BACKOFF": "0.05", "ETL_HTTP_RETRIES": "2",
                "LOG_LEVEL": "WARNING", **{v: OFFLINE_URL for v in PROVIDER_URL_VARIABLES}})
    env.update(extra)
    return env


def etl(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "etl", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def query(url: str, statement: str) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall()
    finally:
        conn.close()


STORED = "SELECT symbol, date, price, adj_close, open, high, low, volume FROM market_data ORDER BY symbol, date"
OUT_OF_BOUNDS = ("SELECT count(*) FROM market_data WHERE NOT (price >= 1e-12 AND price < 1e12) "
                 "OR volume >= 1e15 OR high < low")


def data_faults() -> tuple[int, int, int]:
    """(faults survived, of how many, healthy rows compared)."""
    api = FakeApi()
    server = YahooServer(api)
    symbols = {}
    for i, name in enumerate(FAULTS):
        symbol = f"BAD{i:02d}"
        symbols[symbol] = name
        api.route(re.compile(r"/v8/finance/chart/" + symbol), chart_fault(name, server))
    survived = compared = 0
    try:
        for symbol, name in symbols.items():
            with throwaway_database("bench_faults") as url:
                env = job_env(url, YAHOO_BASE_URL=api.base_url, PROVIDER_RATE_LIMITS="yahoo=100000")
                specs = ",".join(f"{s}:STOCK" for s in [*HEALTHY, symbol])
                code, _, output = etl(["fetch_historical_market_data", "--symbols", specs, "--start",
                                       START.isoformat(), "--end", END.isoformat()], env)
                healthy = [r for r in query(url, STORED) if r[0] in HEALTHY]
                expected = sum(len(server.trading_days(s, START, END)) for s in HEALTHY)
                bad = query(url, OUT_OF_BOUNDS)[0][0]
                ok = code in (0, 3) and len(healthy) == expected and bad == 0
                survived += ok
                compared += len(healthy)
                print(f"  {name:<24} exit {code}, {len(healthy)}/{expected} healthy rows, {bad} out of bounds: "
                      f"{'survived' if ok else 'LOST: ' + output.strip().splitlines()[-1][:150]}")
    finally:
        api.close()
    return survived, len(FAULTS), compared


def offline() -> dict[str, float]:
    """Seconds each market-data job takes to give up on 100 assets with no provider reachable."""
    specs = ([f"S{i:02d}:STOCK" for i in range(70)] + [f"C{i:02d}:CRYPTO" for i in range(15)]
             + [f"{c}/USD:FOREX" for c in ("EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "DKK",
                                          "PLN", "CZK", "HUF", "MXN", "ZAR")])
    seconds = {}
    with throwaway_database("bench_offline") as url:
        env = job_env(url, ETL_HTTP_RETRIES="4", ETL_HTTP_BACKOFF="0.5", CRYPTO_PROVIDERS="yahoo,coingecko",
                      FOREX_PROVIDERS="yahoo,frankfurter")
        assert etl(["assets", "add", *specs], env)[0] == 0
        for job in ("fetch_historical_market_data", "fetch_market_data"):
            code, took, output = etl([job], env)
            lines = [line for line in output.splitlines() if "cannot connect" in line]
            print(f"  {job}: exit {code} in {took:.1f} s, {len(lines)} line(s) about unreachable providers")
            seconds[job] = took
    return seconds


def kill_nine() -> tuple[int, int, bool]:
    """(kills, rows compared, identical) for a backfill killed KILLS times, then finished, against a clean run."""
    api = FakeApi()
    server = YahooServer(api)
    symbols = ",".join(f"K{i:03d}:STOCK" for i in range(KILL_SYMBOLS))
    args = ["fetch_historical_market_data", "--symbols", symbols, "--start", START.isoformat(), "--end",
            END.isoformat()]
    rng = random.Random(10)
    try:
        with throwaway_database("bench_clean") as clean_url, throwaway_database("bench_killed") as killed_url:
            slow = {"YAHOO_BASE_URL": api.base_url, "PROVIDER_RATE_LIMITS": "yahoo=300"}
            assert etl(args, job_env(clean_url, **slow))[0] == 0
            kills = 0
            for _ in range(KILLS):
                child = subprocess.Popen([sys.executable, "-m", "etl", *args], env=job_env(killed_url, **slow),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.8, 2.0))
                if child.poll() is None:
                    os.kill(child.pid, signal.SIGKILL)
                    kills += 1
                child.wait()
            code = etl(args, job_env(killed_url, **slow))[0]
            clean, killed = query(clean_url, STORED), query(killed_url, STORED)
            print(f"  {kills} kill -9 of {KILLS} tries, final run exit {code}: {len(killed)} rows against "
                  f"{len(clean)} of a clean run, {'identical' if clean == killed else 'DIFFERENT'}")
            return kills, len(clean), code == 0 and clean == killed
    finally:
        api.close()
    del server


STALL_TIMEOUT = 2  # ETL_DB_TIMEOUT for the stalled-database scenario, seconds


def stalled_and_signalled() -> tuple[float, bool, bool]:
    """(seconds to give up on a stalled database, the next run took over, both signals ended cleanly)."""
    api = FakeApi()
    YahooServer(api)
    symbols = [f"S{i}:STOCK" for i in range(12)]
    try:
        with throwaway_database("bench_stall") as url:
            assert etl(["migrate"], job_env(url))[0] == 0
            db = psycopg2.connect(url)
            db.autocommit = True
            base = job_env(url, YAHOO_BASE_URL=api.base_url, PROVIDER_RATE_LIMITS="yahoo=60", DB_SCHEMA="public",
                           ETL_DB_TIMEOUT=str(STALL_TIMEOUT), ETL_STALE_RUN_SECONDS="3")
            proxy, proxied_url = StallingProxy.for_url(url)
            try:
                stalled = stalled_run(backfill_argv(symbols), {**base, "DATABASE_URL": proxied_url}, base, proxy, db,
                                      commits_first=2, limit=10 * STALL_TIMEOUT, wait_stale=3.5)
            finally:
                proxy.close()
            took_over = stalled.next_run is not None and stalled.next_run.code == 0 and stalled.left_running == 0
            print(f"  stalled after {stalled.committed_before} committed assets: exit {stalled.ended.code} in "
                  f"{stalled.ended.seconds:.1f} s (ETL_DB_TIMEOUT={STALL_TIMEOUT}); next run exit "
                  f"{stalled.next_run.code if stalled.next_run else '-'}, {stalled.left_running} left running")
            clean_signals = True
            for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
                db.cursor().execute("TRUNCATE market_data, market_data_fetch_ledger, corporate_actions")
                ended = signalled_backfill(base, db, symbols, signum)
                ok = ended.ended.code == code and ended.status == "partial" and ended.running_left == 0
                clean_signals &= ok
                print(f"  {ended.signal}: exit {ended.ended.code} in {ended.ended.seconds:.1f} s, run "
                      f"{ended.status}, {len(ended.announced)} committed asset(s) announced, "
                      f"{ended.running_left} left running")
            db.close()
            return stalled.ended.seconds, stalled.ended.code == 3 and took_over, clean_signals
    finally:
        api.close()


def main() -> int:
    print("data faults (historical job, one faulty symbol beside 8 healthy ones):")
    survived, faults, compared = data_faults()
    print("offline, 100 assets, every provider's host unresolvable (default retries and backoff):")
    seconds = offline()
    print(f"kill -9 during a backfill of {KILL_SYMBOLS} symbols:")
    kills, rows, identical = kill_nine()
    print("a stalled database, then SIGTERM and SIGINT, during a backfill of 12 symbols:")
    stall_seconds, stall_ok, signals_ok = stalled_and_signalled()
    slowest = max(seconds.values())
    print(f"faults: {survived}/{faults} data faults survived ({compared} healthy rows compared, 0 lost "
          f"{'confirmed' if survived == faults else 'NOT confirmed'}); offline 100 assets given up in "
          f"{slowest:.1f} s (target < 15 s); kill -9 x{kills}: {rows} rows "
          f"{'identical to a clean run' if identical else 'DIFFER from a clean run'}; stalled database given up "
          f"in {stall_seconds:.1f} s {'and taken over' if stall_ok else 'NOT cleanly'}; SIGTERM/SIGINT "
          f"{'130/143, nothing left running' if signals_ok else 'NOT clean'}")
    return 0 if survived == faults and slowest < 15 and identical and stall_ok and signals_ok else 1


if __name__ == "__main__":
    sys.exit(main())

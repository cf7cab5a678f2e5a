"""Benchmark: 1,000,000 mock transactions with holdings against a plain COPY of the same rows.

Creates a throwaway database on TEST_DATABASE_URL / DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) with two migrated schemas and
the same assets and prices in each, then times
  product:  `generate_mock_transactions --accounts 1000 --months 25 --per-month 42`
            (24 full months and this month's share: over 1,000,000 transactions on any day)
            (generation, COPY into transactions, holdings, holdings_monthly, run row, event)
  baseline: COPY of exactly the transactions the product wrote into the identical,
            empty transactions table of the other schema (same indexes and keys).
Prints both times, the ratio and the peak memory of this process; the ratio is
the last line. Target: ratio <= 3, peak memory < 300 MB. The database is dropped.

    python bench/transactions.py [--accounts 1000] [--months 25] [--per-month 42]

Memory: `--transactions 10000000` generates about that many (the accounts needed at
--months × --per-month each), skips the baseline, and prints the peak memory against
the 300 MB target as the last line: the generator streams its rows into COPY, so
memory stays flat however many transactions are asked for.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import psycopg2

from benchdb import admin, throwaway_database

from etl.jobs import generate_mock_transactions  # noqa: E402
from etl.mock.load import TRANSACTION_COLUMNS  # noqa: E402
from etl.utils.db_utils import migrate  # noqa: E402

PRODUCT, BASELINE = "bench_product", "bench_baseline"

MARKET = """
    INSERT INTO asset (symbol, asset_type) VALUES
        ('AAPL', 'STOCK'), ('MSFT', 'STOCK'), ('VOO', 'ETF'), ('BTC', 'CRYPTO'), ('ETH', 'CRYPTO');
    INSERT INTO market_data (symbol, asset_type, date, price, source, as_of)
    SELECT a.symbol, a.asset_type, d::date,
           round((a.base * (1 + 0.2 * sin(extract(epoch FROM d) / 864000.0)))::numeric, 4), 'bench', now()
      FROM (VALUES ('AAPL', 'STOCK', 180.0), ('MSFT', 'STOCK', 400.0), ('VOO', 'ETF', 450.0),
                   ('BTC', 'CRYPTO', 60000.0), ('ETH', 'CRYPTO', 3000.0)) AS a(symbol, asset_type, base)
     CROSS JOIN generate_series(current_date - interval '26 months', current_date, interval '1 day') AS d
     WHERE a.asset_type = 'CRYPTO' OR extract(isodow FROM d) < 6;
    INSERT INTO corporate_actions (symbol, asset_type, date, kind, ratio, amount, source)
    SELECT 'AAPL', 'STOCK', d::date, 'dividend', NULL, 0.25, 'bench'
      FROM generate_series(current_date - interval '24 months', current_date, interval '3 months') AS d
    UNION ALL
    SELECT 'MSFT', 'STOCK', (current_date - interval '13 months')::date, 'split', 2, NULL, 'bench'
"""


def prepare_schema(url: str, schema: str) -> None:
    conn = psycopg2.connect(url, options=f"-c search_path={schema}")
    migrate(conn, schema)
    with conn.cursor() as cur:
        cur.execute(MARKET)
    conn.commit()
    conn.close()


def run_product(url: str, args) -> float:
    os.environ.update({"DATABASE_URL": url, "DB_SCHEMA": PRODUCT, "LOG_LEVEL": "WARNING"})
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    checkpoint(url)
    started = time.perf_counter()
    code = generate_mock_transactions.main(["--accounts", str(args.accounts), "--months", str(args.months),
                                            "--per-month", str(args.per_month), "--seed", "1"])
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bench: the product run failed with exit code {code}")
    return elapsed


def run_baseline(url: str) -> tuple[float, int]:
    """COPY the product's transactions (dumped to a file first) into the baseline schema's empty table."""
    columns = ", ".join(TRANSACTION_COLUMNS)
    conn = psycopg2.connect(url)
    with tempfile.TemporaryFile("w+") as dump, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {BASELINE}.accounts SELECT * FROM {PRODUCT}.accounts")
        cur.execute(f"INSERT INTO {BASELINE}.asset SELECT * FROM {PRODUCT}.asset WHERE asset_type = 'CASH'")
        conn.commit()
        cur.copy_expert(f"COPY (SELECT {columns} FROM {PRODUCT}.transactions ORDER BY transaction_id) "
                        "TO STDOUT", dump)
        dump.seek(0)
        checkpoint(url)
        started = time.perf_counter()
        cur.copy_expert(f"COPY {BASELINE}.transactions ({columns}) FROM STDIN", dump)
        conn.commit()
        elapsed = time.perf_counter() - started
        cur.execute(f"SELECT count(*) FROM {BASELINE}.transactions")
        count = cur.fetchone()[0]
    conn.close()
    return elapsed, count


def checkpoint(url: str) -> None:
    admin("CHECKPOINT", url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--months", type=int, default=25)
    parser.add_argument("--per-month", type=int, default=42)
    parser.add_argument("--transactions", type=int, help="about this many transactions; memory only")
    args = parser.parse_args()
    if args.transactions:
        return memory_only(args)
    with throwaway_database("bench_tx") as url:
        for schema in (PRODUCT, BASELINE):
            prepare_schema(url, schema)
        product = run_product(url, args)
        baseline, count = run_baseline(url)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"transactions: {count:,}")
    print(f"product (generate + COPY + holdings + monthly holdings): {product:.2f} s")
    print(f"baseline (COPY of the same transactions alone): {baseline:.2f} s")
    print(f"peak memory: {peak_mb:.0f} MB")
    print(f"ratio {product / baseline:.2f}")
    return 0


MEMORY_TARGET_MB = 300


def memory_only(args) -> int:
    """Generate about `args.transactions` transactions and report the peak memory against the target."""
    full_months = max(1, args.months - 1)  # this month's share and the opening rows come on top
    args.accounts = -(-args.transactions // (full_months * args.per_month))
    with throwaway_database("bench_tx") as url:
        prepare_schema(url, PRODUCT)
        product = run_product(url, args)
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {PRODUCT}.transactions")
            count = cur.fetchone()[0]
        conn.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"transactions: {count:,} for {args.accounts:,} accounts")
    print(f"product (generate + COPY + holdings + monthly holdings): {product:.1f} s")
    print(f"peak memory {peak_mb:.0f} MB of {MEMORY_TARGET_MB} MB: ratio {peak_mb / MEMORY_TARGET_MB:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bulk-upsert throughput: db_utils.bulk_upsert against a plain COPY of the same rows.

Loads 1,000,000 daily bars into an empty market_data with bulk_upsert, and the
same rows with a plain COPY (same Python-to-COPY-text conversion) into an
identical empty table, in a throwaway database on TEST_DATABASE_URL /
DATABASE_URL (else postgresql://postgres@127.0.0.1:5432/postgres). Then upserts
the same unchanged rows again and counts the rows rewritten (target 0).
The last line is the headline ratio (target ≤ 1.5).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg2

from benchdb import throwaway_database

from etl.utils.copy_format import copy_buffer  # noqa: E402
from etl.utils.db_utils import bulk_upsert, migrate  # noqa: E402

SYMBOLS = 400
COLUMNS = ("symbol", "asset_type", "date", "price", "adj_close", "open", "high", "low", "volume",
           "currency", "source", "as_of")
KEY = ("symbol", "asset_type", "date")


def bars(count: int) -> list[tuple]:
    days = -(-count // SYMBOLS)
    start = date(2000, 1, 3)
    out = []
    for s in range(SYMBOLS):
        symbol = f"S{s:04d}"
        for d in range(days):
            if len(out) == count:
                return out
            close = Decimal(100 + (s * 7 + d * 13) % 900) + Decimal(d % 100) / 100
            day = start + timedelta(days=d)
            out.append((symbol, "STOCK", day, close, close, close, close + 1, close - Decimal("0.5"),
                        Decimal(1000 + d), "USD", "bench", datetime(day.year, day.month, day.day, 21,
                                                                    tzinfo=timezone.utc)))
    return out


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="daily bars to load (default 1,000,000)")
    args = parser.parse_args()
    with throwaway_database("bench_load") as url:
        return run(url, args.rows)


def run(url: str, count: int) -> int:
    conn = psycopg2.connect(url, options="-c search_path=public")
    migrate(conn, "public")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type) SELECT 'S' || lpad(i::text, 4, '0'), 'STOCK' "
                    "FROM generate_series(0, %s) AS i", (SYMBOLS - 1,))
        cur.execute("CREATE TABLE market_data_copy (LIKE market_data INCLUDING ALL)")
        cur.execute("ALTER TABLE market_data_copy ADD FOREIGN KEY (symbol, asset_type) "
                    "REFERENCES asset (symbol, asset_type)")
    conn.commit()
    rows = bars(count)
    print(f"rows: {len(rows):,} daily bars for {SYMBOLS} symbols")

    def plain_copy():
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY market_data_copy ({', '.join(COLUMNS)}) FROM STDIN", copy_buffer(rows))
        conn.commit()

    def upsert():
        with conn.cursor() as cur:
            bulk_upsert(cur, "market_data", COLUMNS, rows, key=KEY, newer_column="as_of")
        conn.commit()

    copy_seconds = timed(plain_copy)
    print(f"plain COPY:        {copy_seconds:7.2f} s  ({len(rows) / copy_seconds:,.0f} rows/s)")
    upsert_seconds = timed(upsert)
    print(f"bulk_upsert:       {upsert_seconds:7.2f} s  ({len(rows) / upsert_seconds:,.0f} rows/s)")

    rewritten = {}

    def reupsert():
        with conn.cursor() as cur:
            bulk_upsert(cur, "market_data", COLUMNS, rows, key=KEY, newer_column="as_of")
            cur.execute("SELECT count(*) FROM market_data WHERE xmin = pg_current_xact_id()::xid")
            rewritten["xmin"] = cur.fetchone()[0]
            cur.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables "
                        "WHERE relid = 'market_data'::regclass")
            rewritten["stat"] = cur.fetchone()[0]
        conn.commit()

    again_seconds = timed(reupsert)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM market_data")
        stored = cur.fetchone()[0]
    conn.close()
    print(f"re-upsert same rows: {again_seconds:5.2f} s  ({again_seconds / upsert_seconds:.2f} x first load, "
          f"target ≤ 1.5); rows rewritten: {rewritten['xmin']} by xmin, {rewritten['stat']} updated by "
          f"pg_stat (target 0); rows stored: {stored:,}")
    print(f"bulk_upsert / plain COPY = {upsert_seconds / copy_seconds:.2f} (target ≤ 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebasing one asset with 20 years of daily history when a new corporate action is learned.

Stores 20 years of weekday bars (about 5,200 rows) and 80 quarterly dividends for
one stock in a throwaway database on TEST_DATABASE_URL / DATABASE_URL (else
postgresql://postgres@127.0.0.1:5432/postgres), then loads a look-back answer of
three Yahoo bars that reports a new 4:1 split, as the historical job does:
prices as traded, the new corporate_actions row, every stored adj_close divided
by 4 in one UPDATE and the missing ones computed, all in one transaction. Then
the same for a new dividend. Each is timed from the load to its commit, best of
--repeat runs. The last line is the headline: seconds against the 1 s target.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg2

from benchdb import throwaway_database

from etl.models import Asset, Bar, CorporateAction  # noqa: E402
from etl.pipeline import adjust  # noqa: E402
from etl.utils.db_utils import bulk_upsert, migrate  # noqa: E402

ASSET = Asset("BENCH", "STOCK")
COLUMNS = ("symbol", "asset_type", "date", "price", "adj_close", "open", "high", "low", "volume", "currency",
           "source", "as_of")
TARGET_SECONDS = 1.0


def weekdays(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)
            if (first + timedelta(days=i)).weekday() < 5]


def close(day: date) -> Decimal:
    return Decimal(50 + day.toordinal() % 150) + Decimal(day.toordinal() % 100) / 100


def seed(conn, days: list[date]) -> None:
    stamp = datetime.now(timezone.utc)
    rows = [(ASSET.symbol, ASSET.asset_type, d, close(d), close(d) * Decimal("0.9"), close(d), close(d) + 1,
             close(d) - 1, 1_000_000, "USD", "yahoo", stamp) for d in days]
    dividends = [d for d in days if d.month % 3 == 2 and 8 <= d.day <= 8 + 2][:80]
    with conn.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type, currency) VALUES (%s, %s, 'USD')",
                    (ASSET.symbol, ASSET.asset_type))
        bulk_upsert(cur, "market_data", COLUMNS, rows, key=("symbol", "asset_type", "date"))
        adjust.insert_actions(cur, [CorporateAction(ASSET.symbol, ASSET.asset_type, d, "dividend", "yahoo",
                                                    amount=Decimal("0.25"), currency="USD") for d in dividends])
    conn.commit()


def answer(days: list[date], action: CorporateAction) -> adjust.Answered:
    bars = [Bar(ASSET.symbol, ASSET.asset_type, d, close(d), "yahoo", adj_close=close(d), open=close(d),
                high=close(d) + 1, low=close(d) - 1, volume=Decimal(1_000_000), currency="USD") for d in days]
    return adjust.Answered("yahoo", bars, [action])


def timed_load(conn, recent: list[date], action: CorporateAction) -> tuple[float, int]:
    started = time.perf_counter()
    with conn.cursor() as cur:
        loaded = adjust.load_asset(cur, ASSET, [answer(recent, action)], fetched_at=datetime.now(timezone.utc),
                                   today=recent[-1])
    conn.commit()
    seconds = time.perf_counter() - started
    assert loaded.new_actions and loaded.rebased and loaded.rebased_rows > 0
    return seconds, loaded.rebased_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=20, help="years of history (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind; the best counts (default 3)")
    args = parser.parse_args()
    last = date(2025, 12, 31)
    days = weekdays(date(last.year - args.years + 1, 1, 1), last)
    best = {}
    for attempt in range(args.repeat):
        with throwaway_database("bench_rebase") as url:
            conn = psycopg2.connect(url)
            migrate(conn, "public")
            seed(conn, days[:-3])
            split = CorporateAction(ASSET.symbol, ASSET.asset_type, days[-2], "split", "yahoo", ratio=Decimal(4))
            split_seconds, rows = timed_load(conn, days[-3:], split)
            more = weekdays(last + timedelta(days=1), last + timedelta(days=7))[:3]
            dividend = CorporateAction(ASSET.symbol, ASSET.asset_type, more[-1], "dividend", "yahoo",
                                       amount=Decimal("0.30"), currency="USD")
            dividend_seconds, _ = timed_load(conn, more, dividend)
            conn.close()
        for kind, seconds in (("split", split_seconds), ("dividend", dividend_seconds)):
            best[kind] = min(best.get(kind, seconds), seconds)
        print(f"run {attempt + 1}: new split {split_seconds:.3f} s, new dividend {dividend_seconds:.3f} s "
              f"({rows:,} stored rows rebased)")
    worst = max(best.values())
    print(f"rebasing one asset with {args.years} years ({len(days):,} rows) on a new action: split "
          f"{best['split']:.3f} s, dividend {best['dividend']:.3f} s (best of {args.repeat})")
    print(f"headline: {worst:.3f} s per rebase against a target of {TARGET_SECONDS:.0f} s: "
          f"ratio {worst / TARGET_SECONDS:.3f}")


if __name__ == "__main__":
    main()

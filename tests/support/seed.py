"""A market-data database seeded by hand with known gaps, for the status and report tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

NEW_YORK = "America/New_York"


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def new_york_today() -> date:
    return datetime.now(ZoneInfo(NEW_YORK)).date()


def days(first: date, last: date, every_day: bool = False) -> list[date]:
    """Trading days of [first, last] by the simple calendars: weekdays, or every day."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)
            if every_day or (first + timedelta(days=i)).weekday() < 5]


def weekend_days(first: date, last: date) -> list[date]:
    return [d for d in days(first, last, every_day=True) if d.weekday() >= 5]


def add_asset(db, spec: str, *, name: str | None = None, zone: str | None = None, error: str | None = None,
              cool_off_days: int | None = None) -> None:
    symbol, asset_type = spec.split(":")
    with db.cursor() as cur:
        cur.execute("""
            INSERT INTO asset (symbol, asset_type, name, exchange_timezone, last_error, last_error_at, cool_off_until)
            VALUES (%s, %s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE now() END,
                    now() + make_interval(days => %s))""",
                    (symbol, asset_type, name, zone, error, error, cool_off_days))


def add_rows(db, spec: str, stored: list[date], *, source: str = "yahoo") -> None:
    symbol, asset_type = spec.split(":")
    with db.cursor() as cur:
        cur.execute("""
            INSERT INTO market_data (symbol, asset_type, date, price, adj_close, source, as_of)
            SELECT %s, %s, d, 100 + extract(doy FROM d) / 10, 99 + extract(doy FROM d) / 10, %s,
                   d + time '21:00' AT TIME ZONE 'UTC'
              FROM unnest(%s::date[]) AS d""", (symbol, asset_type, source, stored))


def add_empty_days(db, spec: str, first: date, last: date, empty: list[date]) -> None:
    """A fetch ledger entry saying `empty` had no trading (what a past backfill records)."""
    symbol, asset_type = spec.split(":")
    with db.cursor() as cur:
        cur.execute("""
            INSERT INTO market_data_fetch_ledger (symbol, asset_type, provider, range_start, range_end,
                                                  rows_returned, empty_days)
            VALUES (%s, %s, 'yahoo', %s, %s, 0, %s::date[])""", (symbol, asset_type, first, last, empty))


# ---- the seeded world of the status and report tests ----

LONG_ERROR = ("yahoo: 503 for http://127.0.0.1:9/v8/finance/chart/NOPE?period1=1700000000&period2=1700600000"
              "&interval=1d&events=div%2Csplit&includeAdjustedClose=true — the provider is failing, try again "
              "later: <html><body>Service unavailable</body></html>")
GONE_ERROR = "yahoo: /v8/finance/chart/GONE — unknown or delisted symbol (Not Found: No data found)"
START = utc_today() - timedelta(days=150)
START = START + timedelta(days=(7 - START.weekday()) % 7)          # a Monday
GAP_MONTH = (utc_today() - timedelta(days=90)).replace(day=1)
GAP = [d for d in days(GAP_MONTH, (GAP_MONTH + timedelta(days=31)).replace(day=1) - timedelta(days=1))]
HOLE = START + timedelta(days=9)                                     # a Wednesday, before the gap month
LAST_NY = max(d for d in days(START, new_york_today()))


def final_day(settings_lookback: int = 3) -> date:
    return utc_today() - timedelta(days=settings_lookback + 1)


def seed(db) -> None:
    """AAPL with a month-long hole and one missing day; MSFT ten days stale; BTC fresh and ETH two days
    behind (crypto); NOPE failing; GONE cooled off after a not-found error, with no data."""
    weekends = weekend_days(START, final_day())
    add_asset(db, "AAPL:STOCK", name="Apple Inc.", zone=NEW_YORK)
    add_rows(db, "AAPL:STOCK", [d for d in days(START, LAST_NY) if d not in GAP and d != HOLE])
    add_empty_days(db, "AAPL:STOCK", START, final_day(), weekends)
    add_asset(db, "MSFT:STOCK", zone=NEW_YORK)
    msft_last = max(days(START, new_york_today() - timedelta(days=10)))
    add_rows(db, "MSFT:STOCK", days(START, msft_last))
    add_empty_days(db, "MSFT:STOCK", START, msft_last, weekend_days(START, msft_last))
    add_asset(db, "BTC:CRYPTO")
    add_rows(db, "BTC:CRYPTO", days(START, utc_today(), every_day=True))
    add_asset(db, "ETH:CRYPTO")
    add_rows(db, "ETH:CRYPTO", days(START, utc_today() - timedelta(days=2), every_day=True))
    add_asset(db, "NOPE:STOCK", zone=NEW_YORK, error=LONG_ERROR)
    add_rows(db, "NOPE:STOCK", days(START, LAST_NY))
    add_empty_days(db, "NOPE:STOCK", START, final_day(), weekends)
    add_asset(db, "GONE:STOCK", error=GONE_ERROR, cool_off_days=7)



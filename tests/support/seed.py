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

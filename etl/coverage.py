"""What the database holds, per asset, provider and job: the facts behind `etl status` and `etl report`.

*Stale*: an asset's last stored day is more than N trading days behind its own
today — the date in its exchange's time zone (`asset.exchange_timezone`, from
the provider; UTC while unknown) for stocks, ETFs and indices, counting
weekdays; the UTC date for forex (weekdays) and crypto (every day). An active
asset with no stored day at all is stale too.

*Missing days*: the days between an asset's first and last stored day that the
historical job's gap planner (`plan.plan_spans`, over the stored rows and the
fetch ledger's known-empty days) would request, leaving out the look-back
window that every run re-checks anyway. Holidays and weekends count as missing
until a fetch has recorded them as days without trading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.config import Settings
from etl.error_lines import run_error_line, short_error
from etl.models import MARKET_ASSET_TYPES, Asset
from etl.pipeline.budget import left_today
from etl.pipeline.chain import daily_limit
from etl.pipeline.plan import plan_spans, recheck_from
from etl.pipeline.store import covered_spans
from etl.registry import JOBS

EXCHANGE_TYPES = frozenset({"STOCK", "ETF", "INDEX"})


def is_trading_day(day: date, asset_type: str) -> bool:
    return asset_type == "CRYPTO" or day.weekday() < 5


def asset_today(now: datetime, asset_type: str, exchange_timezone: str | None) -> date:
    """The asset's own today: in its exchange's time zone for exchange-traded types, else UTC."""
    zone = timezone.utc
    if asset_type in EXCHANGE_TYPES and exchange_timezone:
        try:
            zone = ZoneInfo(exchange_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return now.astimezone(zone).date()


def trading_days_behind(last: date, today: date, asset_type: str) -> int:
    """Trading days after `last` up to and including `today`."""
    if today <= last:
        return 0
    days = (today - last).days
    if asset_type == "CRYPTO":
        return days
    weeks, rest = divmod(days, 7)
    return weeks * 5 + sum(is_trading_day(last + timedelta(days=i), asset_type) for i in range(1, rest + 1))


def is_stale(last: date | None, today: date, asset_type: str, stale_after: int) -> bool:
    return last is None or trading_days_behind(last, today, asset_type) > stale_after


@dataclass
class AssetStatus:
    symbol: str
    asset_type: str
    name: str | None
    provider: str | None          # the source of its newest row: who last served it
    first_date: date | None
    last_date: date | None
    rows: int
    missing_days: int
    stale: bool
    as_of: datetime | None        # time of its newest quote
    last_success_at: datetime | None
    last_error: str | None        # one short line
    last_error_at: datetime | None
    cool_off_until: datetime | None

    @property
    def spec(self) -> str:
        return f"{self.symbol}:{self.asset_type}"

    @property
    def failing(self) -> bool:
        return self.last_error is not None


@dataclass
class ProviderStatus:
    name: str
    requests_today: int
    daily_limit: int | None
    budget_left: int | None
    last_error: str | None
    last_error_at: datetime | None


@dataclass
class JobStatus:
    job: str
    last_run_id: int | None
    status: str | None
    finished_at: datetime | None
    error: str | None


ASSETS = """
    SELECT a.symbol, a.asset_type, a.name, a.exchange_timezone, latest.source, s.first_date, s.last_date,
           coalesce(s.rows, 0), latest.as_of, a.last_success_at, a.last_error, a.last_error_at,
           CASE WHEN a.cool_off_until > now() THEN a.cool_off_until END
      FROM asset a
      LEFT JOIN LATERAL (SELECT min(m.date) AS first_date, max(m.date) AS last_date, count(*) AS rows
                           FROM market_data m WHERE m.symbol = a.symbol AND m.asset_type = a.asset_type) s ON true
      LEFT JOIN LATERAL (SELECT m.source, m.as_of FROM market_data m
                          WHERE m.symbol = a.symbol AND m.asset_type = a.asset_type
                          ORDER BY m.date DESC LIMIT 1) latest ON true
     WHERE a.asset_type = ANY(%(types)s)
       AND (CASE WHEN %(named)s THEN (a.symbol, a.asset_type) IN (SELECT * FROM unnest(%(symbols)s::text[],
                                                                                      %(asset_types)s::text[]))
            ELSE a.active END)
     ORDER BY a.asset_type, a.symbol"""


def asset_statuses(conn, *, now: datetime, lookback_days: int, stale_after: int = 1,
                   named: Sequence[Asset] | None = None) -> list[AssetStatus]:
    """Every active market asset (or those `named`) with its coverage, staleness and errors."""
    with conn.cursor() as cur:
        cur.execute(ASSETS, {"types": list(MARKET_ASSET_TYPES), "named": bool(named),
                             "symbols": [a.symbol for a in named or ()],
                             "asset_types": [a.asset_type for a in named or ()]})
        found = cur.fetchall()
    missing = missing_days(conn, [(Asset(r[0], r[1]), r[5], r[6]) for r in found], today=now.astimezone(
        timezone.utc).date(), lookback_days=lookback_days)
    statuses = []
    for (symbol, asset_type, name, zone, source, first, last, rows, as_of, last_ok, error, error_at,
         cool_off) in found:
        today = asset_today(now, asset_type, zone)
        statuses.append(AssetStatus(symbol, asset_type, name, source, first, last, rows,
                                    missing.get((symbol, asset_type), 0), is_stale(last, today, asset_type, stale_after),
                                    as_of, last_ok, short_error(error) or None, error_at, cool_off))
    return statuses


def missing_days(conn, assets: Sequence[tuple[Asset, date | None, date | None]], *, today: date,
                 lookback_days: int) -> dict[tuple[str, str], int]:
    """Per (symbol, asset_type), the days of [first, last] stored day the gap planner would request,
    without the look-back window (days re-checked by every run whatever is stored)."""
    final_until = recheck_from(today, lookback_days) - timedelta(days=1)
    spans = [(asset, first, min(last, final_until)) for asset, first, last in assets
             if first is not None and first <= min(last, final_until)]
    if not spans:
        return {}
    covered = covered_spans(conn, [asset for asset, _, _ in spans], min(s[1] for s in spans),
                            max(s[2] for s in spans))
    return {(asset.symbol, asset.asset_type): sum(span.days for span in plan_spans(
        first, last, covered.get((asset.symbol, asset.asset_type), []), today=today, lookback_days=lookback_days))
        for asset, first, last in spans}


PROVIDER_HEALTH = """
    SELECT provider,
           coalesce(sum(requests) FILTER (WHERE day = (now() AT TIME ZONE 'UTC')::date), 0),
           (array_agg(last_error ORDER BY last_error_at DESC) FILTER (WHERE last_error IS NOT NULL))[1],
           max(last_error_at)
      FROM provider_health GROUP BY provider"""


def provider_statuses(conn, settings: Settings) -> list[ProviderStatus]:
    """The providers of the configured chains, and any that served or failed a run."""
    with conn.cursor() as cur:
        cur.execute(PROVIDER_HEALTH)
        health = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute("SELECT DISTINCT provider FROM asset WHERE provider IS NOT NULL AND active")
        own = [row[0] for row in cur.fetchall()]
    names = list(dict.fromkeys([*(name for asset_type in MARKET_ASSET_TYPES
                                  for name in settings.provider_chain(asset_type)), *own, *sorted(health)]))
    limits = {name: limit for name in names if (limit := daily_limit(name, settings))}
    left = left_today(conn, limits)
    statuses = []
    for name in names:
        requests, error, error_at = health.get(name, (0, None, None))
        statuses.append(ProviderStatus(name, requests, limits.get(name), left.get(name), short_error(error) or None,
                                       error_at))
    return statuses


def job_statuses(conn) -> list[JobStatus]:
    """The last run of every job that ran (and of each market job, even if it never did)."""
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT ON (job) job, run_id, status, finished_at, error, failures "
                    "FROM etl_job_runs ORDER BY job, run_id DESC")
        last = {row[0]: row for row in cur.fetchall()}
    return [JobStatus(job, *(last[job][1:4] if job in last else (None, None, None)),
                      run_error_line(last[job][4], last[job][5]) or None if job in last else None)
            for job in dict.fromkeys([*JOBS, *sorted(last)])]


def status_document(conn, settings: Settings, *, now: datetime, stale_after: int = 1,
                    named: Sequence[Asset] | None = None) -> dict:
    """The whole status as one JSON-ready document (DESIGN.md's `etl status --format json`)."""
    assets = asset_statuses(conn, now=now, lookback_days=settings.lookback_days, stale_after=stale_after,
                            named=named)
    return {
        "generated_at": now,
        "assets": [asset_json(a) for a in assets],
        "providers": [{"name": p.name, "requests_today": p.requests_today, "daily_limit": p.daily_limit,
                       "budget_left": p.budget_left, "last_error": p.last_error, "last_error_at": p.last_error_at}
                      for p in provider_statuses(conn, settings)],
        "jobs": [asdict(j) for j in job_statuses(conn)],
    }


def asset_json(status: AssetStatus) -> dict:
    fields = asdict(status)
    del fields["last_error_at"]
    return fields

"""Named statements for market_data's quotes and stored spans, the fetch ledger, the asset cool-off and
learned provider symbols (history rows: `bar_rows`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Iterable, Sequence

from psycopg2 import sql
from psycopg2.extras import execute_values

from etl.models import Asset, Quote
from etl.pipeline.plan import Span
from etl.utils.db_utils import bulk_upsert

MARKET_DATA_KEY = ("symbol", "asset_type", "date")
QUOTE_COLUMNS = ("symbol", "asset_type", "date", "price", "change", "percent_change", "open", "high", "low",
                 "volume", "currency", "source", "as_of")


def _quote_merge() -> dict[str, sql.Composable]:
    """How a live quote merges into the day's stored row (SET expressions for bulk_upsert).

    Open, high and low are one group: a quote with any of them brings its own
    three; a quote with none of them (an ECB rate, a CoinGecko price) keeps the
    stored ones, high and low widened to take in its price, so the row still
    satisfies high >= low and low <= price <= high. Volume is kept when the quote
    has none. A quote that moves the price clears adj_close, which the historical
    job fills from the provider's adjusted close.
    """
    has_range = sql.SQL("(EXCLUDED.open IS NOT NULL OR EXCLUDED.high IS NOT NULL OR EXCLUDED.low IS NOT NULL)")
    return {
        "open": sql.SQL("CASE WHEN {has} THEN EXCLUDED.open ELSE market_data.open END").format(has=has_range),
        "high": sql.SQL("CASE WHEN {has} THEN EXCLUDED.high WHEN market_data.high IS NOT NULL "
                        "THEN greatest(market_data.high, EXCLUDED.price) END").format(has=has_range),
        "low": sql.SQL("CASE WHEN {has} THEN EXCLUDED.low WHEN market_data.low IS NOT NULL "
                       "THEN least(market_data.low, EXCLUDED.price) END").format(has=has_range),
        "volume": sql.SQL("coalesce(EXCLUDED.volume, market_data.volume)"),
        "adj_close": sql.SQL("CASE WHEN market_data.price IS DISTINCT FROM EXCLUDED.price "
                             "THEN NULL ELSE market_data.adj_close END"),
    }


QUOTE_MERGE = _quote_merge()

def asset_arrays(assets: Sequence[Asset]) -> tuple[list[str], list[str]]:
    """The symbols and the asset types of `assets`, as two arrays for `unnest(%s::text[], %s::text[])`."""
    return [a.symbol for a in assets], [a.asset_type for a in assets]


def covered_spans(conn, assets: Sequence[Asset], start: date, end: date) -> dict[tuple[str, str], list[Span]]:
    """Per asset, the days of [start, end] already stored or known empty, as contiguous spans.

    The islands are numbered per asset (a LATERAL subquery over its own primary
    key range), so each sort is one asset's few thousand days in memory rather
    than one sort of every stored row of every asset spilling to disk.
    """
    if not assets:
        return {}
    with conn.cursor() as cur:
        cur.execute("""
            WITH wanted (symbol, asset_type) AS (
                SELECT DISTINCT * FROM unnest(%(symbols)s::text[], %(types)s::text[]))
            SELECT w.symbol, w.asset_type, islands.first, islands.last
              FROM wanted w
             CROSS JOIN LATERAL (
                   SELECT min(day) AS first, max(day) AS last
                     FROM (SELECT day, day - (dense_rank() OVER (ORDER BY day))::int AS island
                             FROM (SELECT m.date AS day
                                     FROM market_data m
                                    WHERE m.symbol = w.symbol AND m.asset_type = w.asset_type
                                      AND m.date BETWEEN %(start)s AND %(end)s
                                   UNION ALL
                                   SELECT e.day
                                     FROM market_data_fetch_ledger l
                                    CROSS JOIN LATERAL unnest(l.empty_days) AS e(day)
                                    WHERE l.symbol = w.symbol AND l.asset_type = w.asset_type
                                      AND l.range_end >= %(start)s AND l.range_start <= %(end)s
                                      AND e.day BETWEEN %(start)s AND %(end)s) covered) numbered
                    GROUP BY island) islands
             ORDER BY w.symbol, w.asset_type, islands.first""",
                    {"symbols": asset_arrays(assets)[0], "types": asset_arrays(assets)[1], "start": start, "end": end})
        spans: dict[tuple[str, str], list[Span]] = {}
        for symbol, asset_type, first, last in cur.fetchall():
            spans.setdefault((symbol, asset_type), []).append(Span(first, last))
    return spans


def known_assets(conn, assets: Sequence[Asset]) -> set[tuple[str, str]]:
    """The (symbol, asset_type) of `assets` already in the asset table."""
    if not assets:
        return set()
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, asset_type FROM asset "
                    "WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))", asset_arrays(assets))
        return set(cur.fetchall())


def cooling_off(conn, assets: Sequence[Asset]) -> dict[tuple[str, str], datetime]:
    """Assets not to ask for until the returned time (an unknown or delisted symbol earlier)."""
    if not assets:
        return {}
    with conn.cursor() as cur:
        cur.execute("""
            SELECT symbol, asset_type, cool_off_until FROM asset
             WHERE cool_off_until > now()
               AND (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", asset_arrays(assets))
        return {(s, t): until for s, t, until in cur.fetchall()}


def set_cool_off(cur, assets: Iterable[Asset], days: int) -> None:
    wanted = list(assets)
    if wanted:
        cur.execute("""
            UPDATE asset SET cool_off_until = now() + make_interval(days => %s)
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
                    (days, *asset_arrays(wanted)))


def clear_cool_off(cur, assets: Iterable[Asset]) -> None:
    wanted = list(assets)
    if wanted:
        cur.execute("""
            UPDATE asset SET cool_off_until = NULL
             WHERE cool_off_until IS NOT NULL
               AND (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", asset_arrays(wanted))


def record_fetches(cur, entries: Sequence[tuple[Asset, str, Span, int, int, list[date]]],
                   run_id: int | None = None) -> None:
    """Ledger rows: (asset, provider, span, rows returned, rows dropped, final empty days), fetched by `run_id`.

    The empty days go as one array literal per row (a backfill's are hundreds of days each, which
    psycopg2 would adapt one by one)."""
    if entries:
        execute_values(cur, """
            INSERT INTO market_data_fetch_ledger
                   (symbol, asset_type, provider, range_start, range_end, rows_returned, rows_dropped, empty_days,
                    run_id)
            VALUES %s""", [(a.symbol, a.asset_type, provider, span.start, span.end, returned, dropped,
                            _date_array(days), run_id)
                           for a, provider, span, returned, dropped, days in entries],
                       template="(%s, %s, %s, %s, %s, %s, %s, %s::date[], %s)")


def _date_array(days: Iterable[date]) -> str:
    """`days` as a PostgreSQL array literal ({2024-01-06,2024-01-07})."""
    return "{" + ",".join(map(date.isoformat, days)) + "}"


def fetched_meanwhile(conn, assets: Sequence[Asset], run_id: int,
                      started_at: datetime) -> dict[Asset, list[Span]]:
    """The spans of each of `assets` that runs overlapping run `run_id` (still running, or finished since it
    started) have fetched: committed before the asset's lock could be taken, so they need no second request."""
    if not assets:
        return {}
    by_key = {(asset.symbol, asset.asset_type): asset for asset in assets}
    with conn.cursor() as cur:
        cur.execute("""
            SELECT l.symbol, l.asset_type, l.range_start, l.range_end
              FROM market_data_fetch_ledger l
              JOIN etl_job_runs r ON r.run_id = l.run_id
             WHERE (l.symbol, l.asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
               AND l.run_id <> %s AND (r.finished_at IS NULL OR r.finished_at >= %s)""",
                    (*asset_arrays(assets), run_id, started_at))
        fetched: dict[Asset, list[Span]] = {}
        for symbol, asset_type, first, last in cur.fetchall():
            fetched.setdefault(by_key[(symbol, asset_type)], []).append(Span(first, last))
    return fetched


def upsert_quotes(cur, quotes: Iterable[Quote]) -> int:
    """Live quotes as the row of their trading date; an older quote never replaces a newer one.

    How a quote merges with the day's stored values: `QUOTE_MERGE`.
    """
    rows = ((q.symbol, q.asset_type, q.date, q.price, q.change, q.percent_change, q.open, q.high, q.low,
             q.volume, q.currency, q.source, q.as_of) for q in quotes)
    return bulk_upsert(cur, "market_data", QUOTE_COLUMNS, rows, key=MARKET_DATA_KEY, newer_column="as_of",
                       set_expressions=QUOTE_MERGE)


def store_learned_symbols(cur, learned: dict[Asset, tuple[str, str]]) -> None:
    """Remember provider symbols resolved at run time (asset → (provider, its symbol)) in
    `provider_symbols`, for `provider_symbols()` to give back to that provider on later runs.

    They are kept apart from `asset.provider`/`provider_symbol`, the user's own override, which
    would put the provider first in the asset's chain. Assets not in `asset` are left out.
    """
    by_key = {(provider, a.symbol, a.asset_type): symbol for a, (provider, symbol) in learned.items()}
    if by_key:
        cur.execute("""
            INSERT INTO provider_symbols AS p (provider, symbol, asset_type, provider_symbol)
            SELECT l.provider, l.symbol, l.asset_type, l.provider_symbol
              FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS l(provider, symbol, asset_type, provider_symbol)
              JOIN asset a ON a.symbol = l.symbol AND a.asset_type = l.asset_type
            ON CONFLICT (provider, symbol, asset_type) DO UPDATE
               SET provider_symbol = EXCLUDED.provider_symbol, learned_at = now()
             WHERE p.provider_symbol IS DISTINCT FROM EXCLUDED.provider_symbol""",
                    ([p for p, _, _ in by_key], [s for _, s, _ in by_key], [t for _, _, t in by_key],
                     list(by_key.values())))


def provider_symbols(conn, assets: Sequence[Asset]) -> dict[str, dict[tuple[str, str], str]]:
    """Symbols learned in earlier runs for `assets`: provider → (symbol, asset_type) → its symbol."""
    if not assets:
        return {}
    with conn.cursor() as cur:
        cur.execute("""
            SELECT provider, symbol, asset_type, provider_symbol FROM provider_symbols
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", asset_arrays(assets))
        known: dict[str, dict[tuple[str, str], str]] = {}
        for provider, symbol, asset_type, provider_symbol in cur.fetchall():
            known.setdefault(provider, {})[(symbol, asset_type)] = provider_symbol
    return known


def actions_checked(conn, assets: Sequence[Asset]) -> dict[tuple[str, str], tuple[date | None, date | None]]:
    """Per asset: the day its corporate actions were last checked through, and its first stored day."""
    if not assets:
        return {}
    with conn.cursor() as cur:
        cur.execute("""
            SELECT a.symbol, a.asset_type, a.corporate_actions_checked,
                   (SELECT min(m.date) FROM market_data m WHERE m.symbol = a.symbol AND m.asset_type = a.asset_type)
              FROM asset a
             WHERE (a.symbol, a.asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", asset_arrays(assets))
        return {(symbol, asset_type): (checked, first) for symbol, asset_type, checked, first in cur.fetchall()}


def stored_around(cur, spans: Sequence[tuple[Asset, Span]]) -> list[tuple[bool, bool]]:
    """For each (asset, span), whether the asset has a row stored before the span and one after it."""
    if not spans:
        return []
    cur.execute("""
        SELECT EXISTS (SELECT 1 FROM market_data m WHERE m.symbol = s.symbol AND m.asset_type = s.asset_type
                          AND m.date < s.first),
               EXISTS (SELECT 1 FROM market_data m WHERE m.symbol = s.symbol AND m.asset_type = s.asset_type
                          AND m.date > s.last)
          FROM unnest(%s::text[], %s::text[], %s::date[], %s::date[]) WITH ORDINALITY
               AS s(symbol, asset_type, first, last, n)
         ORDER BY s.n""", ([a.symbol for a, _ in spans], [a.asset_type for a, _ in spans],
                           [span.start for _, span in spans], [span.end for _, span in spans]))
    return [(before, after) for before, after in cur.fetchall()]

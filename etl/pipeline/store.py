"""Named statements for market_data, the fetch ledger, the asset cool-off and learned provider symbols."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Iterable, Sequence

from psycopg2 import errors, sql
from psycopg2.extras import execute_values

from etl.models import Asset, Bar, Quote
from etl.pipeline.moves import batch_moves
from etl.pipeline.plan import Span
from etl.utils.db_utils import bulk_upsert, copy_rows

MARKET_DATA_KEY = ("symbol", "asset_type", "date")
BAR_COLUMNS = ("symbol", "asset_type", "date", "price", "adj_close", "open", "high", "low", "volume",
               "currency", "source", "as_of", "change", "percent_change")
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

# A bar without an adjusted close (its provider gives none) keeps the stored one while the price is
# unchanged: that one is on the current basis (pipeline.adjust keeps it there); otherwise it is
# computed again from the price.
# A stored change is kept: the upsert's is only a first guess for new rows (pipeline.moves), and
# fill_history_changes sets the stored ones right after it.
BAR_MERGE = {
    "adj_close": sql.SQL("coalesce(EXCLUDED.adj_close, CASE WHEN market_data.price = EXCLUDED.price "
                         "THEN market_data.adj_close END)"),
    "change": sql.SQL("coalesce(market_data.change, EXCLUDED.change)"),
    "percent_change": sql.SQL("coalesce(market_data.percent_change, EXCLUDED.percent_change)"),
}


def _keys(assets: Sequence[Asset]) -> tuple[list[str], list[str]]:
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
                    {"symbols": _keys(assets)[0], "types": _keys(assets)[1], "start": start, "end": end})
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
                    "WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))", _keys(assets))
        return set(cur.fetchall())


def cooling_off(conn, assets: Sequence[Asset]) -> dict[tuple[str, str], datetime]:
    """Assets not to ask for until the returned time (an unknown or delisted symbol earlier)."""
    if not assets:
        return {}
    with conn.cursor() as cur:
        cur.execute("""
            SELECT symbol, asset_type, cool_off_until FROM asset
             WHERE cool_off_until > now()
               AND (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", _keys(assets))
        return {(s, t): until for s, t, until in cur.fetchall()}


def set_cool_off(cur, assets: Iterable[Asset], days: int) -> None:
    wanted = list(assets)
    if wanted:
        cur.execute("""
            UPDATE asset SET cool_off_until = now() + make_interval(days => %s)
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
                    (days, *_keys(wanted)))


def clear_cool_off(cur, assets: Iterable[Asset]) -> None:
    wanted = list(assets)
    if wanted:
        cur.execute("""
            UPDATE asset SET cool_off_until = NULL
             WHERE cool_off_until IS NOT NULL
               AND (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", _keys(wanted))


def record_fetches(cur, entries: Sequence[tuple[Asset, str, Span, int, int, list[date]]],
                   run_id: int | None = None) -> None:
    """Ledger rows: (asset, provider, span, rows returned, rows dropped, final empty days), fetched by `run_id`."""
    if entries:
        execute_values(cur, """
            INSERT INTO market_data_fetch_ledger
                   (symbol, asset_type, provider, range_start, range_end, rows_returned, rows_dropped, empty_days,
                    run_id)
            VALUES %s""", [(a.symbol, a.asset_type, provider, span.start, span.end, returned, dropped, days, run_id)
                           for a, provider, span, returned, dropped, days in entries],
                       template="(%s, %s, %s, %s, %s, %s, %s, %s::date[], %s)")


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
                    (*_keys(assets), run_id, started_at))
        fetched: dict[Asset, list[Span]] = {}
        for symbol, asset_type, first, last in cur.fetchall():
            fetched.setdefault(by_key[(symbol, asset_type)], []).append(Span(first, last))
    return fetched


def upsert_bars(cur, bars: Iterable[Bar], fetched_at: datetime, *,
                new_assets: Iterable[tuple[str, str]] = ()) -> tuple[int, set[tuple[str, str]]]:
    """Historical bars (of any number of assets); `as_of` is the provider's stamp, else the time of the fetch.
    Returns the rows written and the (symbol, asset_type) of `new_assets` whose rows were all inserted new.

    A refetched bar whose values did not change is not rewritten: `as_of` alone
    (a new fetch time) is not a change. A new row gets its change from the bar
    before it in `bars` (`moves.batch_moves`), so that `fill_history_changes`
    rarely has to rewrite one. The bars of `new_assets` (none of their rows
    stored when their load began) are COPYed straight into market_data, without
    the staging table and the conflict checks; should one of those rows have been
    stored meanwhile (a live quote of the same day), they are merged like the others.
    """
    latest = {(b.symbol, b.asset_type, b.date): b for b in bars}  # a repeated day keeps its last bar
    moves = batch_moves(latest.values(), today=fetched_at.astimezone(timezone.utc).date())
    rows_of: dict[tuple[str, str], list[tuple]] = {}
    for key, b in latest.items():
        rows_of.setdefault(key[:2], []).append(
            (b.symbol, b.asset_type, b.date, b.price, b.adj_close, b.open, b.high, b.low, b.volume, b.currency,
             b.source, b.as_of or fetched_at, *moves.get(key, (None, None))))
    inserted = set(new_assets) & set(rows_of)
    if inserted and not insert_new_rows(cur, [row for asset in inserted for row in rows_of[asset]]):
        inserted = set()
    merged = [row for asset, rows in rows_of.items() if asset not in inserted for row in rows]
    written = bulk_upsert(cur, "market_data", BAR_COLUMNS, merged, key=MARKET_DATA_KEY, compare_exclude=("as_of",),
                          set_expressions=BAR_MERGE) if merged else 0
    return written + sum(len(rows_of[asset]) for asset in inserted), inserted


def insert_new_rows(cur, rows: Sequence[tuple]) -> bool:
    """COPY `rows` (BAR_COLUMNS, keys not stored) into market_data; False, with nothing written, when a key
    turns out to be stored already. Inside a transaction a savepoint keeps the rest of it."""
    in_transaction = not cur.connection.autocommit
    if in_transaction:
        cur.execute("SAVEPOINT new_rows")
    try:
        copy_rows(cur, "market_data", BAR_COLUMNS, rows)
    except errors.UniqueViolation:
        if in_transaction:
            cur.execute("ROLLBACK TO SAVEPOINT new_rows")
        return False
    if in_transaction:
        cur.execute("RELEASE SAVEPOINT new_rows")
    return True


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
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", _keys(assets))
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
             WHERE (a.symbol, a.asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""", _keys(assets))
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


def fill_history_changes(cur, spans: Sequence[tuple[Asset, date, date]], *, today: date) -> int:
    """Set `change` and `percent_change` of history rows from the previous stored trading day.

    The move is taken on the adjusted basis, so a split or dividend is not shown
    as one: r = adj_close_t / adj_close_(t-1) - 1 (`price` for both days when
    either lacks an adjusted close), percent_change = 100 r (six decimals, like
    the quotes'), change = price_t * r / (1 + r), the as-traded amount (four more
    decimals than the price); a value beyond the table's bounds (a change of
    1e12, a percent change of 1e9) is left NULL. `spans` are the (asset, first,
    last) days just written, one per asset; the next stored day after each span
    is recomputed too, so an earlier day that arrives later fixes the day after it. An asset's
    first stored day has no previous day and is left as it is. Today's row (and a
    later one: an exchange ahead of UTC) keeps the change a live quote gave it.
    Rebasing adj_close leaves the ratios, and so these values, unchanged.
    Returns the number of rows rewritten.
    """
    if not spans:
        return 0
    cur.execute("""
        WITH touched (symbol, asset_type, first, last) AS (
            SELECT * FROM unnest(%(symbols)s::text[], %(types)s::text[], %(firsts)s::date[], %(lasts)s::date[])),
        reach AS (
            SELECT t.symbol, t.asset_type, t.first,
                   coalesce((SELECT max(p.date) FROM market_data p
                              WHERE p.symbol = t.symbol AND p.asset_type = t.asset_type AND p.date < t.first),
                            t.first) AS from_day,
                   coalesce((SELECT min(n.date) FROM market_data n
                              WHERE n.symbol = t.symbol AND n.asset_type = t.asset_type AND n.date > t.last),
                            t.last) AS to_day
              FROM touched t),
        moves AS (
            SELECT m.symbol, m.asset_type, m.date, m.price, r.first,
                   CASE WHEN m.adj_close IS NOT NULL AND lag(m.adj_close) OVER w IS NOT NULL
                        THEN m.adj_close / lag(m.adj_close) OVER w
                        ELSE m.price / lag(m.price) OVER w END - 1 AS move
              FROM reach r
              JOIN market_data m ON m.symbol = r.symbol AND m.asset_type = r.asset_type
                                AND m.date BETWEEN r.from_day AND r.to_day
            WINDOW w AS (PARTITION BY m.symbol, m.asset_type ORDER BY m.date)),
        rounded AS (
            SELECT symbol, asset_type, date, round(move * 100, 6) AS percent,
                   round(price * move / (1 + move), scale(price) + 4) AS amount
              FROM moves
             WHERE date >= first AND move IS NOT NULL),
        computed AS (
            SELECT symbol, asset_type, date,
                   CASE WHEN abs(amount) < 1e12 THEN amount END AS change,
                   CASE WHEN abs(percent) < 1e9 THEN percent END AS percent_change
              FROM rounded)
        UPDATE market_data m
           SET change = c.change, percent_change = c.percent_change, updated_at = now()
          FROM computed c
         WHERE m.symbol = c.symbol AND m.asset_type = c.asset_type AND m.date = c.date
           AND NOT (m.date >= %(today)s AND (m.change IS NOT NULL OR m.percent_change IS NOT NULL))
           AND (m.change, m.percent_change) IS DISTINCT FROM (c.change, c.percent_change)""",
                {"symbols": [a.symbol for a, _, _ in spans], "types": [a.asset_type for a, _, _ in spans],
                 "firsts": [first for _, first, _ in spans], "lasts": [last for _, _, last in spans],
                 "today": today})
    return max(cur.rowcount, 0)

"""History bars as `market_data` rows: encoded ahead of the load, written set-based with their changes.

Encoding an asset's rows as COPY text is the costliest Python step of a load, so
the fetch threads do it as soon as an asset's answers are validated
(`adjust.prepare`); the writer thread, which holds the one database connection,
mostly sends text while the server works. Each day's `change` and
`percent_change` are computed by PostgreSQL, in one place (`MOVE`, `ROUNDED`,
`BOUNDED`): while the rows are written, from the rows written with them, and
after, by `fill_history_changes`, from the rows as stored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Iterable, Mapping, Sequence

from psycopg2 import errors, sql

from etl.models import Asset, Bar
from etl.pipeline.store import MARKET_DATA_KEY
from etl.utils.copy_format import copy_columns
from etl.utils.db_utils import copy_text, merge_from, staging_table

STAGED_COLUMNS = ("symbol", "asset_type", "date", "price", "adj_close", "open", "high", "low", "volume",
                  "currency", "source", "as_of")
BAR_COLUMNS = (*STAGED_COLUMNS, "change", "percent_change")

# A day's move r over the stored day before it, on the adjusted basis so that a split or dividend is
# not shown as one (the price for both days when either lacks an adjusted close); window w orders an
# asset's rows by date. Then percent_change = 100 r (six decimals, like the quotes') and change =
# price r / (1 + r), the as-traded amount (four more decimals than the price); a value beyond the
# table's bounds (a change of 1e12, a percent change of 1e9) is NULL.
MOVE = """CASE WHEN adj_close IS NOT NULL AND lag(adj_close) OVER w IS NOT NULL
               THEN adj_close / lag(adj_close) OVER w
               ELSE price / lag(price) OVER w END - 1"""
ROUNDED = "round(move * 100, 6) AS percent, round(price * move / (1 + move), scale(price) + 4) AS amount"
BOUNDED = ("CASE WHEN abs(amount) < 1e12 THEN amount END AS change, "
           "CASE WHEN abs(percent) < 1e9 THEN percent END AS percent_change")
WINDOW = "WINDOW w AS (PARTITION BY symbol, asset_type ORDER BY date)"

# The rows of the staging table {stage} of the assets given as two arrays, with their changes among themselves.
_MOVED = f"""(SELECT {', '.join(STAGED_COLUMNS)}, {BOUNDED}
                FROM (SELECT *, {ROUNDED}
                        FROM (SELECT *, {MOVE} AS move FROM {{stage}}
                               WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
                              {WINDOW}) moving) rounded) moved"""

# A bar without an adjusted close (its provider gives none) keeps the stored one while the price is
# unchanged: that one is on the current basis (pipeline.adjust keeps it there); otherwise it is
# computed again from the price. A stored change is kept: a merged row's is computed from the rows
# written with it, and fill_history_changes sets the stored ones right after.
BAR_MERGE = {
    "adj_close": sql.SQL("coalesce(EXCLUDED.adj_close, CASE WHEN market_data.price = EXCLUDED.price "
                         "THEN market_data.adj_close END)"),
    "change": sql.SQL("coalesce(market_data.change, EXCLUDED.change)"),
    "percent_change": sql.SQL("coalesce(market_data.percent_change, EXCLUDED.percent_change)"),
}

SplitKeys = frozenset[tuple[date, Decimal]]
Key = tuple[str, str]


@dataclass(frozen=True)
class EncodedBars:
    """One asset's bars, one per day (a repeated day keeps its last bar), and their rows as COPY text
    (STAGED_COLUMNS).

    `splits` and `filled_adj_close` say what the encoding assumed, for the writer to check
    against what is stored: the (ex-date, ratio) of the splits the prices were made as traded
    with, and whether a missing adjusted close was set to the price (no corporate action known).
    """

    bars: list[Bar]
    text: str
    splits: SplitKeys = frozenset()
    filled_adj_close: bool = False

    @property
    def rows(self) -> int:
        return len(self.bars)


def encode_bars(bars: Iterable[Bar], fetched_at: datetime, *, splits: SplitKeys = frozenset(),
                filled_adj_close: bool = False) -> EncodedBars:
    """`bars` (of one asset) as rows; `as_of` is the provider's stamp, else the time of the fetch."""
    latest = {bar.date: bar for bar in bars}
    ordered = [latest[day] for day in sorted(latest)]
    columns = [list(map(attrgetter(name), ordered)) for name in STAGED_COLUMNS]
    as_of = STAGED_COLUMNS.index("as_of")
    columns[as_of] = [stamp or fetched_at for stamp in columns[as_of]]
    return EncodedBars(ordered, copy_columns(columns), splits, filled_adj_close)


def upsert_bars(cur, encoded: Mapping[Key, EncodedBars], *, new_assets: Iterable[Key] = ()) -> tuple[int, set[Key]]:
    """Write the encoded rows of each (symbol, asset_type), each new row with its change from the row
    before it among them. Returns the rows written and the keys of `new_assets` whose rows were all
    inserted new, their changes final.

    The rows are COPYed into a staging table. Those of `new_assets` (nothing stored
    when their load began) are inserted in one statement without conflict checks;
    should one of them have been stored meanwhile (a live quote of the same day),
    they are merged like the others: a refetched bar whose values did not change is
    not rewritten (`as_of` alone, a new fetch time, is no change).
    """
    texts = {key: rows for key, rows in encoded.items() if rows.rows}
    if not texts:
        return 0, set()
    with staging_table(cur, "market_data", STAGED_COLUMNS) as stage:
        copy_text(cur, stage, STAGED_COLUMNS, io.StringIO("".join(rows.text for rows in texts.values())))
        moved = sql.SQL(_MOVED).format(stage=stage)
        inserted = {key for key in new_assets if key in texts}
        written = _insert_new(cur, moved, inserted) if inserted else 0
        if written is None:
            inserted, written = set(), 0
        merged = [key for key in texts if key not in inserted]
        if merged:
            written += merge_from(cur, "market_data", BAR_COLUMNS, moved, _arrays(merged),
                                  key=MARKET_DATA_KEY, compare_exclude=("as_of",), set_expressions=BAR_MERGE)
    return written, inserted


def _insert_new(cur, moved: sql.Composable, keys: Iterable[Key]) -> int | None:
    """Insert the staged rows of `keys` (`moved`: them with their changes); None, with nothing written, when
    one of them is stored already. Inside a transaction a savepoint keeps the rest of it."""
    in_transaction = not cur.connection.autocommit
    if in_transaction:
        cur.execute("SAVEPOINT new_rows")
    try:
        cur.execute(sql.SQL("INSERT INTO market_data ({cols}) SELECT * FROM {moved}").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, BAR_COLUMNS)), moved=moved), _arrays(keys))
    except errors.UniqueViolation:
        if in_transaction:
            cur.execute("ROLLBACK TO SAVEPOINT new_rows")
        return None
    inserted = cur.rowcount
    if in_transaction:
        cur.execute("RELEASE SAVEPOINT new_rows")
    return inserted


def _arrays(keys: Iterable[Key]) -> tuple[list[str], list[str]]:
    keys = list(keys)
    return [symbol for symbol, _ in keys], [asset_type for _, asset_type in keys]


def fill_history_changes(cur, spans: Sequence[tuple[Asset, date, date]], *, today: date) -> int:
    """Set `change` and `percent_change` of history rows from the previous stored trading day.

    The move is that of `MOVE`, `ROUNDED` and `BOUNDED`. `spans` are the (asset, first,
    last) days just written, one per asset; the next stored day after each span
    is recomputed too, so an earlier day that arrives later fixes the day after it. An asset's
    first stored day has no previous day and is left as it is. Today's row (and a
    later one: an exchange ahead of UTC) keeps the change a live quote gave it.
    Rebasing adj_close leaves the ratios, and so these values, unchanged.
    Returns the number of rows rewritten.
    """
    if not spans:
        return 0
    cur.execute(f"""
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
            SELECT m.symbol, m.asset_type, m.date, m.price, r.first, {MOVE} AS move
              FROM reach r
              JOIN market_data m ON m.symbol = r.symbol AND m.asset_type = r.asset_type
                                AND m.date BETWEEN r.from_day AND r.to_day
            WINDOW w AS (PARTITION BY m.symbol, m.asset_type ORDER BY m.date)),
        rounded AS (
            SELECT symbol, asset_type, date, {ROUNDED}
              FROM moves
             WHERE date >= first AND move IS NOT NULL),
        computed AS (
            SELECT symbol, asset_type, date, {BOUNDED}
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

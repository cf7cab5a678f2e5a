"""db_utils.bulk_upsert against real PostgreSQL: idempotent, exact, and never rewriting unchanged rows."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_AUTOCOMMIT

from etl.assets import register_assets
from etl.models import Asset, Bar, Quote
from etl.pipeline.bar_rows import encode_bars, upsert_bars
from etl.pipeline.store import upsert_quotes
from etl.utils.copy_format import copy_buffer, copy_value
from etl.utils.db_utils import bulk_upsert
from support.db import rows, scalar

COLUMNS = ("symbol", "asset_type", "date", "price", "volume", "source", "as_of")
KEY = ("symbol", "asset_type", "date")
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=timezone.utc)
T1 = datetime(2024, 1, 3, 21, 0, tzinfo=timezone.utc)


@pytest.fixture
def market(db):
    with db.cursor() as cur:
        register_assets(cur, [Asset("AAPL", "STOCK"), Asset("MSFT", "STOCK")])
    return db


def bar(symbol="AAPL", day=1, price="100.5", volume="1000", source="yahoo", as_of=T0):
    return (symbol, "STOCK", date(2024, 1, day), Decimal(price), volume and Decimal(volume), source, as_of)


def upsert(db, batch, **options) -> int:
    db.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    with db.cursor() as cur:
        return bulk_upsert(cur, "market_data", COLUMNS, batch, key=KEY, **options)


def stored(db) -> list[tuple]:
    return rows(db, "SELECT symbol, asset_type, date, price, volume, source, as_of FROM market_data "
                    "ORDER BY symbol, date")


def versions(db) -> list[tuple]:
    """Each row's key with its xmin: a rewritten row gets a new xmin."""
    return rows(db, "SELECT symbol, date, xmin::text, updated_at FROM market_data ORDER BY symbol, date")


def test_first_load_inserts_every_row(market):
    batch = [bar(day=d) for d in (1, 2, 3)] + [bar("MSFT", 2)]
    assert upsert(market, batch) == 4
    assert stored(market) == sorted(batch, key=lambda r: (r[0], r[2]))


def test_loading_the_same_batch_twice_rewrites_nothing(market):
    batch = [bar(day=d) for d in range(1, 11)]
    upsert(market, batch)
    before, rows_before = versions(market), stored(market)
    assert upsert(market, batch) == 0
    assert versions(market) == before
    assert stored(market) == rows_before


def test_second_identical_load_adds_no_updates_to_table_statistics(market):
    batch = [bar(day=d) for d in range(1, 11)]
    upsert(market, batch)
    updates_before = table_updates(market)
    upsert(market, batch)
    assert table_updates(market) == updates_before


def table_updates(db) -> int:
    """Tuples updated in market_data, counting this session's not-yet-reported activity."""
    return scalar(db, "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'market_data'::regclass")


def test_a_changed_value_is_updated_and_only_that_row_rewritten(market):
    upsert(market, [bar(day=1), bar(day=2)])
    before = dict((r[1], r[2]) for r in versions(market))
    assert upsert(market, [bar(day=1), bar(day=2, price="101.75")]) == 1
    after = dict((r[1], r[2]) for r in versions(market))
    assert after[date(2024, 1, 1)] == before[date(2024, 1, 1)]
    assert after[date(2024, 1, 2)] != before[date(2024, 1, 2)]
    assert scalar(market, "SELECT price FROM market_data WHERE date = '2024-01-02'") == Decimal("101.75")


def test_an_update_moves_updated_at_forward(market):
    upsert(market, [bar(day=1)])
    first = scalar(market, "SELECT updated_at FROM market_data")
    upsert(market, [bar(day=1, price="99")])
    assert scalar(market, "SELECT updated_at FROM market_data") > first


def test_duplicate_keys_within_a_batch_keep_the_last(market):
    assert upsert(market, [bar(day=1, price="1"), bar(day=1, price="2"), bar(day=1, price="3")]) == 1
    assert scalar(market, "SELECT price FROM market_data") == Decimal("3")


def test_duplicate_keys_across_batches_keep_the_last(market):
    upsert(market, [bar(day=1, price="1"), bar(day=2), bar(day=1, price="3")], batch_size=2)
    assert scalar(market, "SELECT price FROM market_data WHERE date = '2024-01-01'") == Decimal("3")


def test_newer_column_stops_an_older_row_replacing_a_newer_one(market):
    upsert(market, [bar(day=1, price="200", as_of=T1)], newer_column="as_of")
    assert upsert(market, [bar(day=1, price="100", as_of=T0)], newer_column="as_of") == 0
    assert scalar(market, "SELECT price FROM market_data") == Decimal("200")
    assert upsert(market, [bar(day=1, price="300", as_of=T1)], newer_column="as_of") == 1
    assert scalar(market, "SELECT price FROM market_data") == Decimal("300")


def test_a_column_left_out_of_the_comparison_alone_does_not_rewrite_the_row(market):
    upsert(market, [bar(day=1)])
    before = versions(market)
    assert upsert(market, [bar(day=1, as_of=T1)], compare_exclude=("as_of",)) == 0
    assert versions(market) == before
    assert scalar(market, "SELECT as_of FROM market_data") == T0


def test_a_column_left_out_of_the_comparison_is_still_written_with_a_change(market):
    upsert(market, [bar(day=1)])
    assert upsert(market, [bar(day=1, price="99", as_of=T1)], compare_exclude=("as_of",)) == 1
    assert rows(market, "SELECT price, as_of FROM market_data") == [(Decimal("99"), T1)]


def test_a_set_expression_decides_a_loaded_columns_new_value_and_its_comparison(market):
    keep_volume = {"volume": sql.SQL("coalesce(EXCLUDED.volume, market_data.volume)")}
    upsert(market, [bar(day=1, volume="1000")])
    before = versions(market)
    assert upsert(market, [bar(day=1, volume=None)], set_expressions=keep_volume) == 0
    assert versions(market) == before
    assert upsert(market, [bar(day=1, price="99", volume=None)], set_expressions=keep_volume) == 1
    assert rows(market, "SELECT price, volume FROM market_data") == [(Decimal("99"), Decimal("1000"))]


def test_a_set_expression_on_a_column_not_loaded_is_applied_only_along_with_a_change(market):
    clear_adj_close = {"adj_close": sql.SQL("CASE WHEN market_data.price IS DISTINCT FROM EXCLUDED.price "
                                            "THEN NULL ELSE market_data.adj_close END")}
    upsert(market, [bar(day=1), bar(day=2)])
    with market.cursor() as cur:
        cur.execute("UPDATE market_data SET adj_close = 98")
    upsert(market, [bar(day=1, price="101"), bar(day=2, volume="5")], set_expressions=clear_adj_close)
    assert rows(market, "SELECT date, adj_close FROM market_data ORDER BY date") == \
        [(date(2024, 1, 1), None), (date(2024, 1, 2), Decimal("98"))]


def quote(price, high=None, low=None, open_=None, hour=15):
    return Quote("AAPL", "STOCK", date(2024, 1, 2), Decimal(price), datetime(2024, 1, 2, hour, tzinfo=timezone.utc),
                 "other", open=open_ and Decimal(open_), high=high and Decimal(high), low=low and Decimal(low))


def ohlc(db) -> list[tuple]:
    return rows(db, "SELECT price, open, high, low FROM market_data")


def test_a_quote_with_part_of_the_days_range_replaces_the_whole_range_instead_of_breaking_high_over_low(market):
    market.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    with market.cursor() as cur:
        upsert_quotes(cur, [quote("102", open_="101", high="105", low="100", hour=14)])
        assert upsert_quotes(cur, [quote("98", high="99")]) == 1
    assert ohlc(market) == [(Decimal("98"), None, Decimal("99"), None)]


def test_a_quote_without_a_range_keeps_the_stored_one_widened_to_its_price(market):
    market.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    with market.cursor() as cur:
        upsert_quotes(cur, [quote("102", open_="101", high="105", low="100", hour=14)])
        upsert_quotes(cur, [quote("98", hour=15)])
        assert ohlc(market) == [(Decimal("98"), Decimal("101"), Decimal("105"), Decimal("98"))]
        upsert_quotes(cur, [quote("107", hour=16)])
        assert ohlc(market) == [(Decimal("107"), Decimal("101"), Decimal("107"), Decimal("98"))]


def test_decimal_digits_are_kept_exactly(market):
    exact = Decimal("123.456789012345678901")
    upsert(market, [bar(price=str(exact), volume="123456789012345.000000001")])
    price, volume = rows(market, "SELECT price, volume FROM market_data")[0]
    assert (price, volume) == (exact, Decimal("123456789012345.000000001"))
    assert str(price) == "123.456789012345678901"


def test_awkward_text_and_nulls_round_trip_through_copy_exactly(market):
    awkward = ["tab\there", "new\nline", "back\\slash", "\\N", "cr\rlf\r\n", "quote'\"", "ünïcødé €", ""]
    batch = [bar(day=i + 1, source=text) for i, text in enumerate(awkward)]
    batch.append(("MSFT", "STOCK", date(2024, 1, 1), Decimal("1"), None, "none", T0))
    upsert(market, batch)
    assert [r[0] for r in rows(market, "SELECT source FROM market_data WHERE symbol = 'AAPL' ORDER BY date")] \
        == awkward
    assert scalar(market, "SELECT volume IS NULL FROM market_data WHERE symbol = 'MSFT'") is True


def test_upsert_joins_the_callers_transaction(market):
    market.autocommit = False
    with market.cursor() as cur:
        bulk_upsert(cur, "market_data", COLUMNS, [bar()], key=KEY)
    market.rollback()
    market.autocommit = True
    assert stored(market) == []


def test_floats_and_non_finite_decimals_are_refused():
    with pytest.raises(TypeError):
        copy_value(1.5)
    with pytest.raises(ValueError):
        copy_value(Decimal("NaN"))
    with pytest.raises(ValueError):
        copy_value(Decimal("Infinity"))


def test_table_without_non_key_columns_inserts_missing_rows_only(db):
    with db.cursor() as cur:
        assert bulk_upsert(cur, "accounts", ("account_id",),
                           [("00000000-0000-0000-0000-000000000001",)], key=("account_id",)) == 1
        assert bulk_upsert(cur, "accounts", ("account_id",),
                           [("00000000-0000-0000-0000-000000000001",)], key=("account_id",)) == 0


def test_copy_text_of_a_batch_is_each_value_as_copy_value_writes_it():
    from uuid import UUID

    batch = [("a\tb\\c\nd", date(2024, 1, 2), T0, datetime(2024, 1, 2, 3, 4, 5), Decimal("1E+3"),
              Decimal("0.000001230"), 7, True, None, UUID(int=5), {"k": [1, "x"]}),
             ("a\tb\\c\nd", date(2024, 1, 2), T1, None, Decimal("-0"), Decimal("12.50"), -1, False, "", UUID(int=6),
              [])]
    assert copy_buffer(batch).getvalue() == "".join("\t".join(copy_value(v) for v in row) + "\n" for row in batch)
    with pytest.raises(ValueError, match="not a number"):
        copy_buffer([(Decimal("NaN"),)])
    with pytest.raises(TypeError, match="floats"):
        copy_buffer([(1.5,)])


LATER = datetime(2024, 1, 10, 21, 0, tzinfo=timezone.utc)


def history_bar(symbol: str, day: int, price: str) -> Bar:
    return Bar(symbol, "STOCK", date(2024, 1, day), Decimal(price), "yahoo", adj_close=Decimal(price))


def upsert_history(cur, bars: list[Bar], new_assets: set) -> tuple[int, set]:
    by_asset: dict = {}
    for bar in bars:
        by_asset.setdefault((bar.symbol, bar.asset_type), []).append(bar)
    return upsert_bars(cur, {key: encode_bars(of, LATER) for key, of in by_asset.items()}, new_assets=new_assets)


@pytest.mark.parametrize("autocommit", [False, True])
def test_new_assets_are_copied_straight_in_and_merged_when_a_row_of_theirs_was_stored_meanwhile(market, autocommit):
    """upsert_bars' fast path for assets with nothing stored: COPY into market_data. A row stored since
    (a live quote of the same day) makes that COPY fail as a whole; the rows are then merged like any
    others, in the same transaction, the stored row keeping its change as a merge does."""
    market.autocommit = autocommit
    with market.cursor() as cur:
        cur.execute("INSERT INTO market_data (symbol, asset_type, date, price, change, source, as_of) "
                    "VALUES ('MSFT', 'STOCK', '2024-01-03', 99, 1.5, 'yahoo', %s)", (T0,))
        written, inserted = upsert_history(cur, [history_bar("AAPL", 2, "10"), history_bar("AAPL", 3, "11"),
                                                 history_bar("MSFT", 2, "100"), history_bar("MSFT", 3, "101")],
                                           new_assets={("AAPL", "STOCK"), ("MSFT", "STOCK")})
    market.commit()
    assert written == 4 and inserted == set()
    assert rows(market, "SELECT symbol, date, price, change FROM market_data ORDER BY symbol, date") == [
        ("AAPL", date(2024, 1, 2), Decimal("10"), None), ("AAPL", date(2024, 1, 3), Decimal("11"), Decimal("1.0000")),
        ("MSFT", date(2024, 1, 2), Decimal("100"), None), ("MSFT", date(2024, 1, 3), Decimal("101"), Decimal("1.5"))]


def test_a_new_assets_rows_are_copied_in_with_their_final_changes(market):
    with market.cursor() as cur:
        written, inserted = upsert_history(cur, [history_bar("AAPL", 2, "10"), history_bar("AAPL", 3, "11.00")],
                                           new_assets={("AAPL", "STOCK")})
    market.commit()
    assert (written, inserted) == (2, {("AAPL", "STOCK")})
    assert rows(market, "SELECT price, change, percent_change FROM market_data ORDER BY date") == [
        (Decimal("10"), None, None), (Decimal("11.00"), Decimal("1.000000"), Decimal("10.000000"))]

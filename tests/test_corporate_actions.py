"""Corporate actions end to end: prices as traded, one adj_close basis, rebasing when an action is learned.

A loopback Yahoo serves split-adjusted prices, adjusted closes and `events` exactly as Yahoo does
(tests/support/yahoo_server.py); the tests read the database and the run's event.
"""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from support.db import rows, scalar
from support.runner import run_etl
from support.yahoo_server import YahooServer

JOB = "fetch_historical_market_data"
SPLIT_DAY = date(2020, 8, 31)
TOLERANCE = Decimal("0.0001")  # 0.01 %


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    monkeypatch.setenv("YAHOO_BASE_URL", fake_api.base_url)
    return YahooServer(fake_api)


def backfill(*symbols: str, start: date, end: date, extra=()) -> int:
    return run_etl(JOB, "--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", end.isoformat(),
                   *extra)


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def weekday_on_or_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def stored(db, symbol: str) -> dict[date, tuple[Decimal, Decimal, Decimal]]:
    """date → (price, adj_close, volume)."""
    return {day: (price, adj, volume) for day, price, adj, volume in
            rows(db, "SELECT date, price, adj_close, volume FROM market_data WHERE symbol = %s ORDER BY date",
                 (symbol,))}


def actions(db, symbol: str) -> list[tuple]:
    return rows(db, "SELECT date, kind, ratio, amount, currency, source FROM corporate_actions WHERE symbol = %s "
                    "ORDER BY date, kind", (symbol,))


def last_event(db) -> dict:
    return scalar(db, "SELECT payload FROM etl_outbox ORDER BY created_at DESC, event_id LIMIT 1")


def close_to(a: Decimal, b: Decimal) -> bool:
    return abs(a / b - 1) <= TOLERANCE


# ---- prices as traded ----

def test_a_backfill_across_a_split_stores_pre_split_days_as_traded_and_the_split(yahoo, db):
    yahoo.closes[("AAPL", date(2020, 1, 2))] = Decimal("300.35")
    yahoo.splits["AAPL"] = [(SPLIT_DAY, 4, 1)]
    assert backfill("AAPL:STOCK", start=date(2020, 1, 1), end=date(2020, 9, 30)) == 0
    served = yahoo.chart_requests("AAPL")[0]
    assert len(yahoo.chart_requests("AAPL")) == 1 and served.query["period1"]
    days = stored(db, "AAPL")
    price, adj, volume = days[date(2020, 1, 2)]
    assert price == Decimal("300.35")            # Yahoo served 75.0875 × 4
    assert volume == 1_000_000 + date(2020, 1, 2).toordinal() % 1000
    assert close_to(adj, Decimal("75.0875"))     # on the newest basis: the split's
    after = date(2020, 9, 1)
    assert days[after][0] == yahoo.raw_close("AAPL", after)
    assert actions(db, "AAPL") == [(SPLIT_DAY, "split", Decimal(4), None, None, "yahoo")]


def test_a_reverse_split_is_undone_the_same_way(yahoo, db):
    yahoo.closes[("ZOOM", date(2023, 3, 1))] = Decimal("2.45")
    yahoo.splits["ZOOM"] = [(date(2023, 6, 1), 1, 10)]
    assert backfill("ZOOM:STOCK", start=date(2023, 2, 1), end=date(2023, 7, 31)) == 0
    days = stored(db, "ZOOM")
    price, adj, volume = days[date(2023, 3, 1)]
    assert price == Decimal("2.45")              # Yahoo served 24.5 (× 10), stored × 0.1
    assert volume == 1_000_000 + date(2023, 3, 1).toordinal() % 1000
    assert close_to(adj, Decimal("24.5"))
    assert days[date(2023, 6, 1)][0] == yahoo.raw_close("ZOOM", date(2023, 6, 1))
    assert actions(db, "ZOOM") == [(date(2023, 6, 1), "split", Decimal("0.1"), None, None, "yahoo")]


def test_a_range_that_ends_before_a_later_split_is_still_stored_as_traded(yahoo, db):
    yahoo.closes[("AAPL", date(2020, 1, 2))] = Decimal("300.35")
    yahoo.splits["AAPL"] = [(SPLIT_DAY, 4, 1)]
    assert backfill("AAPL:STOCK", start=date(2020, 1, 1), end=date(2020, 1, 31)) == 0
    assert len(yahoo.chart_requests("AAPL")) == 1
    assert stored(db, "AAPL")[date(2020, 1, 2)][0] == Decimal("300.35")
    assert max(stored(db, "AAPL")) == date(2020, 1, 31)
    assert [a[:3] for a in actions(db, "AAPL")] == [(SPLIT_DAY, "split", Decimal(4))]


def test_dividend_amounts_are_stored_as_traded(yahoo, db):
    yahoo.splits["AAPL"] = [(SPLIT_DAY, 4, 1)]
    yahoo.dividends["AAPL"] = [(date(2020, 8, 7), Decimal("0.82"))]   # Yahoo serves 0.205
    assert backfill("AAPL:STOCK", start=date(2020, 7, 1), end=date(2020, 9, 30)) == 0
    assert actions(db, "AAPL") == [(date(2020, 8, 7), "dividend", None, Decimal("0.82"), "USD", "yahoo"),
                                   (SPLIT_DAY, "split", Decimal(4), None, None, "yahoo")]
    event = last_event(db)
    assert event["corporate_actions"] == [
        {"symbol": "AAPL", "kind": "dividend", "date": "2020-08-07", "amount": "0.82"},
        {"symbol": "AAPL", "kind": "split", "date": "2020-08-31", "ratio": "4"}]
    assert event["rebased"] == []   # nothing was stored before


# ---- learning an action between two runs ----

def recent_window() -> tuple[date, date, date]:
    """(start of a 40-day backfill, an ex-date inside the default 3-day look-back, today)."""
    today = utc_today()
    ex_date = weekday_on_or_before(today - timedelta(days=1))
    if ex_date < today - timedelta(days=3):
        ex_date = weekday_on_or_before(today)
    return today - timedelta(days=40), ex_date, today


def test_a_split_between_two_runs_rebases_every_earlier_adj_close_and_leaves_prices(yahoo, db):
    start, ex_date, today = recent_window()
    yahoo.splits["AAPL"] = []
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    before = stored(db, "AAPL")
    yahoo.splits["AAPL"] = [(ex_date, 4, 1)]
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    assert len(yahoo.chart_requests("AAPL")) == 1        # the look-back re-check it makes anyway
    after = stored(db, "AAPL")
    for day, (price, adj, volume) in before.items():
        assert after[day][0] == price, day
        if day < ex_date:
            assert close_to(after[day][1], adj / 4), day
            assert close_to(after[day][1], yahoo.served_adjclose("AAPL", day)), day
        else:
            assert after[day][1] == adj, day
    event = last_event(db)
    assert event["corporate_actions"] == [{"symbol": "AAPL", "kind": "split", "date": ex_date.isoformat(),
                                           "ratio": "4"}]
    assert event["rebased"] == ["AAPL"]


def test_a_dividend_between_two_runs_moves_earlier_adj_closes_by_its_factor(yahoo, db):
    start, ex_date, today = recent_window()
    yahoo.dividends["MSFT"] = []
    assert backfill("MSFT:STOCK", start=start, end=today) == 0
    before = stored(db, "MSFT")
    yahoo.dividends["MSFT"] = [(ex_date, Decimal("2.50"))]
    previous_close = before[max(day for day in before if day < ex_date)][0]
    factor = 1 - Decimal("2.50") / previous_close
    assert backfill("MSFT:STOCK", start=start, end=today) == 0
    after = stored(db, "MSFT")
    for day, (price, adj, _) in before.items():
        assert after[day][0] == price, day
        expected = adj * factor if day < ex_date else adj
        assert close_to(after[day][1], expected), day
        assert close_to(after[day][1], yahoo.served_adjclose("MSFT", day)), day
    assert last_event(db)["rebased"] == ["MSFT"]


def test_with_no_new_action_the_look_back_re_check_costs_no_extra_request_and_a_final_range_none(yahoo, db):
    start, _, today = recent_window()
    yahoo.splits["AAPL"] = [(date(2024, 6, 10), 10, 1)]
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    assert yahoo.requested_days("AAPL") == [(today - timedelta(days=3), today)]
    assert last_event(db)["corporate_actions"] == [] and last_event(db)["rebased"] == []
    assert backfill("AAPL:STOCK", start=date(2024, 5, 1), end=date(2024, 6, 28)) == 0
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=date(2024, 5, 1), end=date(2024, 6, 28)) == 0
    assert yahoo.chart_requests() == []


def test_a_split_on_a_day_only_the_quote_jobs_stored_is_learned_by_reaching_back_to_the_last_check(yahoo, db):
    today = utc_today()
    start = today - timedelta(days=40)
    yahoo.splits["AAPL"] = []
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    checked = today - timedelta(days=12)   # as if the last history run had been twelve days ago
    with db.cursor() as cur:
        cur.execute("UPDATE asset SET corporate_actions_checked = %s WHERE symbol = 'AAPL'", (checked,))
    ex_date = weekday_on_or_before(today - timedelta(days=8))
    yahoo.splits["AAPL"] = [(ex_date, 2, 1)]
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    assert yahoo.requested_days("AAPL") == [(checked, today)]
    assert [a[:3] for a in actions(db, "AAPL")] == [(ex_date, "split", Decimal(2))]
    assert scalar(db, "SELECT corporate_actions_checked FROM asset WHERE symbol = 'AAPL'") == today


def test_a_refetched_adjusted_close_that_disagrees_without_a_known_action_is_rebased_and_logged_once(
        yahoo, db, caplog):
    start, _, today = recent_window()
    yahoo.dividends["IBM"] = []
    assert backfill("IBM:STOCK", start=start, end=today) == 0
    before = stored(db, "IBM")
    with db.cursor() as cur:   # a provider correction the stored values do not know of
        cur.execute("UPDATE market_data SET adj_close = adj_close * 1.02 WHERE symbol = 'IBM'")
    assert backfill("IBM:STOCK", start=start, end=today) == 0
    after = stored(db, "IBM")
    assert all(close_to(after[day][1], adj) for day, (_, adj, _) in before.items())
    warnings = [r for r in caplog.records if "differs from the stored one" in r.getMessage()]
    assert len(warnings) == 1 and "IBM:STOCK" in warnings[0].getMessage()
    assert last_event(db)["rebased"] == ["IBM"]


# ---- empty answers ----

def test_an_empty_answer_records_no_day_and_the_next_run_fetches_the_missing_days(yahoo, db, caplog):
    start, end = date(2024, 1, 1), date(2024, 3, 29)
    yahoo.empty_answers["AAPL"] = 1
    assert backfill("AAPL:STOCK", start=start, end=end) == 0
    assert stored(db, "AAPL") == {}
    assert scalar(db, "SELECT count(*) FROM market_data_fetch_ledger, unnest(empty_days)") == 0
    assert any("no bars at all" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=end) == 0
    assert yahoo.requested_days("AAPL")[0][0] == start
    assert sorted(stored(db, "AAPL")) == yahoo.trading_days("AAPL", start, end)
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=end) == 0
    assert yahoo.chart_requests() == []


def test_days_before_the_stated_first_trading_day_are_settled_even_by_an_empty_answer(yahoo, db):
    yahoo.listed["NEWCO"] = date(2024, 3, 1)
    yahoo.empty_answers["NEWCO"] = 1
    assert backfill("NEWCO:STOCK", start=date(2024, 1, 1), end=date(2024, 3, 29)) == 0
    yahoo.api.reset()
    assert backfill("NEWCO:STOCK", start=date(2024, 1, 1), end=date(2024, 3, 29)) == 0
    assert yahoo.requested_days("NEWCO")[0][0] == date(2024, 3, 1)


# ---- existing databases ----

def as_an_older_release_stored_it(db, symbol: str, ex_date: date, ratio: int) -> None:
    """Rewrite the stored rows as the code before corporate actions left them: the days before the
    split at the provider's split-adjusted close, adj_close on an older basis, no actions, never checked."""
    with db.cursor() as cur:
        cur.execute("""
            UPDATE market_data SET price = price / %(r)s, open = open / %(r)s, high = high / %(r)s,
                   low = low / %(r)s, volume = volume * %(r)s
             WHERE symbol = %(s)s AND date < %(d)s""", {"r": ratio, "s": symbol, "d": ex_date})
        cur.execute("UPDATE market_data SET adj_close = adj_close * 1.03 WHERE symbol = %s", (symbol,))
        cur.execute("DELETE FROM corporate_actions WHERE symbol = %s", (symbol,))
        cur.execute("UPDATE asset SET corporate_actions_checked = NULL WHERE symbol = %s", (symbol,))


def test_the_first_run_after_an_upgrade_restores_prices_as_traded_and_one_basis_in_its_usual_request(yahoo, db):
    start, ex_date, today = recent_window()
    yahoo.splits["AAPL"] = [(ex_date, 4, 1)]
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    truth = stored(db, "AAPL")
    as_an_older_release_stored_it(db, "AAPL", ex_date, 4)
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    assert yahoo.requested_days("AAPL") == [(min(truth), today)]
    assert stored(db, "AAPL") == truth
    assert [a[:3] for a in actions(db, "AAPL")] == [(ex_date, "split", Decimal(4))]
    assert last_event(db)["rebased"] == ["AAPL"]
    yahoo.api.reset()
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    assert yahoo.requested_days("AAPL") == [(today - timedelta(days=3), today)]


def test_history_rebase_refetches_each_stocks_stored_span_in_one_request_and_leaves_crypto(yahoo, db, capsys):
    start, ex_date, today = recent_window()
    yahoo.splits["AAPL"] = [(ex_date, 4, 1)]
    assert backfill("AAPL:STOCK", "BTC:CRYPTO", start=start, end=today) == 0
    truth = stored(db, "AAPL")
    as_an_older_release_stored_it(db, "AAPL", ex_date, 4)
    with db.cursor() as cur:
        cur.execute("UPDATE asset SET corporate_actions_checked = %s WHERE symbol = 'AAPL'", (today,))
    yahoo.api.reset()
    assert run_etl("history", "rebase", "--symbols", "AAPL:STOCK,BTC:CRYPTO") == 0
    assert yahoo.requested_days("AAPL") == [(min(truth), today)]
    assert yahoo.chart_requests("BTC-USD") == []
    assert stored(db, "AAPL") == truth
    assert last_event(db)["params"]["rebase"] is True and last_event(db)["rebased"] == ["AAPL"]
    assert "etl history rebase: 2 asset(s) done, 0 failed" in capsys.readouterr().out


def test_history_rebase_has_help(capsys):
    with pytest.raises(SystemExit) as done:
        run_etl("history", "rebase", "--help")
    assert done.value.code == 0
    assert "--symbols" in capsys.readouterr().out


# ---- providers without an adjusted close ----

def as_traded_bars(symbol: str, asset_type: str, closes: dict[date, str], source: str) -> list:
    from etl.models import Bar

    return [Bar(symbol, asset_type, day, Decimal(price), source, open=Decimal(price), high=Decimal(price),
                low=Decimal(price), volume=Decimal(100), currency="USD") for day, price in closes.items()]


def test_where_a_provider_gives_no_adjusted_close_it_is_computed_from_price_and_the_actions(db):
    from etl.models import Asset, CorporateAction
    from etl.pipeline.adjust import Answered, load_asset

    ibm = Asset("IBM", "STOCK")
    with db.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type) VALUES ('IBM', 'STOCK')")
        closes = {date(2024, 2, 5): "180.00", date(2024, 2, 6): "200.00", date(2024, 2, 7): "190.00",
                  date(2024, 2, 8): "185.00"}
        dividend = CorporateAction("IBM", "STOCK", date(2024, 2, 8), "dividend", "alphavantage",
                                   amount=Decimal("1.90"), currency="USD")
        split = CorporateAction("IBM", "STOCK", date(2024, 2, 6), "split", "alphavantage", ratio=Decimal(2))
        loaded = load_asset(cur, ibm, [Answered("alphavantage", as_traded_bars("IBM", "STOCK", closes, "alphavantage"),
                                                [dividend, split], checked_actions=True)],
                            fetched_at=datetime.now(timezone.utc), today=date(2024, 2, 8))
    adjusted = {day: adj for day, (_, adj, _) in stored(db, "IBM").items()}
    factor = 1 - Decimal("1.90") / Decimal("190.00")                     # 0.99, off the close before the ex-date
    assert adjusted[date(2024, 2, 8)] == Decimal("185.00")
    assert adjusted[date(2024, 2, 7)] == Decimal("190.00") * factor
    assert adjusted[date(2024, 2, 6)] == Decimal("200.00") * factor
    assert adjusted[date(2024, 2, 5)] == Decimal("180.00") * factor / 2   # and halved by the split after it
    assert [a.kind for a in loaded.new_actions] == ["split", "dividend"] and not loaded.rebased
    assert scalar(db, "SELECT corporate_actions_checked FROM asset WHERE symbol = 'IBM'") == date(2024, 2, 8)


def test_crypto_from_a_provider_without_an_adjusted_close_gets_its_price_as_adj_close(db):
    from etl.models import Asset
    from etl.pipeline.adjust import Answered, load_asset

    with db.cursor() as cur:
        cur.execute("INSERT INTO asset (symbol, asset_type) VALUES ('BTC', 'CRYPTO')")
        load_asset(cur, Asset("BTC", "CRYPTO"),
                   [Answered("coingecko", as_traded_bars("BTC", "CRYPTO", {date(2024, 2, 5): "42000.5"}, "coingecko"))],
                   fetched_at=datetime.now(timezone.utc), today=date(2024, 2, 5))
    assert stored(db, "BTC")[date(2024, 2, 5)][:2] == (Decimal("42000.5"), Decimal("42000.5"))
    assert scalar(db, "SELECT corporate_actions_checked FROM asset WHERE symbol = 'BTC'") is None


def test_history_rebase_dry_run_fetches_but_writes_nothing(yahoo, db):
    start, ex_date, today = recent_window()
    yahoo.splits["AAPL"] = [(ex_date, 4, 1)]
    assert backfill("AAPL:STOCK", start=start, end=today) == 0
    as_an_older_release_stored_it(db, "AAPL", ex_date, 4)
    before, events = stored(db, "AAPL"), scalar(db, "SELECT count(*) FROM etl_outbox")
    yahoo.api.reset()
    assert run_etl("history", "rebase", "--symbols", "AAPL:STOCK", "--dry-run") == 0
    assert len(yahoo.chart_requests("AAPL")) == 1
    assert stored(db, "AAPL") == before and actions(db, "AAPL") == []
    assert scalar(db, "SELECT count(*) FROM etl_outbox") == events

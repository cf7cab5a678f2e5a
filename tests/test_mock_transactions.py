"""generate_mock_transactions: realistic, self-consistent, reproducible, all-or-nothing."""

from __future__ import annotations

import json
import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import psycopg2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl.mock.generator import Plan, _AccountSimulation, fixed, generate_rows, month_starts, new_account_ids
from etl.mock.prices import PriceBook, carried_forward
from etl.mock.synthetic import synthetic_price
from etl.mock.trading_days import rows_in_month
from etl.models import Asset
from etl.utils.db_utils import migrate
from support.db import row_count, rows, scalar
from support.events import read_events
from support.runner import PYTHON, REPO, run_etl, run_etl_process

JOB = "generate_mock_transactions"

# Holdings equal the sums (and last dates) of the live transactions.
HOLDINGS_DIFFER_FROM_SUMS = """
    WITH sums AS (SELECT account_id, symbol, asset_type, sum(credit - debit) AS total, max(date) AS last
                    FROM transactions WHERE deleted_at IS NULL GROUP BY 1, 2, 3)
    SELECT * FROM sums FULL JOIN holdings h USING (account_id, symbol, asset_type)
     WHERE sums.total IS DISTINCT FROM h.total_balance OR sums.last IS DISTINCT FROM h.date"""

# Each monthly row equals the running sum of live transactions up to the month's end.
MONTHLY_DIFFERS_FROM_RUNNING_SUM = """
    SELECT * FROM holdings_monthly hm
     WHERE hm.total_balance <> (SELECT coalesce(sum(t.credit - t.debit), 0) FROM transactions t
                                 WHERE t.deleted_at IS NULL AND t.account_id = hm.account_id
                                   AND t.symbol = hm.symbol AND t.asset_type = hm.asset_type
                                   AND t.date < hm.month + interval '1 month')"""

# Months run without a gap from the first transaction's month through the current month.
MONTHS_NOT_CONTIGUOUS = """
    WITH firsts AS (SELECT account_id, symbol, asset_type, date_trunc('month', min(date))::date AS first
                      FROM transactions WHERE deleted_at IS NULL GROUP BY 1, 2, 3),
         months AS (SELECT account_id, symbol, asset_type, min(month) AS lo, max(month) AS hi, count(*) AS n
                      FROM holdings_monthly GROUP BY 1, 2, 3)
    SELECT * FROM firsts f FULL JOIN months m USING (account_id, symbol, asset_type)
     WHERE f.first IS DISTINCT FROM m.lo
        OR m.hi IS DISTINCT FROM date_trunc('month', current_date)::date
        OR m.n <> extract(year FROM age(m.hi, m.lo)) * 12 + extract(month FROM age(m.hi, m.lo)) + 1"""

# No balance is negative after any transaction, in date order.
NEGATIVE_BALANCES = """
    SELECT * FROM (SELECT account_id, symbol, date,
                          sum(credit - debit) OVER (PARTITION BY account_id, symbol, asset_type
                                                    ORDER BY date, transaction_id) AS balance
                     FROM transactions WHERE deleted_at IS NULL) running
     WHERE balance < 0"""

# Every trade's asset leg is followed by its cash leg, same account and day, at the stored price
# of the nearest earlier trading day, rounded to the cent.
TRADES_WITHOUT_MATCHING_CASH_LEG = """
    SELECT a.transaction_id FROM transactions a
      LEFT JOIN transactions c ON c.transaction_id = a.transaction_id + 1
      LEFT JOIN LATERAL (SELECT price FROM market_data m
                          WHERE m.symbol = a.symbol AND m.asset_type = a.asset_type AND m.date <= a.date
                          ORDER BY m.date DESC LIMIT 1) p ON true
     WHERE a.asset_type <> 'CASH' AND a.kind <> 'split'
       AND (c.asset_type IS DISTINCT FROM 'CASH' OR c.account_id <> a.account_id OR c.date <> a.date
            OR c.debit IS DISTINCT FROM round(a.credit * p.price, 2)
            OR c.credit IS DISTINCT FROM round(a.debit * p.price, 2))"""

# Quantities keep their documented decimals: cash 2, shares 4, coins 8.
WRONG_DECIMALS = """
    SELECT * FROM transactions
     WHERE scale(credit) <> CASE asset_type WHEN 'CASH' THEN 2 WHEN 'CRYPTO' THEN 8 ELSE 4 END
        OR scale(debit) <> scale(credit)
        OR unit <> CASE asset_type WHEN 'CASH' THEN symbol WHEN 'CRYPTO' THEN 'COINS' ELSE 'SHARES' END"""

# Every row says what it is; both legs of a trade say the same.
UNDESCRIBED_ROWS = """
    SELECT * FROM transactions t
     WHERE t.kind IS NULL OR t.description IS NULL OR t.description = ''
        OR (t.asset_type <> 'CASH' AND t.kind IN ('buy', 'sell')
            AND (t.kind, t.description) IS DISTINCT FROM
                (SELECT ROW(c.kind, c.description) FROM transactions c WHERE c.transaction_id = t.transaction_id + 1))"""

# Stocks and ETFs trade only on days with a stored bar (the fixture stores every weekday); nothing after today.
OFF_CALENDAR_ROWS = """
    SELECT * FROM transactions t
     WHERE t.date > current_date
        OR (t.asset_type IN ('STOCK', 'ETF') AND NOT EXISTS
               (SELECT 1 FROM market_data m WHERE (m.symbol, m.asset_type, m.date) = (t.symbol, t.asset_type, t.date)))"""

INVARIANTS = {
    "holdings equal the sums of live transactions": HOLDINGS_DIFFER_FROM_SUMS,
    "monthly rows equal the running sums": MONTHLY_DIFFERS_FROM_RUNNING_SUM,
    "months are contiguous through the current month": MONTHS_NOT_CONTIGUOUS,
    "no negative balance": NEGATIVE_BALANCES,
    "every trade has its cash leg at the stored price": TRADES_WITHOUT_MATCHING_CASH_LEG,
    "decimals and units as documented": WRONG_DECIMALS,
    "every row has a kind and a description": UNDESCRIBED_ROWS,
    "stocks trade on market days, nothing after today": OFF_CALENDAR_ROWS,
}


def seed_market(conn) -> None:
    """AAPL, VOO (weekdays only) and BTC (every day) with prices from 18 months back to today."""
    with conn.cursor() as cur:
        cur.execute("""
            INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK'), ('VOO', 'ETF'), ('BTC', 'CRYPTO');
            INSERT INTO market_data (symbol, asset_type, date, price, source, as_of)
            SELECT a.symbol, a.asset_type, d::date,
                   round((a.base * (1 + 0.2 * sin(extract(epoch FROM d) / 864000.0)))::numeric, a.digits),
                   'test', now()
              FROM (VALUES ('AAPL', 'STOCK', 180.0, 6), ('VOO', 'ETF', 450.0, 4), ('BTC', 'CRYPTO', 60000.0, 2))
                   AS a(symbol, asset_type, base, digits)
             CROSS JOIN generate_series(current_date - interval '18 months', current_date, interval '1 day') AS d
             WHERE a.asset_type = 'CRYPTO' OR extract(isodow FROM d) < 6""")
    if not conn.autocommit:
        conn.commit()


def violations(db) -> dict[str, list[tuple]]:
    """The rows breaking each invariant; empty lists when the database is consistent."""
    found = {name: rows(db, query) for name, query in INVARIANTS.items()}
    return {name: broken[:3] for name, broken in found.items() if broken}


def exit_code(*argv) -> int:
    try:
        return run_etl(*argv)
    except SystemExit as exc:  # argparse rejects bad arguments this way
        return exc.code


def generate(*options) -> int:
    return exit_code(JOB, *options)


def snapshot(conn, schema: str) -> dict[str, list[tuple]]:
    """Every generated row of `schema`, without the created_at / updated_at timestamps."""
    queries = {
        "accounts": "SELECT account_id FROM {s}.accounts ORDER BY 1",
        "transactions": "SELECT transaction_id, account_id, date, symbol, asset_type, credit, debit, unit, "
                        "deleted_at FROM {s}.transactions ORDER BY transaction_id",
        "holdings": "SELECT account_id, symbol, asset_type, total_balance, unit, date FROM {s}.holdings "
                    "ORDER BY 1, 2, 3",
        "holdings_monthly": "SELECT account_id, symbol, asset_type, month, total_balance, unit "
                            "FROM {s}.holdings_monthly ORDER BY 1, 2, 3, 4",
    }
    return {table: rows(conn, query.format(s=schema)) for table, query in queries.items()}


def outbox_events(db) -> list[dict]:
    return [row[0] for row in rows(db, "SELECT payload FROM etl_outbox WHERE topic LIKE %s ORDER BY created_at",
                                   ("%MOCK_TRANSACTIONS_COMPLETE",))]


@pytest.fixture
def market(db):
    seed_market(db)
    return db


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), accounts=st.integers(1, 3), months=st.integers(1, 4),
       per_month=st.integers(0, 14), mode=st.sampled_from(["", "--cash-only", "--stocks-only"]))
def test_invariants_hold_for_any_seed(market, seed, accounts, months, per_month, mode):
    market.cursor().execute("TRUNCATE accounts CASCADE")   # examples share the database; a seed may repeat
    options = ["--accounts", accounts, "--months", months, "--per-month", per_month, "--seed", seed]
    assert generate(*options, *([mode] if mode else [])) == 0
    assert violations(market) == {}


def test_a_run_trades_every_asset_and_both_directions(market):
    assert generate("--accounts", "3", "--months", "6", "--per-month", "30", "--seed", "11") == 0
    assert violations(market) == {}
    traded = {row[0] for row in rows(market, "SELECT DISTINCT symbol FROM transactions")}
    assert traded == {"USD", "AAPL", "VOO", "BTC"}
    kinds = rows(market, "SELECT count(*) FILTER (WHERE asset_type <> 'CASH' AND credit > 0), "
                         "count(*) FILTER (WHERE asset_type <> 'CASH' AND debit > 0), "
                         "count(*) FILTER (WHERE asset_type = 'CASH' AND debit > 0) FROM transactions")[0]
    assert all(count > 0 for count in kinds), "buys, sells and cash outflows all happen"


def today(db) -> date:
    return scalar(db, "SELECT current_date")


def this_months_rows(db, per_month: int) -> int:
    """The current month's share of per_month: round(K × days elapsed ÷ days in the month)."""
    return rows_in_month(per_month, today(db).replace(day=1), today(db))


def test_each_account_gets_its_opening_deposit_and_per_month_rows(market):
    assert generate("--accounts", "2", "--months", "3", "--per-month", "9", "--seed", "3",
                    "--start-balance", "250.00") == 0
    assert row_count(market, "accounts") == 2
    assert row_count(market, "transactions") == 2 * (1 + 2 * 9 + this_months_rows(market, 9))
    first_day = scalar(market, "SELECT (date_trunc('month', current_date) - interval '2 months')::date")
    openings = rows(market, "SELECT credit FROM transactions WHERE date = %s AND transaction_id IN "
                            "(SELECT min(transaction_id) FROM transactions GROUP BY account_id)", (first_day,))
    assert [row[0] for row in openings] == [250, 250]


def test_the_same_seed_on_two_empty_databases_gives_identical_rows(market, database_url, schema, monkeypatch):
    options = ("--accounts", "3", "--months", "4", "--per-month", "12", "--seed", "2024")
    assert generate(*options) == 0
    other = f"{schema}_twin"
    twin = psycopg2.connect(database_url, options=f"-c search_path={other}")
    migrate(twin, other)
    seed_market(twin)
    twin.close()
    monkeypatch.setenv("DB_SCHEMA", other)
    assert generate(*options) == 0
    first, second = snapshot(market, schema), snapshot(market, other)
    assert first["transactions"] and first == second


def test_a_seed_repeated_on_the_same_database_is_refused_with_exit_2_and_no_run_row(market, capsys):
    options = ("--accounts", "2", "--months", "2", "--per-month", "4", "--seed", "1")
    assert generate(*options) == 0
    before = row_count(market, "transactions")
    capsys.readouterr()
    assert generate(*options) == 2
    error = capsys.readouterr().err
    assert "--seed 1" in error and "already exist" in error and "--account-id" in error
    assert (row_count(market, "accounts"), row_count(market, "transactions")) == (2, before)
    assert rows(market, "SELECT status FROM etl_job_runs") == [("success",)], "the refusal is no run"
    assert len(outbox_events(market)) == 1
    assert violations(market) == {}


def test_a_different_seed_gives_different_rows(market, schema):
    assert generate("--accounts", "1", "--months", "2", "--per-month", "5", "--seed", "1") == 0
    first = snapshot(market, schema)["transactions"]
    market.cursor().execute("TRUNCATE accounts CASCADE")
    assert generate("--accounts", "1", "--months", "2", "--per-month", "5", "--seed", "2") == 0
    assert [r[1:] for r in snapshot(market, schema)["transactions"]] != [r[1:] for r in first]


def test_existing_account_ids_get_more_history_and_stay_consistent(market):
    account = str(uuid.uuid4())
    market.cursor().execute("INSERT INTO accounts (account_id) VALUES (%s)", (account,))
    for seed in ("5", "6"):
        assert generate("--account-id", account, "--months", "3", "--per-month", "10", "--seed", seed) == 0
    assert row_count(market, "accounts") == 1
    assert row_count(market, "transactions", "account_id = %s", (account,)) == 2 * (1 + 2 * 10 + this_months_rows(market, 10))
    assert violations(market) == {}


def test_an_asset_without_prices_trades_at_its_logged_synthetic_price_of_the_day(db, caplog):
    db.cursor().execute("INSERT INTO asset (symbol, asset_type) VALUES ('NOPX', 'STOCK')")
    assert generate("--accounts", "2", "--months", "3", "--per-month", "20", "--seed", "9") == 0
    assert "NOPX:STOCK" in caplog.text and "synthetic prices" in caplog.text
    trades = rows(db, """
        SELECT a.date, a.credit + a.debit, c.credit + c.debit FROM transactions a
          JOIN transactions c ON c.transaction_id = a.transaction_id + 1
         WHERE a.symbol = 'NOPX' AND a.kind IN ('buy', 'sell')""")
    assert trades
    for day, quantity, cash in trades:
        assert day.isoweekday() < 6, "a stock without stored bars trades on weekdays"
        assert cash == (quantity * synthetic_price("NOPX", "STOCK", day)).quantize(Decimal("0.01"))
    assert len({synthetic_price("NOPX", "STOCK", day) for day, _, _ in trades}) > 1, "the price moves"
    assert outbox_events(db)[0]["synthetic_prices"] == ["NOPX:STOCK"]
    assert rows(db, NEGATIVE_BALANCES) == []


def price_in_currencies(conn) -> None:
    """The market's prices in USD, plus SAP priced in EUR (the asset table says EUR too)."""
    with conn.cursor() as cur:
        cur.execute("""
            UPDATE market_data SET currency = 'USD';
            INSERT INTO asset (symbol, asset_type, currency) VALUES ('SAP', 'STOCK', 'EUR');
            INSERT INTO market_data (symbol, asset_type, date, price, currency, source, as_of)
            SELECT 'SAP', 'STOCK', d::date, 180.25, 'EUR', 'test', now()
              FROM generate_series(current_date - interval '6 months', current_date, interval '1 day') AS d""")


def test_only_assets_priced_in_the_cash_currency_are_traded_and_the_rest_logged_once(market, caplog):
    price_in_currencies(market)
    assert generate("--accounts", "2", "--months", "3", "--per-month", "20", "--seed", "5", "--currency", "EUR") == 0
    traded = {row[0] for row in rows(market, "SELECT DISTINCT symbol FROM transactions")}
    assert traded == {"EUR", "SAP"}
    skipped = [r.getMessage() for r in caplog.records if "not trading" in r.getMessage()]
    assert len(skipped) == 1
    assert all(word in skipped[0] for word in ("AAPL:STOCK", "VOO:ETF", "BTC:CRYPTO", "priced in USD", "EUR"))
    assert violations(market) == {}


def test_a_named_asset_priced_in_another_currency_exits_2_naming_its_currency(market, capsys):
    price_in_currencies(market)
    assert generate("--symbols", "SAP:STOCK,AAPL:STOCK", "--currency", "EUR", "--seed", "1") == 2
    error = capsys.readouterr().err
    assert "AAPL:STOCK is priced in USD" in error and "--currency USD" in error
    assert row_count(market, "transactions") == 0


def test_cash_only_writes_only_cash_and_stocks_only_makes_no_deposits_after_the_opening(market):
    assert generate("--accounts", "1", "--months", "2", "--per-month", "8", "--seed", "4", "--cash-only") == 0
    assert row_count(market, "transactions", "asset_type <> 'CASH'") == 0
    market.cursor().execute("TRUNCATE accounts CASCADE")
    assert generate("--accounts", "1", "--months", "3", "--per-month", "8", "--seed", "4", "--stocks-only") == 0
    cash_rows_without_trade = rows(market, """
        SELECT c.transaction_id FROM transactions c
          LEFT JOIN transactions a ON a.transaction_id = c.transaction_id - 1 AND a.asset_type <> 'CASH'
         WHERE c.asset_type = 'CASH' AND a.transaction_id IS NULL""")
    assert len(cash_rows_without_trade) == 1, "only the opening deposit stands alone"
    assert violations(market) == {}


def test_the_run_is_recorded_and_announces_accounts_count_and_span(market):
    assert generate("--accounts", "2", "--months", "2", "--per-month", "4", "--seed", "8") == 0
    assert rows(market, "SELECT status, rows_upserted FROM etl_job_runs WHERE job = %s", (JOB,)) == [
        ("success", row_count(market, "transactions"))]
    [event] = outbox_events(market)
    accounts = sorted(str(row[0]) for row in rows(market, "SELECT account_id FROM accounts"))
    assert sorted(event["accounts"]) == accounts
    assert event["transactions"] == row_count(market, "transactions")
    assert (event["first_date"], event["last_date"]) == tuple(
        d.isoformat() for d in rows(market, "SELECT min(date), current_date FROM transactions")[0])
    assert event["status"] == "success" and event["job"] == JOB


def test_the_event_is_published_to_kafka(market, with_kafka, schema):
    assert generate("--accounts", "1", "--months", "1", "--per-month", "3", "--seed", "12") == 0
    [event] = read_events(with_kafka, f"{schema}.MOCK_TRANSACTIONS_COMPLETE", expect=1)
    assert event["transactions"] == 1 + this_months_rows(market, 3) and event["params"]["seed"] == 12


def test_a_failure_after_the_inserts_leaves_nothing_behind(market):
    market.cursor().execute("""
        CREATE FUNCTION refuse_monthly() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected failure in holdings_monthly'; END $$;
        CREATE TRIGGER refuse_monthly BEFORE INSERT ON holdings_monthly
            FOR EACH ROW EXECUTE FUNCTION refuse_monthly();""")
    assert generate("--accounts", "2", "--months", "2", "--per-month", "5", "--seed", "1") == 1
    for table in ("accounts", "transactions", "holdings", "holdings_monthly", "etl_outbox"):
        assert row_count(market, table) == 0, table
    assert row_count(market, "asset", "asset_type = 'CASH'") == 0
    assert rows(market, "SELECT status FROM etl_job_runs") == [("failed",)]


def test_a_dry_run_writes_nothing(market, capsys):
    assert generate("--accounts", "2", "--months", "2", "--per-month", "5", "--seed", "1", "--dry-run") == 0
    assert f"would generate {2 * (1 + 5 + this_months_rows(market, 5))} transactions" in capsys.readouterr().out
    for table in ("accounts", "transactions", "holdings", "etl_job_runs", "etl_outbox"):
        assert row_count(market, table) == 0, table


@pytest.mark.parametrize("options, message", [
    (["--months", "0"], "argument --months: '0' is not a whole number from 1 to 1,200"),
    (["--per-month", "-1"], "argument --per-month: '-1' is not a whole number from 0 to 1,000"),
    (["--account-id", "12345"], "argument --account-id: '12345' is not a UUID"),
    (["--symbols", "NOPE:STOCK"], "unknown symbol NOPE:STOCK"),
    (["--symbols", "EUR/USD:FOREX"], "EUR/USD:FOREX cannot be traded"),
    (["--start-balance", "10.001"], "at most 2 decimals"),
    (["--cash-only", "--stocks-only"], "not allowed with argument"),
])
def test_bad_arguments_exit_2_with_a_clear_line(db, capsys, options, message):
    assert generate(*options) == 2
    assert message in capsys.readouterr().err
    assert row_count(db, "transactions") == 0


def test_the_job_runs_by_path_from_any_directory_with_help(etl_env, tmp_path):
    result = run_etl_process([PYTHON, str(REPO / "etl" / "jobs" / "generate_mock_transactions.py"), "--help"],
                             etl_env, cwd=tmp_path)
    assert result.returncode == 0
    assert "--per-month" in result.stdout and "MOCK_TRANSACTIONS_COMPLETE" in result.stdout


def test_the_job_runs_by_path_and_as_etl_command(db, etl_env, tmp_path):
    result = run_etl_process([PYTHON, str(REPO / "etl" / "jobs" / "generate_mock_transactions.py"),
                              "--accounts", "1", "--months", "1", "--per-month", "2", "--seed", "1"],
                             etl_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_etl_process([PYTHON, "-m", "etl", JOB, "--accounts", "1", "--months", "1", "--per-month", "2",
                              "--seed", "2"], etl_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"generated {1 + this_months_rows(db, 2)} transactions for 1 account(s)" in result.stdout
    assert row_count(db, "accounts") == 2


def test_event_params_are_plain_json(market):
    assert generate("--accounts", "1", "--months", "1", "--per-month", "2", "--seed", "5") == 0
    [event] = outbox_events(market)
    assert json.loads(json.dumps(event["params"]))["per_month"] == 2


# --- the pure pieces ---------------------------------------------------------------------

def test_fixed_writes_integer_steps_as_decimal_text():
    assert [fixed(12345, 2), fixed(5, 2), fixed(1, 8), fixed(7, 0)] == ["123.45", "0.05", "0.00000001", "7"]


def test_month_starts_cover_the_partial_first_and_last_months():
    assert month_starts(date(2024, 11, 15), date(2025, 2, 3)) == [
        date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]


def test_prices_carry_forward_from_the_nearest_earlier_trading_day():
    friday, monday = date(2024, 3, 1), date(2024, 3, 4)
    book = carried_forward({friday: Decimal("10.5"), monday: Decimal("11")}, date(2024, 2, 29), 6)
    assert book == [None, Decimal("10.5"), Decimal("10.5"), Decimal("10.5"), Decimal("11"), Decimal("11")]


def test_the_generator_is_a_function_of_its_seed():
    first_day, last_day = date(2024, 1, 1), date(2024, 6, 15)
    assets = (Asset("AAPL", "STOCK"), Asset("BTC", "CRYPTO"))
    prices = PriceBook(first_day, {a: [Decimal("101.37")] * 167 for a in assets})

    def generated(seed: int) -> list[tuple]:
        rng = random.Random(seed)
        plan = Plan(tuple(new_account_ids(rng, 2)), first_day, last_day, 10, "USD", 100_000, assets)
        return list(generate_rows(rng, plan, prices))

    assert generated(3) == generated(3) != generated(4)
    assert len(generated(3)) == 2 * (1 + 5 * 10 + 5), "June 15th: half of June's rows"


def a_price_book(first_day: date, last_day: date, assets: tuple[Asset, ...]) -> PriceBook:
    """Every day priced, swinging ±40 % over a few weeks, so trades of every size happen."""
    days = (last_day - first_day).days + 1
    swings = [Decimal(100 + (day * 37) % 80 - 40) / 100 for day in range(days)]
    bases = {"STOCK": Decimal("180.123456"), "ETF": Decimal("450.1234"), "CRYPTO": Decimal("60000.12")}
    return PriceBook(first_day, {a: [(bases[a.asset_type] * s).quantize(Decimal("0.0001")) for s in swings]
                                 for a in assets}, frozenset())


def first_negative_balance(generated: list[tuple]) -> tuple | None:
    """The first row after which its account's balance of that symbol is below zero, in generation order."""
    balances: dict[tuple[str, str, str], Decimal] = {}
    for row in generated:
        account, _, symbol, asset_type, credit, debit, *_ = row
        key = (account, symbol, asset_type)
        balances[key] = balances.get(key, Decimal(0)) + Decimal(credit) - Decimal(debit)
        if balances[key] < 0:
            return row
    return None


def test_a_withdrawal_is_skipped_when_less_than_a_dollar_is_left():
    plan = Plan((uuid.uuid4(),), date(2024, 1, 1), date(2024, 1, 31), 5, "USD", 0, (), mode="cash_only")
    account = _AccountSimulation(random.Random(1), plan, PriceBook(plan.first_day, {}, frozenset()), (), [], "a")
    for cash in (0, 1, 99):
        account.cash = cash
        assert account._withdrawal(date(2024, 1, 10)) is None, f"withdrawal from {cash} cents"
        assert account.cash == cash
    account.cash = 100
    [row] = account._withdrawal(date(2024, 1, 10))
    assert (row[4], row[5], account.cash) == ("0.00", "1.00", 0)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), accounts=st.integers(1, 3), months=st.integers(1, 24),
       per_month=st.integers(0, 60), start_balance=st.integers(0, 200_000),
       mode=st.sampled_from(["mixed", "cash_only", "stocks_only"]))
@example(seed=1, accounts=3, months=24, per_month=60, start_balance=0, mode="cash_only")
@example(seed=1, accounts=3, months=24, per_month=60, start_balance=100_000, mode="stocks_only")
def test_no_balance_ever_goes_negative_for_any_seed_volume_or_mode(seed, accounts, months, per_month,
                                                                    start_balance, mode):
    last_day = date(2024, 12, 31)
    first_day = month_starts(last_day - timedelta(days=31 * (months - 1)), last_day)[0]
    assets = (Asset("AAPL", "STOCK"), Asset("VOO", "ETF"), Asset("BTC", "CRYPTO"))
    rng = random.Random(seed)
    plan = Plan(tuple(new_account_ids(rng, accounts)), first_day, last_day, per_month, "USD", start_balance,
                assets, mode=mode)
    generated = list(generate_rows(rng, plan, a_price_book(first_day, last_day, assets)))
    assert first_negative_balance(generated) is None

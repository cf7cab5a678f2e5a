"""Fill the database with realistic, self-consistent mock accounts and transactions.

Each account (stored with --currency as its currency) opens with a deposit of
--start-balance on the first day of the history, then gets --per-month
transactions every month up to today (this month its share for the days
elapsed): a salary on the month's first business day, other deposits,
withdrawals, and buys and sells of the chosen assets at the day's price in
market_data (the nearest earlier trading day). Stocks and ETFs trade only on
days their market traded (a stored bar; weekdays where none is stored),
crypto any day. An asset with no price at all trades at its synthetic price, a
random walk per asset and day that every run shares, and the run says so.
Stored dividends and splits (corporate_actions) pay the holders cash and
extra shares. A buy or sell is two rows, the asset leg and the cash leg; every
row has a kind and a description ("Buy 3 AAPL @ 187.44"). No balance, cash or
asset, is ever negative on any date. holdings and holdings_monthly are updated
in the same database transaction, which also records the run and its
MOCK_TRANSACTIONS_COMPLETE event: a failure leaves nothing behind. The same
--seed on the same database contents gives the same rows; new account ids come
from the seed too, so a seed whose new accounts already exist is refused
(exit 2, before any run is recorded): use another --seed, or --account-id to
add history to existing accounts.

Only assets priced in the cash currency (--currency) are traded, so a cash leg
is always in the asset's own currency: by default the others are left out
with one log line; one named in --symbols stops the run (exit 2). An asset's
currency is that of its newest price in market_data, else the asset table's;
an asset with neither is taken to be priced in --currency.

Units: the currency code for cash (2 decimals), SHARES for stocks and ETFs
(4 decimals), COINS for crypto (8 decimals).
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import UUID

if __package__ in (None, ""):  # run by path: python etl/jobs/generate_mock_transactions.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etl import assets as asset_sql  # noqa: E402
from etl.cli import asset_list, job_main, job_parser, whole_number  # noqa: E402
from etl.config import Settings  # noqa: E402
from etl.errors import LockHeldError, UsageError  # noqa: E402
from etl.holdings import apply_transactions  # noqa: E402
from etl.holdings_cli import uuid_list  # noqa: E402
from etl.mock.accounts import refuse_taken_ids, refuse_used_seed, store_accounts  # noqa: E402
from etl.mock.actions import load_corporate_actions  # noqa: E402
from etl.mock.generator import Plan, generate_rows, new_account_ids  # noqa: E402
from etl.mock.load import copy_transactions  # noqa: E402
from etl.mock.prices import load_price_book, price_currencies  # noqa: E402
from etl.models import Asset  # noqa: E402
from etl.registry import JOBS  # noqa: E402
from etl.runs import JobRun, RunResult, job_run  # noqa: E402

log = logging.getLogger(__name__)

JOB = JOBS["generate_mock_transactions"]
TRADABLE_TYPES = ("STOCK", "ETF", "CRYPTO")
# Bounds of the arguments: past them a run is a typo, not a plan. Every account is named in the run's
# event, and 10,000 ids keep it well under Kafka's default 1 MB message limit.
MAX_ACCOUNTS = 10_000
MAX_MONTHS = 1_200   # a hundred years
MAX_PER_MONTH = 1_000
MAX_AMOUNT = Decimal(10) ** 12


@dataclass(frozen=True)
class Outcome:
    accounts: tuple[UUID, ...]
    transactions: int
    first_day: date
    last_day: date
    synthetic: tuple[str, ...] = ()


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(JOB, __doc__, date_range=False, symbols=False, provider=False,
                        dry_run_help="generate and check everything, then roll it back: write nothing")
    parser.add_argument("--symbols", type=asset_list, action="append", metavar="A:TYPE,B:TYPE",
                        help="assets to trade, of type STOCK, ETF or CRYPTO, e.g. AAPL:STOCK,BTC:CRYPTO "
                             "(default: the active STOCK, ETF and CRYPTO assets)")
    parser.add_argument("--accounts", type=whole_number(0, MAX_ACCOUNTS), metavar="N",
                        help=f"create N new accounts, at most {MAX_ACCOUNTS:,} (default 1 when no --account-id "
                             "is given; 0 only with --account-id)")
    parser.add_argument("--account-id", type=uuid_list, action="append", default=[], metavar="UUID[,UUID…]",
                        help="add transactions to these accounts, existing or new (repeatable)")
    parser.add_argument("--months", type=whole_number(1, MAX_MONTHS), default=12, metavar="M",
                        help=f"months of history, ending with this month, at most {MAX_MONTHS:,} (default 12)")
    parser.add_argument("--per-month", type=whole_number(0, MAX_PER_MONTH), default=20, metavar="K",
                        help=f"transactions per account and month, at most {MAX_PER_MONTH:,} (default 20)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="random seed: the same seed gives the same rows (default: a random one, logged)")
    parser.add_argument("--currency", type=_currency, default="USD", metavar="CODE",
                        help="currency of the cash accounts (default USD)")
    parser.add_argument("--start-balance", type=_amount, default=Decimal("1000.00"), metavar="AMOUNT",
                        help="opening cash deposit of each account, under 10^12 with at most 2 decimals "
                             "(default 1000.00)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--cash-only", action="store_true", help="deposits and withdrawals only")
    only.add_argument("--stocks-only", action="store_true",
                      help="buys and sells only, paid from the opening deposit")
    return parser


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(options, settings: Settings) -> RunResult:
    args = argparse.Namespace(**vars(options))
    args.account_id = [a for group in args.account_id for a in group]
    if args.accounts is None and not args.account_id:
        args.accounts = 1
    if args.accounts == 0 and not args.account_id:
        raise UsageError("--accounts 0 creates no account, so there is nothing to do — give at least 1, or "
                         "--account-id UUID to add history to existing accounts")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    params = {
        "accounts": args.accounts or 0,
        "account_ids": [str(a) for a in args.account_id],
        "months": args.months,
        "per_month": args.per_month,
        "seed": args.seed,
        "currency": args.currency,
        "start_balance": str(args.start_balance),
        "symbols": [a.spec for a in _flat(args.symbols)] or None,
        "mode": _mode(args),
    }
    log.info("%s: seed %d", JOB.name, args.seed)
    refuse_used_seed(settings, args.seed, args.accounts or 0)
    with job_run(JOB, settings, params, dry_run=args.dry_run) as run:
        outcome = generate(run, args)
        run.extra = {
            "accounts": [str(a) for a in outcome.accounts],
            "transactions": outcome.transactions,
            "first_date": outcome.first_day.isoformat(),
            "last_date": outcome.last_day.isoformat(),
            "synthetic_prices": list(outcome.synthetic),
        }
        run.rows_upserted = outcome.transactions
    verb = "would generate" if args.dry_run else "generated"
    return run.result(f"{JOB.name}: {verb} {outcome.transactions} transactions for {len(outcome.accounts)} "
                      f"account(s) from {outcome.first_day} to {outcome.last_day}"
                      + (" (dry run: nothing written)" if args.dry_run else ""))


def generate(run: JobRun, args) -> Outcome:
    """Insert accounts and transactions and update the holdings, leaving the transaction open.

    The run locks its set of accounts first: a run over the same accounts exits 75, any other runs alongside.
    """
    conn = run.conn
    rng = random.Random(args.seed)
    with conn.cursor() as cur:
        cur.execute("SELECT current_date")
        today = cur.fetchone()[0]
        assets = [] if args.cash_only else _tradable_assets(conn, args.symbols, args.currency)
        asset_sql.register_assets(cur, [Asset(args.currency, "CASH", name=f"{args.currency} cash",
                                               currency=args.currency)])
        fresh = new_account_ids(rng, args.accounts or 0)
        refuse_taken_ids(cur, fresh, args.seed)
        accounts = tuple(dict.fromkeys([*args.account_id, *fresh]))
        if not run.take("accounts:" + ",".join(sorted(map(str, accounts)))):
            raise LockHeldError(f"{JOB.name}: another run is generating for the same {len(accounts)} account(s); "
                                "nothing done (normal when runs overlap)")
        store_accounts(cur, accounts, args.currency)
        first_day = _months_back(today, args.months - 1)
        plan = Plan(accounts=accounts, first_day=first_day, last_day=today, per_month=args.per_month,
                    currency=args.currency, start_balance_cents=int(args.start_balance.scaleb(2)),
                    assets=tuple(assets), mode=_mode(args),
                    actions=tuple(load_corporate_actions(conn, assets, first_day, today, args.currency)))
        prices = load_price_book(conn, assets, first_day, today)
        count = copy_transactions(cur, generate_rows(rng, plan, prices))
    log.info("inserted %d transactions for %d account(s); updating holdings", count, len(accounts))
    change = apply_transactions(conn, accounts, today=today)
    log.info("holdings: %d row(s) written, monthly holdings: %d row(s) written",
             change.holdings_written, change.monthly_written)
    return Outcome(accounts, count, first_day, today, tuple(sorted(a.spec for a in prices.synthetic)))


def _tradable_assets(conn, symbols: list[list[Asset]] | None, currency: str) -> list[Asset]:
    if not symbols:
        found = _in_currency(conn, asset_sql.active_assets(conn, TRADABLE_TYPES), currency)
        if not found:
            log.warning("no active STOCK, ETF or CRYPTO assets priced in %s: generating cash transactions only "
                        "(add some with `etl assets add AAPL:STOCK BTC:CRYPTO`)", currency)
        return found
    wanted = _named_assets(conn, symbols)
    priced = price_currencies(conn, wanted)
    for asset in wanted:
        other = priced.get((asset.symbol, asset.asset_type))
        if other and other != currency:
            raise UsageError(f"--symbols: {asset.spec} is priced in {other}, but the cash is in {currency} — "
                             f"run with --currency {other} to trade it (one currency per run), or leave it out")
    return wanted


def _in_currency(conn, assets: list[Asset], currency: str) -> list[Asset]:
    """The assets priced in `currency` (or in nothing known); the others are named in one log line."""
    priced = price_currencies(conn, assets)
    kept, left_out = [], {}
    for asset in assets:
        other = priced.get((asset.symbol, asset.asset_type))
        if other and other != currency:
            left_out.setdefault(other, []).append(asset.spec)
        else:
            kept.append(asset)
    if left_out:
        log.info("not trading %s: the cash is in %s (run with --currency of those assets to trade them)",
                 "; ".join(f"{', '.join(specs)} (priced in {other})" for other, specs in sorted(left_out.items())),
                 currency)
    return kept


def _named_assets(conn, symbols: list[list[Asset]]) -> list[Asset]:
    wanted = _flat(symbols)
    for asset in wanted:
        if asset.asset_type not in TRADABLE_TYPES:
            raise UsageError(f"--symbols: {asset.spec} cannot be traded in a mock account; "
                             "use STOCK, ETF or CRYPTO assets")
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, asset_type FROM asset WHERE (symbol, asset_type) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([a.symbol for a in wanted], [a.asset_type for a in wanted]))
        known = set(cur.fetchall())
    unknown = [a.spec for a in wanted if (a.symbol, a.asset_type) not in known]
    if unknown:
        raise UsageError(f"--symbols: unknown symbol {', '.join(unknown)} (not in the asset table) — "
                         f"add it with `etl assets add {' '.join(unknown)}` or check the spelling")
    return wanted


def _flat(groups: list[list[Asset]] | None) -> list[Asset]:
    return list(dict.fromkeys(a for group in groups or [] for a in group))


def _mode(args) -> str:
    return "cash_only" if args.cash_only else "stocks_only" if args.stocks_only else "mixed"


def _months_back(today: date, months: int) -> date:
    """The first day of the month `months` months before today's."""
    index = today.year * 12 + today.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _currency(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise argparse.ArgumentTypeError(f"{text!r} is not a three-letter currency code like USD")
    return code


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not 0 <= value < MAX_AMOUNT or value.as_tuple().exponent < -2:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount from 0 to under 10^12 with at most 2 decimals")
    return value


if __name__ == "__main__":
    sys.exit(main())

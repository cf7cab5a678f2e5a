"""etl holdings: repair holdings from the transactions, and say what they were worth.

`etl holdings rebuild` recomputes both tables from the live transactions (all
accounts, or only those given with --account-id) in one database transaction.
Rows that already agree are not rewritten, so on a consistent database it
changes nothing.

`etl holdings value` prints each account's total at every month's end in the
account's currency (accounts.currency), from the view holdings_monthly_value:
as-traded closes on or before the month's end, converted at the stored forex
rates. A month with a holding that cannot be valued (no price, no rate) has no
total; the reason is printed instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from etl.cli import CommandParser, parse_or_exit, run_cli
from etl.config import Settings
from etl.holdings import rebuild_holdings
from etl.holdings_value import MonthlyTotal, monthly_totals
from etl.utils import db_utils

PROG = "etl holdings"
EXAMPLES = ("etl holdings rebuild", "etl holdings rebuild --account-id 0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b",
            "etl holdings value --format json")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=PROG, description=__doc__, examples=EXAMPLES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = actions.add_parser("rebuild", help="recompute holdings and holdings_monthly from transactions",
                                 description=__doc__, examples=EXAMPLES)
    rebuild.add_argument("--account-id", type=uuid_argument, action="append", metavar="UUID",
                         help="only this account (repeatable; default: every account)")
    value = actions.add_parser("value", help="each account's total at every month's end, in its currency",
                               description=__doc__, examples=EXAMPLES)
    value.add_argument("--account-id", type=uuid_argument, action="append", metavar="UUID",
                       help="only this account (repeatable; default: every account)")
    value.add_argument("--format", choices=("text", "json"), default="text",
                       help="text: a table, totals rounded to the cent; json: one object a line, totals "
                            "unrounded as strings (default text)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    if args.action == "value":
        return run_cli(PROG, lambda settings: _value(args.account_id, args.format, settings))
    return run_cli(PROG, lambda settings: _rebuild(args.account_id, settings))


def _rebuild(account_ids: list[UUID] | None, settings: Settings) -> int:
    with db_utils.database(settings) as conn:
        change = rebuild_holdings(conn, account_ids)
        conn.commit()
    if change.unchanged:
        print(f"holdings of {change.accounts} account(s) already agree with their transactions: nothing changed")
    else:
        print(f"holdings of {change.accounts} account(s) rebuilt: holdings {change.holdings_written} written, "
              f"{change.holdings_deleted} deleted; holdings_monthly {change.monthly_written} written, "
              f"{change.monthly_deleted} deleted")
    return 0


def _value(account_ids: list[UUID] | None, output: str, settings: Settings) -> int:
    with db_utils.database(settings) as conn:
        totals = monthly_totals(conn, account_ids)
        conn.rollback()
    if output == "json":
        for total in totals:
            print(json.dumps(total.as_json()))
        return 0
    if not totals:
        print("no holdings to value (generate some with `etl generate_mock_transactions`)")
    for total in totals:
        print(_text_line(total))
    return 0


def _text_line(total: MonthlyTotal) -> str:
    amount = "—" if total.total is None else f"{total.total.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    line = f"{total.account_id}  {total.month:%Y-%m}  {amount:>18} {total.currency or '???'}"
    return line + (f"  (not valued: {'; '.join(total.missing)})" if total.missing else "")


def uuid_argument(text: str) -> UUID:
    """argparse type: a UUID, or a one-line error showing the expected form."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a UUID like 123e4567-e89b-12d3-a456-426614174000") from None


def uuid_list(text: str) -> list[UUID]:
    """argparse type: one or more UUIDs separated by commas."""
    return [uuid_argument(part.strip()) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())

"""Show what the database holds and what needs attention: per asset, per provider, per job.

Per asset: rows, first and last stored day, missing trading days (holes the
historical job would fill, the look-back window left out), stale (the last
stored day more than --stale-after trading days behind the asset's own today),
the time of its last quote, its last successful fetch, its last error and
cool-off. Per provider: requests today, the daily budget left, the last error.
Per job: the last run. --check exits 1 when any asset shown is stale or
failing (0 otherwise), for cron and health checks; --format json gives the same
as one document.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from etl.cli import CommandParser, asset_list, parse_or_exit, run_cli
from etl.coverage import status_document
from etl.errors import UsageError
from etl.tables import print_table, stdout_console
from etl.utils import db_utils

EXIT_ATTENTION = 1


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl status", description=__doc__,
                           exit_meanings={EXIT_ATTENTION: "with --check: an asset shown is stale or failing;\n"
                                                          "      or the status could not be read (database "
                                                          "unreachable …); one line says why"},
                           examples=("etl status", "etl status --format json --check",
                                     "etl status --symbols AAPL:STOCK,BTC:CRYPTO --stale-after 3"))
    parser.add_argument("--symbols", type=asset_list, metavar="A:TYPE,B:TYPE",
                        help="only these assets (default: every active asset)")
    parser.add_argument("--stale-after", type=_whole_number, default=1, metavar="N",
                        help="trading days an asset's last stored day may lag its today (default 1)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text tables or one JSON document")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when any asset shown is stale or failing, 0 otherwise")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli("etl status", lambda settings: _run(args, settings))


def _whole_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days (0 or more)")
    return int(text)


def _run(args, settings) -> int:
    with db_utils.database(settings) as conn:
        document = status_document(conn, settings, now=datetime.now(timezone.utc), stale_after=args.stale_after,
                                   named=args.symbols)
    shown = {(a["symbol"], a["asset_type"]) for a in document["assets"]}
    untracked = [a.spec for a in args.symbols or () if (a.symbol, a.asset_type) not in shown]
    if untracked:
        raise UsageError(f"--symbols: {', '.join(untracked)} not tracked (not in the asset table) — check the "
                         f"spelling, or add it with `etl assets add {' '.join(untracked)}`")
    attention = [a for a in document["assets"] if a["stale"] or a["last_error"]]
    if args.format == "json":
        print(json.dumps(document, default=_json_value, indent=2))
    else:
        _print_text(document, attention)
    return EXIT_ATTENTION if args.check and attention else 0


def _json_value(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _print_text(document: dict, attention: list[dict]) -> None:
    console = stdout_console()
    assets = document["assets"]
    print_table(("asset", "name", "provider", "first", "last", "rows", "missing", "stale", "quote as of",
                 "last success", "cool-off until", "last error"),
                [(f"{a['symbol']}:{a['asset_type']}", a["name"], a["provider"], a["first_date"], a["last_date"],
                  a["rows"], a["missing_days"], "STALE" if a["stale"] else "", _minutes(a["as_of"]),
                  _minutes(a["last_success_at"]), _minutes(a["cool_off_until"]), a["last_error"]) for a in assets],
                title="Assets", console=console)
    console.print()
    print_table(("provider", "requests today", "daily limit", "left today", "last error", "at"),
                [(p["name"], p["requests_today"], p["daily_limit"], p["budget_left"], p["last_error"],
                  _minutes(p["last_error_at"])) for p in document["providers"]], title="Providers", console=console)
    console.print()
    print_table(("job", "last run", "status", "finished", "error"),
                [(j["job"], j["last_run_id"], j["status"], _minutes(j["finished_at"]), j["error"])
                 for j in document["jobs"]], title="Jobs", console=console)
    stale = sum(a["stale"] for a in assets)
    failing = sum(bool(a["last_error"]) for a in assets)
    print(f"\n{len(assets)} asset(s): {stale} stale, {failing} failing, "
          f"{sum(a['missing_days'] for a in assets)} missing day(s)"
          + (f" — needs attention: {', '.join(a['symbol'] + ':' + a['asset_type'] for a in attention)}"
             if attention else ""))


def _minutes(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else ""


if __name__ == "__main__":
    sys.exit(main())

"""financial-tracker-etl: keep a PostgreSQL database of market data and transactions current.

Jobs (each has its own --help):
  fetch_historical_market_data   daily bars, filling only the missing date ranges
  fetch_market_data              live quotes for stocks, ETFs, crypto and forex
  fetch_market_index_data        live quotes for market indices
  generate_mock_transactions     realistic accounts, transactions and holdings

Settings come from the environment and ./.env (see .env.example).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from etl.cli import EXIT_CODES_HELP, asset_list, run_cli
from etl.config import PROVIDER_NAMES, Settings
from etl.utils import db_utils, kafka_utils

JOBS = {
    "fetch_historical_market_data": "etl.jobs.fetch_historical_market_data.fetch_historical_market_data",
    "fetch_market_data": "etl.jobs.fetch_market_data.fetch_market_data",
    "fetch_market_index_data": "etl.jobs.fetch_market_index_data.fetch_market_index_data",
    "generate_mock_transactions": "etl.jobs.generate_mock_transactions",
}

# Subcommands contributed by other modules: name -> "module:function(argv) -> int".
EXTRA_COMMANDS = {
    "holdings": "etl.holdings_cli:main",
    "worker": "etl.worker:main",
}


COMMAND_SUMMARIES = {
    "fetch_historical_market_data": "job: daily bars, only the missing ranges",
    "fetch_market_data": "job: live quotes (stocks, ETFs, crypto, forex)",
    "fetch_market_index_data": "job: live index quotes",
    "generate_mock_transactions": "job: mock accounts, transactions, holdings",
    "holdings": "rebuild holdings from transactions",
    "worker": "run jobs requested on Kafka",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [*JOBS, *EXTRA_COMMANDS]:
        commands.add_parser(name, help=COMMAND_SUMMARIES[name], add_help=False)

    commands.add_parser("migrate", help="apply pending database migrations")

    assets = commands.add_parser("assets", help="register, list or deactivate tracked assets")
    asset_commands = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    add = asset_commands.add_parser("add", help="track assets (or reactivate them)")
    add.add_argument("assets", nargs="+", type=asset_list, metavar="SYMBOL:TYPE",
                     help="e.g. AAPL:STOCK VOO:ETF BTC:CRYPTO EUR/USD:FOREX ^GSPC:INDEX")
    add.add_argument("--name", help="display name (one asset only)")
    add.add_argument("--provider", choices=PROVIDER_NAMES, help="provider to ask first for these assets")
    add.add_argument("--provider-symbol", help="the provider's own symbol (one asset only)")
    asset_commands.add_parser("list", help="show the tracked assets")
    remove = asset_commands.add_parser("remove", help="deactivate assets (their data stays)")
    remove.add_argument("assets", nargs="+", type=asset_list, metavar="SYMBOL:TYPE")

    outbox = commands.add_parser("outbox", help="publish the events waiting in etl_outbox")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    outbox_commands.add_parser("flush", help="send pending events to Kafka now")

    runs = commands.add_parser("runs", help="show recent job runs")
    runs.add_argument("--limit", type=_positive_int, default=20, help="how many runs (default 20)")
    runs.add_argument("--job", choices=list(JOBS), help="only this job")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOBS:
        return importlib.import_module(JOBS[argv[0]]).main(argv[1:])
    if argv and argv[0] in EXTRA_COMMANDS:
        module, function = EXTRA_COMMANDS[argv[0]].split(":")
        return getattr(importlib.import_module(module), function)(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "assets" and args.assets_command == "add":
        flat = [a for group in args.assets for a in group]
        if len(flat) > 1 and (args.name or args.provider_symbol):
            parser.error("--name and --provider-symbol apply to one asset at a time")
        if args.provider_symbol and not args.provider:
            parser.error("--provider-symbol needs --provider: the symbol is that provider's own name for the asset")
    return run_cli("etl", lambda settings: COMMANDS[args.command](args, settings))


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _migrate(args, settings: Settings) -> int:
    conn = db_utils.connect(settings)
    try:
        applied = db_utils.migrate(conn, settings.db_schema)
    finally:
        conn.close()
    where = db_utils.describe_target(settings)
    print(f"schema {settings.db_schema} in {where}: "
          + (f"applied {', '.join(applied)}" if applied else "up to date"))
    return 0


def _assets(args, settings: Settings) -> int:
    from dataclasses import replace

    from etl import assets as asset_sql

    conn = db_utils.connect(settings)
    try:
        db_utils.migrate(conn, settings.db_schema)
        with conn.cursor() as cur:
            if args.assets_command == "add":
                chosen = [replace(a, name=args.name, provider=args.provider, provider_symbol=args.provider_symbol)
                          for group in args.assets for a in group]
                asset_sql.register_assets(cur, chosen)
                conn.commit()
                print(f"tracking {len(chosen)} asset(s): {', '.join(a.spec for a in chosen)}")
            elif args.assets_command == "remove":
                chosen = [a for group in args.assets for a in group]
                count = asset_sql.deactivate_assets(cur, chosen)
                conn.commit()
                print(f"deactivated {count} asset(s); their data stays")
            else:
                cur.execute("SELECT symbol, asset_type, coalesce(name, ''), coalesce(provider, ''), "
                            "CASE WHEN active THEN 'yes' ELSE 'no' END, coalesce(last_error, '') "
                            "FROM asset ORDER BY asset_type, symbol")
                _print_table(("symbol", "type", "name", "provider", "active", "last error"), cur.fetchall())
    finally:
        conn.close()
    return 0


def _outbox(args, settings: Settings) -> int:
    conn = db_utils.connect(settings)
    try:
        db_utils.migrate(conn, settings.db_schema)
        published, pending = kafka_utils.flush_outbox(conn, settings)
    finally:
        conn.close()
    print(f"published {published} event(s); {pending} pending")
    if pending and not settings.kafka_bootstrap_servers:
        # Events waiting in the outbox is the documented state without a broker, not a failure.
        print("etl: KAFKA_BOOTSTRAP_SERVERS is not set, so nothing can be published; the events wait",
              file=sys.stderr)
        return 0
    return 1 if pending else 0


def _runs(args, settings: Settings) -> int:
    conn = db_utils.connect(settings)
    try:
        db_utils.migrate(conn, settings.db_schema)
        with conn.cursor() as cur:
            cur.execute("""
                SELECT run_id, job, status, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZH'),
                       coalesce(round(extract(epoch FROM finished_at - started_at), 1)::text, ''),
                       rows_upserted, symbols_ok, symbols_failed, coalesce(left(error, 60), '')
                  FROM etl_job_runs
                 WHERE %(job)s::text IS NULL OR job = %(job)s
                 ORDER BY run_id DESC
                 LIMIT %(limit)s""", {"job": args.job, "limit": args.limit})
            _print_table(("run", "job", "status", "started", "seconds", "rows", "ok", "failed", "error"),
                         cur.fetchall())
    finally:
        conn.close()
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    cells = [tuple(map(str, header))] + [tuple(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


COMMANDS = {"migrate": _migrate, "assets": _assets, "outbox": _outbox, "runs": _runs}


if __name__ == "__main__":
    sys.exit(main())

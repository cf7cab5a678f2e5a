"""financial-tracker-etl: keep a PostgreSQL database of market data and transactions current.

Each command has its own --help. Settings come from the environment and ./.env
(see .env.example).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from etl.cli import CommandParser, asset_list, parse_or_exit, run_cli, usage_error
from etl.config import PROVIDER_NAMES, Settings
from etl.error_lines import short_error
from etl.registry import JOBS, MARKET_JOB_EXIT_CODES
from etl.tables import print_table
from etl.utils import db_utils, kafka_utils


@dataclass(frozen=True)
class Command:
    target: str   # "module:function", function(argv) -> exit code
    summary: str


# Commands with a module of their own (the jobs come from etl.registry).
COMMANDS = {
    "holdings": Command("etl.holdings_cli:main", "rebuild holdings from transactions; what they were worth each month"),
    "history": Command("etl.history_cli:main", "rebase stored history onto its corporate actions"),
    "worker": Command("etl.worker:main", "run jobs requested on Kafka"),
    "providers": Command("etl.providers_check:main", "check each provider: reachable, key accepted, budget left"),
    "status": Command("etl.status:main", "what the database holds: stale, failing, missing days; --check for alerts"),
    "report": Command("etl.report:main", "write a self-contained HTML coverage report"),
    "db": Command("etl.db_cli:main", "the database in use: its URL, or stop the embedded server"),
    "runs": Command("etl.runs_cli:main", "show recent job runs and why they failed"),
    "enqueue": Command("etl.enqueue:main", "fan a job out over the workers: one request per chunk of assets"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl", description=__doc__, exit_codes=MARKET_JOB_EXIT_CODES, job=True,
                           examples=("etl assets add AAPL:STOCK BTC:CRYPTO", "etl fetch_historical_market_data",
                                     "etl runs --limit 5"))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, job in JOBS.items():
        commands.add_parser(name, help=f"job: {job.summary}", add_help=False)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)

    commands.add_parser("migrate", help="apply pending database migrations", description="Apply pending migrations.")

    assets = commands.add_parser("assets", help="register, list or deactivate tracked assets",
                                 description="Register, list or deactivate tracked assets.",
                                 examples=("etl assets add AAPL:STOCK EUR/USD:FOREX", "etl assets list"))
    asset_commands = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    add = asset_commands.add_parser("add", help="track assets (or reactivate them)",
                                    description="Track assets (or reactivate them): jobs run without --symbols "
                                                "fetch every active asset.",
                                    examples=("etl assets add AAPL:STOCK VOO:ETF BTC:CRYPTO",
                                              "etl assets add BTC:CRYPTO --provider coingecko --provider-symbol bitcoin"))
    add.add_argument("assets", nargs="+", type=asset_list, metavar="SYMBOL:TYPE",
                     help="e.g. AAPL:STOCK VOO:ETF BTC:CRYPTO EUR/USD:FOREX ^GSPC:INDEX")
    add.add_argument("--name", help="display name (one asset only)")
    add.add_argument("--provider", choices=PROVIDER_NAMES, help="provider to ask first for these assets")
    add.add_argument("--provider-symbol", help="the provider's own symbol (one asset only)")
    asset_commands.add_parser("list", help="show the tracked assets",
                              description="Show every tracked asset: name, provider override, active, and its "
                                          "last error\nas provider and reason (`etl status` says what data each "
                                          "holds).")
    remove = asset_commands.add_parser("remove", help="deactivate assets (their data stays)",
                                       description="Deactivate assets: jobs stop fetching them; their stored "
                                                   "data stays.",
                                       examples=("etl assets remove DOGE:CRYPTO",))
    remove.add_argument("assets", nargs="+", type=asset_list, metavar="SYMBOL:TYPE")

    outbox = commands.add_parser("outbox", help="publish the events waiting in etl_outbox",
                                 description="Publish the events waiting in etl_outbox.")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    outbox_commands.add_parser("flush", help="send pending events to Kafka now",
                               description="Send pending events to Kafka now (exit 1 if some could not be sent).")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOBS:
        return JOBS[argv[0]].load().main(argv[1:])
    if argv and argv[0] in COMMANDS:
        module, function = COMMANDS[argv[0]].target.split(":")
        return getattr(importlib.import_module(module), function)(argv[1:])
    parser = build_parser()
    args = parse_or_exit(parser, argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "assets" and args.assets_command == "add":
        flat = [a for group in args.assets for a in group]
        if len(flat) > 1 and (args.name or args.provider_symbol):
            usage_error(parser, "--name and --provider-symbol apply to one asset at a time")
        if args.provider_symbol and not args.provider:
            usage_error(parser, "--provider-symbol needs --provider: the symbol is that provider's own name "
                                 "for the asset")
    return run_cli("etl", lambda settings: BUILT_IN[args.command](args, settings))


def _migrate(args, settings: Settings) -> int:
    with db_utils.database(settings, migrated=False) as conn:
        applied = db_utils.migrate(conn, settings.db_schema)
    where = db_utils.describe_target(settings)
    print(f"schema {settings.db_schema} in {where}: "
          + (f"applied {', '.join(applied)}" if applied else "up to date"))
    return 0


def _assets(args, settings: Settings) -> int:
    from dataclasses import replace

    from etl import assets as asset_sql

    with db_utils.database(settings) as conn:
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
                cur.execute("SELECT symbol, asset_type, name, provider, CASE WHEN active THEN 'yes' ELSE 'no' END, "
                            "last_error FROM asset ORDER BY asset_type, symbol")
                print_table(("symbol", "type", "name", "provider", "active", "last error"),
                            [(*row[:5], short_error(row[5], 80)) for row in cur.fetchall()])
    return 0


def _outbox(args, settings: Settings) -> int:
    with db_utils.database(settings) as conn:
        published, pending = kafka_utils.flush_outbox(conn, settings)
    print(f"published {published} event(s); {pending} pending")
    # Without a broker, events waiting is the documented state (flush_outbox said so once), not a failure.
    return 1 if pending and settings.kafka_bootstrap_servers else 0


BUILT_IN = {"migrate": _migrate, "assets": _assets, "outbox": _outbox}


if __name__ == "__main__":
    sys.exit(main())

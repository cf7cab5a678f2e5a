"""etl history rebase: bring stored history onto the contract of DESIGN.md on demand.

For each stock and ETF (the active ones, or --symbols) whose first provider
reports corporate actions, the whole stored span is refetched through today in
one history request (Yahoo: one request per asset): its splits and dividends are
learned, its prices restored as traded, and every stored adj_close brought onto
the basis of the newest action, in one transaction per asset. Crypto, forex and
indices have no corporate actions and are left as they are. The first history
run after an upgrade does the same by itself for assets never checked.
"""

from __future__ import annotations

import argparse
import sys
import time

from etl import stopping
from etl.cli import CommandParser, asset_list, parse_or_exit, run_cli
from etl.config import PROVIDER_NAMES, Settings
from etl.pipeline import history, selection
from etl.pipeline.chain import ProviderChain
from etl.registry import JOBS, MARKET_JOB_EXIT_CODES
from etl.runs import RunResult, job_run

PROG = "etl history"
JOB = JOBS["fetch_historical_market_data"]   # the same lock, run row and event as the backfill
ACTION_TYPES = ("STOCK", "ETF")
EXAMPLES = ("etl history rebase", "etl history rebase --symbols AAPL:STOCK,VOO:ETF")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=PROG, description=__doc__, examples=EXAMPLES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebase = actions.add_parser("rebase", help="refetch stored history to learn corporate actions and restore "
                                               "prices as traded and one adj_close basis",
                                description=__doc__, exit_codes=MARKET_JOB_EXIT_CODES, examples=EXAMPLES, job=True)
    rebase.add_argument("--symbols", type=asset_list, metavar="A:TYPE,B:TYPE",
                        help="assets to rebase (default: the active stocks and ETFs)")
    rebase.add_argument("--provider", choices=PROVIDER_NAMES,
                        help="use only this provider instead of the configured chain")
    rebase.add_argument("--dry-run", action="store_true", help="fetch and validate, write nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = parse_or_exit(build_parser(), argv)
    with stopping.handling_signals():
        return run_cli(f"{PROG} rebase", lambda settings: rebase(options, settings))


def rebase(options, settings: Settings) -> RunResult:
    started = time.monotonic()
    today = selection.utc_today()
    selection.check_named(options.symbols)
    params = {"rebase": True, "symbols": [a.spec for a in options.symbols or ()], "provider": options.provider,
              "dry_run": options.dry_run}
    chain = ProviderChain(settings, options.provider)
    with job_run(JOB, settings, params, dry_run=options.dry_run) as run:
        assets = selection.select_assets(run, options.symbols, ACTION_TYPES)
        plans = history.plan_assets(run.conn, assets, chain, start=today, end=today, today=today,
                                    lookback_days=settings.lookback_days, full_refresh=False, rebase=True)
        history.backfill(run, chain, plans, today=today, lookback_days=settings.lookback_days)
        run.extra["requests"] = chain.requests_made
    return run.result(selection.summary(f"{PROG} rebase", run, chain.requests_made, started))


if __name__ == "__main__":
    sys.exit(main())

"""Fetch daily price history for every active asset (or --symbols) and store only what is missing.

For each asset the job works out which days of --start..--end are neither
stored nor known to have no data (weekends, holidays, days before listing, as
recorded in the fetch ledger), and requests only those, merged into as few
requests as possible. The last ETL_LOOKBACK_DAYS days (default 3) are
re-checked on every run; older days are final, so a rerun asks for nothing.
An unknown or delisted symbol fails alone and is not asked for again for 7
days unless named with --symbols. --plan shows the requests without making them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from etl.cli import job_main, job_parser  # noqa: E402
from etl.config import Settings  # noqa: E402
from etl.models import MARKET_ASSET_TYPES  # noqa: E402
from etl.pipeline import history, selection  # noqa: E402
from etl.pipeline.chain import ProviderChain  # noqa: E402
from etl.registry import JOBS  # noqa: E402
from etl.runs import RunResult, job_run  # noqa: E402

JOB = JOBS["fetch_historical_market_data"]


def build_parser():
    parser = job_parser(JOB, __doc__, start_default="ETL_HISTORY_START, else five years before today")
    parser.add_argument("--full-refresh", action="store_true",
                        help="refetch the whole range, ignoring what is stored and the fetch ledger")
    parser.add_argument("--plan", action="store_true",
                        help="print the requests that would be made and how they compare with each provider's "
                             "limits; no network call, nothing written")
    return parser


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(options, settings: Settings) -> RunResult:
    started = time.monotonic()
    today = selection.utc_today()
    start, end = selection.date_range(options.start, options.end,
                                      default_start=settings.history_start_or_default(today), today=today)
    selection.check_named(options.symbols)
    params = {"symbols": [a.spec for a in options.symbols or ()], "start": start, "end": end,
              "provider": options.provider, "full_refresh": options.full_refresh, "dry_run": options.dry_run}
    chain = ProviderChain(settings, options.provider)
    with job_run(JOB, settings, params, dry_run=options.dry_run or options.plan) as run:
        assets = selection.select_assets(run, options.symbols, MARKET_ASSET_TYPES)
        if not options.symbols:
            assets = selection.without_cooling_off(run, assets)
        plans = history.plan_assets(run.conn, assets, chain, start=start, end=end, today=today,
                                    lookback_days=settings.lookback_days, full_refresh=options.full_refresh)
        if options.plan:
            return RunResult(JOB.name, 0, "\n".join(history.describe_plan(plans)))
        history.backfill(run, chain, plans, today=today, lookback_days=settings.lookback_days,
                         threads=settings.fetch_threads)
        run.extra["requests"] = chain.requests_made
    return run.result(selection.summary(JOB.name, run, chain.requests_made, started))


if __name__ == "__main__":
    sys.exit(main())

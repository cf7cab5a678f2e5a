"""A tiny job built on etl.runs.job_run, for testing the run mechanism itself.

It is added to the job registry when imported, like a job of the product: a
registry entry and this module are all it takes to run it by `etl sample_job`,
by its path and through `etl worker`.


It registers the given assets and upserts one market_data row per asset for a
fixed day (counting it only when it changed, as the real jobs do). Arguments make it report failures, sleep while holding its lock
(with its rows written but not yet committed), commit each asset as a
checkpoint (each asset is locked while it is worked on, as the real jobs do), or raise when it reaches an asset or after writing.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etl.assets import register_assets  # noqa: E402
from etl import registry, stopping  # noqa: E402
from etl.cli import job_main, job_parser  # noqa: E402
from etl.models import Asset  # noqa: E402
from etl.runs import RunResult, job_run  # noqa: E402
from etl.utils.db_utils import bulk_upsert  # noqa: E402

log = logging.getLogger(__name__)

TOPIC = "SAMPLE_JOB_COMPLETE"
JOB = registry.register(registry.Job(
    name="sample_job", module="support.sample_job", request_topic="SAMPLE_JOB_REQUEST", completion_topic=TOPIC,
    summary="a job for the tests", script="tests/support/sample_job.py"))
DAY = date(2024, 1, 2)
AS_OF = datetime(2024, 1, 2, 21, 0, tzinfo=timezone.utc)
DEFAULT_ASSETS = [Asset("AAPL", "STOCK"), Asset("MSFT", "STOCK")]
COLUMNS = ("symbol", "asset_type", "date", "price", "source", "as_of")


def build_parser():
    parser = job_parser(JOB, __doc__, date_range=False, provider=False)
    parser.add_argument("--price", type=Decimal, default=Decimal("100.25"), help="price of every row")
    parser.add_argument("--fail", default="", metavar="SYM,SYM", help="symbols to report as failed")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to wait before finishing")
    parser.add_argument("--raise-after-write", action="store_true", help="raise once the rows are written")
    parser.add_argument("--checkpoint", action="store_true", help="commit each asset's row (JobRun.checkpoint)")
    parser.add_argument("--raise-at", default="", metavar="SYM", help="raise on reaching this asset, before its row")
    parser.add_argument("--sql-sleep", type=float, default=0.0, metavar="SECONDS",
                        help="run one statement this long (pg_sleep) after writing, before finishing")
    parser.add_argument("--pause-each", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long before each asset (a stop request ends the wait)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(args, settings) -> RunResult:
    assets = args.symbols or DEFAULT_ASSETS
    failing = {s.strip().upper() for s in args.fail.split(",") if s.strip()}
    params = {"symbols": [a.spec for a in assets], "price": args.price, "fail": sorted(failing)}
    with job_run(JOB, settings, params, dry_run=args.dry_run) as run:
        run.plan(a.spec for a in assets)
        with run.conn.cursor() as cur:
            register_assets(cur, assets)
            if not args.dry_run:
                run.conn.commit()  # as select_assets does: a concurrent run must not wait on these rows
            for asset in assets:
                stopping.sleep(args.pause_each)
                if asset.symbol == args.raise_at.upper():
                    raise RuntimeError(f"sample job told to fail at {asset.spec}")
                if not run.take(asset.spec):
                    run.skip(asset.spec)
                    continue
                if asset.symbol in failing:
                    continue
                written = bulk_upsert(cur, "market_data", COLUMNS, [(asset.symbol, asset.asset_type, DAY,
                                                                     args.price, "sample", AS_OF)],
                                      key=("symbol", "asset_type", "date"), newer_column="as_of")
                run.succeeded(asset.spec, written)
                run.release_after_commit(asset.spec)
                if args.checkpoint and not args.dry_run:
                    run.checkpoint()
        for asset in assets:
            if asset.symbol in failing and asset.spec not in run.skipped:
                run.failed(asset.spec, "sample failure as asked")
        if args.sql_sleep:
            with run.conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(%s)", (args.sql_sleep,))
        if args.sleep:
            log.info("%s: sleeping %.1f s with the lock held", JOB.name, args.sleep)
            time.sleep(args.sleep)
        if args.raise_after_write:
            raise RuntimeError("sample job told to fail after writing")
    return run.result(f"{JOB.name}: {run.status}: {len(run.symbols_ok)} ok, {len(run.failures)} failed")


if __name__ == "__main__":
    sys.exit(main())

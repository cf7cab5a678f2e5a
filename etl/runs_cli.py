"""Show recent job runs, newest first, each with its error (or its first failed assets) in one line.

--failures RUN_ID lists every asset that run failed, each with its error.
"""

from __future__ import annotations

import argparse
import sys

from etl.cli import CommandParser, parse_or_exit, positive_int, run_cli
from etl.error_lines import run_error_line, short_error
from etl.errors import UsageError
from etl.registry import JOBS
from etl.tables import print_table
from etl.utils import db_utils

RECENT_RUNS = """
    SELECT run_id, job, status, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZH'),
           round(extract(epoch FROM finished_at - started_at), 1), rows_upserted, symbols_ok, symbols_failed,
           error, failures
      FROM etl_job_runs
     WHERE %(job)s::text IS NULL OR job = %(job)s
     ORDER BY run_id DESC
     LIMIT %(limit)s"""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl runs", description=__doc__,
                           examples=("etl runs", "etl runs --job fetch_market_data --limit 5", "etl runs --failures 42"))
    parser.add_argument("--limit", type=positive_int, default=20, help="how many runs (default 20)")
    parser.add_argument("--job", choices=list(JOBS), help="only this job")
    parser.add_argument("--failures", type=positive_int, metavar="RUN_ID",
                        help="list every failed asset of this run with its error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli("etl runs", lambda settings: _run(args, settings))


def _run(args, settings) -> int:
    with db_utils.database(settings) as conn, conn.cursor() as cur:
        if args.failures:
            return _failures(cur, args.failures)
        cur.execute(RECENT_RUNS, {"job": args.job, "limit": args.limit})
        print_table(("run", "job", "status", "started", "seconds", "rows", "ok", "failed", "error"),
                    [(*row[:8], run_error_line(row[8], row[9])) for row in cur.fetchall()])
    return 0


def _failures(cur, run_id: int) -> int:
    cur.execute("SELECT job, status, error, failures FROM etl_job_runs WHERE run_id = %s", (run_id,))
    found = cur.fetchone()
    if found is None:
        raise UsageError(f"run {run_id} is not in etl_job_runs — `etl runs` lists the recent ones")
    job, status, error, failures = found
    print(f"run {run_id} ({job}) {status}: {len(failures)} failed asset(s)"
          + (f"; run error: {short_error(error, 200)}" if error else ""))
    if failures:
        print_table(("asset", "error"), [(f["symbol"], short_error(f["error"], 200)) for f in failures])
    return 0


if __name__ == "__main__":
    sys.exit(main())

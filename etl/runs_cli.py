"""Show recent job runs, newest first, each with its error (or its first failed assets) in one line.

--failures RUN_ID lists every asset that run failed, each with its error.
--batch ID says how many chunks of an `etl enqueue` batch are done.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from etl.cli import CommandParser, parse_or_exit, positive_int, run_cli, whole_number
from etl.error_lines import run_error_line, short_error
from etl.batches import batch_progress
from etl.errors import EtlError, UsageError
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
    parser.add_argument("--limit", type=whole_number(1, 100_000), default=20,
                        help="how many runs, at most 100,000 (default 20)")
    parser.add_argument("--job", choices=list(JOBS), help="only this job")
    parser.add_argument("--failures", type=positive_int, metavar="RUN_ID",
                        help="list every failed asset of this run with its error")
    parser.add_argument("--batch", type=_batch_id, metavar="ID",
                        help="how many chunks of this `etl enqueue` batch are done")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli("etl runs", lambda settings: _run(args, settings))


def _run(args, settings) -> int:
    with db_utils.database(settings) as conn, conn.cursor() as cur:
        if args.failures:
            return _failures(cur, args.failures)
        if args.batch:
            return _batch(conn, args.batch)
        cur.execute(RECENT_RUNS, {"job": args.job, "limit": args.limit})
        print_table(("run", "job", "status", "started", "seconds", "rows", "ok", "failed", "error"),
                    [(*row[:8], run_error_line(row[8], row[9])) for row in cur.fetchall()])
    return 0


def _batch_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch id — use the one `etl enqueue` printed") from None


def _batch(conn, batch_id: str) -> int:
    progress = batch_progress(conn, batch_id)
    if progress is None:
        raise EtlError(f"no batch {batch_id} in this database — check the id `etl enqueue` printed and DB_SCHEMA")
    print(progress.describe())
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

"""Every failure reaches the user as one line of at most about 200 characters; the full text is kept in
etl_job_runs.error and the DEBUG log. Driver messages (several lines from libpq) are joined."""

from __future__ import annotations

import psycopg2

import subprocess
import time

from etl.utils.log_utils import one_line
from support.db import rows, scalar
from support.faults import child_env, wait_for, wait_for_end
from support.runner import PYTHON, REPO

SAMPLE_JOB = str(REPO / "tests" / "support" / "sample_job.py")


def run_backend(db, schema: str) -> int | None:
    """The backend holding the lock of the running run in `schema` (etl/run_locks.py)."""
    return scalar(db, """
        SELECT l.pid FROM pg_locks l, etl_job_runs r
         WHERE r.status = 'running' AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%s || ':run:' || r.run_id, 0)""",
                  (schema,))


def test_a_driver_error_mid_run_is_one_line_and_the_run_row_keeps_all_of_it(etl_env, db, schema):
    job = subprocess.Popen([PYTHON, SAMPLE_JOB, "--symbols", "A:STOCK,B:STOCK,C:STOCK", "--checkpoint",
                            "--pause-each", "1"], env=child_env(etl_env), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(lambda: scalar(db, "SELECT coalesce(max(symbols_ok), 0) FROM etl_job_runs") >= 1, 30,
             "a committed asset")
    pid = wait_for(lambda: run_backend(db, schema), 10, "the run's lock")
    scalar(db, "SELECT pg_terminate_backend(%s)", (pid,))
    ended = wait_for_end(job, time.monotonic(), 30)
    assert ended.code == 3, ended.stderr
    summary = [line for line in (ended.stdout + ended.stderr).splitlines() if "sample_job" in line
               and "stopped after" in line]
    assert len(summary) == 1 and len(summary[0]) <= 220, ended.stderr
    assert "terminating connection" in summary[0] or "server closed" in summary[0]
    follow = ended.stderr.split(summary[0], 1)[1]
    assert follow.strip() == "", f"the summary went on over more lines: {follow!r}"
    [(error,)] = rows(db, "SELECT error FROM etl_job_runs")
    assert "\n" not in error and ("terminating connection" in error or "server closed" in error)


def test_one_line_joins_the_lines_of_a_driver_message_and_cuts_a_long_one():
    exc = psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means the "
                                    "server terminated abnormally\n\tbefore or while processing the request.\n")
    assert one_line(exc) == ("server closed the connection unexpectedly This probably means the server "
                             "terminated abnormally before or while processing the request.")
    long = one_line("x" * 500, limit=200)
    assert len(long) == 200 and long.endswith("…")

"""Container healthcheck: the database answers and no job run is stuck.

Exit 0 when healthy; 1 with one line saying what is wrong otherwise. A run
still 'running' after ETL_HEALTH_MAX_RUN_MINUTES (default 180) means a job hangs.
"""

from __future__ import annotations

import os
import sys

from etl.config import Settings
from etl.errors import EtlError
from etl.utils import db_utils


def main() -> int:
    text = os.environ.get("ETL_HEALTH_MAX_RUN_MINUTES", "180")
    if not text.isdigit():
        print(f"unhealthy: ETL_HEALTH_MAX_RUN_MINUTES must be a whole number of minutes, got {text!r}",
              file=sys.stderr)
        return 1
    max_minutes = int(text)
    try:
        settings = Settings.from_env()
        conn = db_utils.connect(settings)
    except EtlError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('etl_job_runs') IS NOT NULL")
            if not cur.fetchone()[0]:
                print("healthy: database answers (no job has run yet)")
                return 0
            cur.execute("SELECT job, run_id, started_at FROM etl_job_runs "
                        "WHERE status = 'running' AND started_at < now() - make_interval(mins => %s) "
                        "ORDER BY started_at LIMIT 1", (max_minutes,))
            stuck = cur.fetchone()
    finally:
        conn.close()
    if stuck:
        job, run_id, started_at = stuck
        print(f"unhealthy: {job} run {run_id} has been running since {started_at:%Y-%m-%d %H:%M} UTC "
              f"(over {max_minutes} min, ETL_HEALTH_MAX_RUN_MINUTES)", file=sys.stderr)
        return 1
    print("healthy: database answers, no stuck run")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SIGTERM reaches the running job wherever it is sent: to `etl-cron` (what the container's scheduler runs
for each crontab line), and — in the container test — to the scheduler itself on `docker stop`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from support.db import rows, scalar
from support.faults import backfill_argv, child_env, wait_for, wait_for_end
from support.runner import REPO
from support.yahoo_server import YahooServer

SYMBOLS = [f"T{i}:STOCK" for i in range(20)]


def test_sigterm_to_etl_cron_stops_its_job_cooperatively_with_143(fake_api, etl_env, db, tmp_path):
    YahooServer(fake_api)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, PROVIDER_RATE_LIMITS="yahoo=120")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m etl "$@"\n')
    (bin_dir / "etl").chmod(0o755)
    env = child_env({**etl_env, "PATH": f"{bin_dir}:/usr/bin:/bin", "ETL_STATE_DIR": str(tmp_path / "state")})
    cron = subprocess.Popen(["bash", str(REPO / "docker" / "etl-cron.sh"), *backfill_argv(SYMBOLS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = wait_for(lambda: scalar(db, "SELECT run_id FROM etl_job_runs WHERE status = 'running'"), 60,
                      "the run to start")
    wait_for(lambda: scalar(db, "SELECT symbols_ok FROM etl_job_runs WHERE run_id = %s", (run_id,)) >= 1, 60,
             "a committed asset")
    signalled = time.monotonic()
    cron.send_signal(signal.SIGTERM)  # to etl-cron alone, as the scheduler does
    ended = wait_for_end(cron, signalled, 30)
    assert ended.code == 143, ended.stderr[-1500:]
    assert "stopped by SIGTERM" in ended.stderr
    assert rows(db, "SELECT status FROM etl_job_runs WHERE run_id = %s", (run_id,)) == [("partial",)]
    assert scalar(db, "SELECT count(*) FROM etl_job_runs WHERE status = 'running'") == 0

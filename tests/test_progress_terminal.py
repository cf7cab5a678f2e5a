"""On a terminal the backfill shows a progress bar, and log lines never run into it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

from support.runner import PYTHON, REPO, ETL_VARIABLES
from support.yahoo_server import YahooServer

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def run_on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run a command with its stderr on a pseudo-terminal; return its exit code and what the terminal got."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full_env.update(env, PYTHONPATH=str(REPO), TERM="xterm", COLUMNS="100")
    process = subprocess.Popen(args, env=full_env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(timeout=10), received.decode("utf-8", "replace")


def test_log_lines_are_printed_above_the_progress_bar_never_into_it(etl_env, fake_api):
    good = [f"OK{i}:STOCK" for i in range(10)]
    yahoo = YahooServer(fake_api, failing={"BAD1": 503, "BAD2": 503, "BAD3": 503})
    env = {**etl_env, "YAHOO_BASE_URL": yahoo.base_url, "ETL_HTTP_RETRIES": "0"}
    code, screen = run_on_a_terminal(
        [PYTHON, "-m", "etl", "fetch_historical_market_data", "--symbols",
         ",".join([*good[:4], "BAD1:STOCK", *good[4:8], "BAD2:STOCK", *good[8:], "BAD3:STOCK"]),
         "--start", "2024-01-02", "--end", "2024-02-29"], env)
    assert code == 3, screen
    lines = [segment for line in ANSI.sub("", screen).replace("\r\n", "\n").split("\n")
             for segment in line.split("\r")]
    logged = [line for line in lines if re.search(r" (INFO|WARNING) ", line)]
    assert len([line for line in logged if " WARNING " in line]) >= 3, screen
    assert all(TIMESTAMP.match(line) for line in logged), logged
    assert any("historical backfill" in line and "13/13" in line for line in lines), lines

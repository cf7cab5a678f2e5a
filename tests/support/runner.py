"""Run the product as a user would: in this process, or as a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from etl.providers import PROVIDERS

REPO = Path(__file__).resolve().parents[2]  # the repository root, importable as PYTHONPATH
# Loopback port 9 (discard) refuses connections: a provider nobody pointed at a
# fake server fails fast instead of reaching the internet.
UNREACHABLE = "http://127.0.0.1:9"
# Every setting the product reads: the general ones, then each registered provider's own.
SETTINGS = (
    "DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SCHEMA", "ETL_DATA_DIR",
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX", "MARKET_DATA_PROVIDERS", "STOCK_PROVIDERS",
    "CRYPTO_PROVIDERS", "FOREX_PROVIDERS", "INDEX_PROVIDERS", "ETL_HISTORY_START", "ETL_LOOKBACK_DAYS",
    "MARKET_INDEX_SYMBOLS", "LOG_LEVEL", "LOG_FORMAT", "ETL_HTTP_TIMEOUT", "ETL_FETCH_THREADS", "ETL_HTTP_RETRIES", "ETL_HTTP_BACKOFF",
    "ETL_WORKER_GROUP", "ETL_WORKER_PARTITIONS", "PROVIDER_RATE_LIMITS", "PROVIDER_DAILY_LIMITS",
    "YAHOO_COOKIE_URL", "YAHOO_IMPERSONATE", "ETL_DB_TIMEOUT", "ETL_STALE_RUN_SECONDS",
)
KEY_VARIABLES = tuple(cls.key_variable for cls in PROVIDERS.values() if cls.key_variable)
BASE_URL_VARIABLES = tuple(cls.base_url_variable for cls in PROVIDERS.values())
ETL_VARIABLES = SETTINGS + KEY_VARIABLES + BASE_URL_VARIABLES

def run_etl(*argv: str) -> int:
    """Run `etl ARGV…` in this process, with the test's environment."""
    from etl.__main__ import main

    return main([str(a) for a in argv])


def run_etl_process(args: list[str], env: dict[str, str], *, cwd: Path | None = None,
                    timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    """Run a command line (python -m etl …, a job by path …) in a child process."""
    full_env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(args, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **popen)



PYTHON = sys.executable

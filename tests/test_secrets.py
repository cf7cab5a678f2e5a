"""Secrets never reach a log line, an error message, a repr or an event."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from etl.config import Settings
from support.db import rows
from support.runner import PYTHON, run_etl_process

SAMPLE_JOB = str(Path(__file__).resolve().parent / "support" / "sample_job.py")
SECRETS = {
    "DB_PASSWORD": "DbPassw0rd-Zebra-4471",
    "TWELVE_DATA_API_KEY": "TwelveKey-Quokka-9931",
    "ALPHA_VANTAGE_API_KEY": "AlphaKey-Narwhal-2287",
    "COINGECKO_API_KEY": "GeckoKey-Axolotl-6604",
}
URL_PASSWORD = "UrlPassw0rd-Okapi-5150"
ALL_SECRETS = [*SECRETS.values(), URL_PASSWORD]


def with_password(url: str, password: str = URL_PASSWORD, port: int | None = None) -> str:
    parts = urlsplit(url)
    host = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{port or parts.port or 5432}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def leaked(text: str) -> list[str]:
    return [secret for secret in ALL_SECRETS if secret in text]


@pytest.fixture
def secret_env(etl_env):
    """The test's environment with distinctive secrets everywhere (the local server trusts loopback)."""
    etl_env.update(SECRETS, DATABASE_URL=with_password(etl_env["DATABASE_URL"]), LOG_LEVEL="DEBUG")
    return etl_env


def test_repr_of_settings_shows_no_secret(secret_env):
    settings = Settings.from_env(secret_env)
    assert leaked(repr(settings)) == []
    assert sorted(settings.secrets()) == sorted(ALL_SECRETS)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_job_logs_output_and_events_contain_no_secret(secret_env, db, log_format):
    secret_env["LOG_FORMAT"] = log_format
    result = run_etl_process([PYTHON, SAMPLE_JOB, "--fail", "MSFT", "--sleep", "0.1"], secret_env)
    assert result.returncode == 3, result.stderr
    assert "sample_job" in result.stderr  # the logs were captured: DEBUG shows plenty
    assert leaked(result.stdout + result.stderr) == []
    stored = json.dumps(rows(db, "SELECT payload FROM etl_outbox")) + json.dumps(
        rows(db, "SELECT params, failures, error FROM etl_job_runs"), default=str)
    assert leaked(stored) == []


def test_unreachable_database_gives_one_line_without_the_password_and_exits_1(secret_env):
    secret_env["DATABASE_URL"] = with_password(secret_env["DATABASE_URL"], port=1)
    secret_env["LOG_LEVEL"] = "INFO"
    result = run_etl_process([PYTHON, "-m", "etl", "migrate"], secret_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot connect" in lines[0] and "DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr
    assert leaked(result.stderr + result.stdout) == []


def test_unreachable_database_from_db_parts_names_no_password(secret_env):
    del secret_env["DATABASE_URL"]
    secret_env.update(DB_HOST="127.0.0.1", DB_PORT="1", DB_USER="postgres", DB_NAME="etl", LOG_LEVEL="INFO")
    result = run_etl_process([PYTHON, "-m", "etl", "runs"], secret_env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert leaked(result.stderr) == []


def test_debug_level_adds_the_traceback_still_without_secrets(secret_env):
    secret_env["DATABASE_URL"] = with_password(secret_env["DATABASE_URL"], port=1)
    result = run_etl_process([PYTHON, "-m", "etl", "migrate"], secret_env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert leaked(result.stderr) == []

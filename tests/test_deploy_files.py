"""The deployment files pass their linters, and every crontab command runs against the test services."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from support.db import row_count
from support.locks import held_by_another_run
from support.runner import REPO, run_etl, run_etl_process
from support.yahoo_server import YahooServer

pytestmark = pytest.mark.container

SHELL_SCRIPTS = sorted([*REPO.glob("docker/*.sh"), *REPO.glob("scripts/*.sh"), REPO / ".ci" / "run"])


def tool(name: str) -> str:
    """A linter from the test virtualenv (PyPI) or the system (Debian)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed: `make test` installs it (requirements-dev.txt, scripts/install-test-tools.sh)"
    return found


def check(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def crontab_module():
    spec = importlib.util.spec_from_file_location("crontab_to_yacron", REPO / "docker" / "crontab_to_yacron.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- linters ---------------------------------------------------------------------------------

def test_the_dockerfile_passes_hadolint_at_warning_level():
    result = check(tool("hadolint"), "--failure-threshold", "warning", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shell_script_passes_shellcheck(script):
    result = check(tool("shellcheck"), str(script))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_is_valid():
    result = check(tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


# Fixed by docker-compose.yml to its own services, or of no use in a container (the README says why).
COMPOSE_EXCEPTIONS = {"DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD",
                      "KAFKA_BOOTSTRAP_SERVERS", "ETL_DATA_DIR"}
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_PORT", "KAFKA_HOST_PORT"}


def env_example_variables() -> list[str]:
    """Every variable .env.example sets or shows commented out (`NAME=` or `# NAME=`)."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return list(dict.fromkeys(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)))


def compose_environment(service: str, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment `docker-compose config` gives `service` with `env` as the shell's (and no .env)."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    result = subprocess.run([tool("docker-compose"), "--env-file", str(empty_env_file), "-f",
                             str(REPO / "docker-compose.yml"), "config"], capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ["PATH"], **env})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index(f"  {service}:")
    block = lines[start + 1:]
    environment = block.index("    environment:")
    found = {}
    for line in block[environment + 1:]:
        if not line.startswith("      "):
            break
        name, _, value = line.strip().partition(": ")
        found[name] = value.strip("'")
    return found


def test_compose_passes_every_variable_of_env_example_to_the_etl_containers(tmp_path):
    variables = env_example_variables()
    assert {"DB_SCHEMA", "ETL_SKIP_MIGRATE", "ETL_CRONTAB", "LOG_FORMAT"} <= set(variables)
    given = {name: f"from-env-{name.lower()}" for name in variables}
    given.update(POSTGRES_PORT="15432", KAFKA_HOST_PORT="39092")  # compose's own: host ports
    for service in ("etl", "worker"):
        passed = compose_environment(service, given, tmp_path)
        for name in set(variables) - COMPOSE_EXCEPTIONS - COMPOSE_ONLY:
            assert passed.get(name) == given[name], f"{service}: {name} is not passed"
        assert passed["DATABASE_URL"] == ("postgresql://from-env-postgres_user:from-env-postgres_password"
                                          "@postgres:5432/from-env-postgres_db")
        assert passed["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_readme_and_the_compose_file_name_each_variable_compose_does_not_pass():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Compose settings.**"):]
    section = section[:section.index("\n\n")]
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    header = compose[:compose.index("x-etl:")]
    for name in COMPOSE_EXCEPTIONS:
        assert f"`{name}`" in section, f"the README's compose settings do not name {name}"
        assert name in header, f"docker-compose.yml's comment does not name {name}"


def test_cron_accepts_the_crontab():
    result = check(tool("crontab"), "-n", "crontab")
    assert result.returncode == 0, result.stdout + result.stderr


# --- crontab → scheduler configuration (pure) ----------------------------------------------------

def test_each_crontab_line_becomes_one_scheduled_job_in_utc():
    environment, entries = crontab_module().parse((REPO / "crontab").read_text())
    assert environment == {}
    assert entries == [
        ("*/5 13-21 * * 1-5", "etl-cron fetch_market_data --types STOCK,ETF"),
        ("7-59/15 * * * *", "etl-cron fetch_market_data --types CRYPTO"),
        ("12-59/15 21-23 * * 0", "etl-cron fetch_market_data --types FOREX"),
        ("12-59/15 * * * 1-4", "etl-cron fetch_market_data --types FOREX"),
        ("12-59/15 0-21 * * 5", "etl-cron fetch_market_data --types FOREX"),
        ("2-59/5 0-21 * * 1-5", "etl-cron fetch_market_index_data"),
        ("30 2 * * *", "etl-cron fetch_historical_market_data"),
        ("*/10 * * * *", "etl-cron outbox flush"),
        ("15 0 1 * *", "etl-cron holdings rebuild"),
    ]
    config = crontab_module().to_yacron((REPO / "crontab").read_text())
    assert "  utc: true" in config and "  concurrencyPolicy: Forbid" in config
    assert "    command: 'etl-cron outbox flush'" in config
    assert "  - name: 'fetch_market_data-CRYPTO'\n    command: 'etl-cron fetch_market_data --types CRYPTO'" in config


def test_environment_lines_macros_and_quotes_survive_the_conversion():
    text = "# comment\nGREETING = it's me\n@daily etl-cron runs --limit 1\n* * * * * echo 'a' \"b\"\n"
    config = crontab_module().to_yacron(text)
    assert "    - key: GREETING\n      value: 'it''s me'" in config
    assert "  - name: 'runs'\n    command: 'etl-cron runs --limit 1'\n    schedule: '0 0 * * *'" in config
    assert "    command: 'echo ''a'' \"b\"'" in config


def test_a_line_without_five_schedule_fields_is_refused_with_its_number():
    with pytest.raises(ValueError, match="line 2"):
        crontab_module().parse("# ok\n*/5 * * etl-cron runs\n")


# --- the crontab's commands, run as the scheduler would --------------------------------------

@pytest.fixture
def cron_path(tmp_path) -> str:
    """PATH where `etl` is this checkout and `etl-cron` is docker/etl-cron.sh, as in the image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m etl "$@"\n')
    (bin_dir / "etl-cron").symlink_to(REPO / "docker" / "etl-cron.sh")
    (bin_dir / "etl").chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def run_cron_command(command: str, env: dict[str, str], path: str, state_dir: Path) -> subprocess.CompletedProcess:
    return run_etl_process(["/bin/sh", "-c", command], dict(env, PATH=path, ETL_STATE_DIR=str(state_dir)))


def test_every_crontab_command_runs_successfully_against_the_test_services(
        with_kafka, etl_env, db, fake_api, cron_path, tmp_path, monkeypatch):
    YahooServer(fake_api)
    etl_env.update(YAHOO_BASE_URL=fake_api.base_url, MARKET_INDEX_SYMBOLS="^GSPC,^DJI",
                   ETL_HISTORY_START=(date.today() - timedelta(days=20)).isoformat())
    for name in ("YAHOO_BASE_URL", "MARKET_INDEX_SYMBOLS", "ETL_HISTORY_START"):
        monkeypatch.setenv(name, etl_env[name])
    assert run_etl("assets", "add", "AAPL:STOCK", "BTC:CRYPTO") == 0

    _, entries = crontab_module().parse((REPO / "crontab").read_text())
    for _, command in entries:
        result = run_cron_command(command, etl_env, cron_path, tmp_path / "state")
        assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr[-2000:]}"
    assert row_count(db, "etl_job_runs", "status = 'success'") == 7
    assert row_count(db, "market_data") > 0
    assert row_count(db, "etl_outbox", "published_at IS NULL") == 0
    assert (tmp_path / "state" / "last-scheduled-run").exists()


def test_an_overlapping_scheduled_run_is_skipped_without_alarm(etl_env, db, cron_path, tmp_path, schema,
                                                                database_url):
    with held_by_another_run(database_url, schema, "fetch_market_data", "AAPL:STOCK"):
        result = run_cron_command("etl-cron fetch_market_data --symbols AAPL:STOCK", etl_env, cron_path,
                                  tmp_path / "state")
    assert result.returncode == 0
    assert "skipped: the previous run is still going (exit 75, not an error)" in result.stdout


# --- installing the package --------------------------------------------------------------------

def test_a_fresh_install_as_make_run_does_it_prints_no_setuptools_deprecation(tmp_path):
    """The Makefile's own editable-install line, in a fresh virtualenv with today's pip (which shows
    the build backend's warnings); the build requirements come from the package registry."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (install,) = [line.strip() for line in makefile.splitlines() if line.rstrip().endswith("-e .")]
    venv = tmp_path / "venv"
    assert check(sys.executable, "-m", "venv", str(venv)).returncode == 0
    python = str(venv / "bin" / "python")
    upgraded = check(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    assert upgraded.returncode == 0, upgraded.stderr
    result = subprocess.run(install.replace("$(PY)", python), shell=True, cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "deprecat" not in output.lower() and "BuildBackendWarning" not in output, output
    license_expression = check(python, "-c", "from importlib.metadata import metadata; "
                                             "print(metadata('financial-tracker-etl')['License-Expression'])")
    assert license_expression.stdout.strip() == "MIT"

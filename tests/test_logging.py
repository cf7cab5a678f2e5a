"""Logging: stderr only, text or one JSON object a line, the level honoured, secrets redacted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from etl.utils import log_utils
from etl.utils.log_utils import progress, redact, setup_logging
from support.runner import PYTHON, run_etl_process

SAMPLE_JOB = str(Path(__file__).resolve().parent / "support" / "sample_job.py")
log = logging.getLogger("tests.logging")


@pytest.fixture
def configured(capsys, monkeypatch):
    """Set up logging into pytest's captured stderr, and take it down afterwards."""
    monkeypatch.setattr(log_utils, "_secrets", [])
    root = logging.getLogger()
    level = root.level

    def configure(level="INFO", fmt="text", secrets=()):
        setup_logging(level, fmt, secrets)
        capsys.readouterr()

    yield configure
    for handler in [h for h in root.handlers if getattr(h, "_etl_handler", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def stderr_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_format_gives_one_object_per_line_on_stderr(etl_env):
    result = run_etl_process([PYTHON, SAMPLE_JOB, "--sleep", "0.1"], {**etl_env, "LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(entries) >= 2
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    assert any("sleeping" in e["message"] for e in entries)
    assert result.stdout.strip() == "sample_job: success: 2 ok, 0 failed"


def test_text_format_at_warning_level_hides_info_lines(etl_env):
    quiet = run_etl_process([PYTHON, SAMPLE_JOB, "--sleep", "0.1"], {**etl_env, "LOG_LEVEL": "WARNING"})
    assert quiet.returncode == 0
    assert "sleeping" not in quiet.stderr
    chatty = run_etl_process([PYTHON, SAMPLE_JOB, "--sleep", "0.1"], {**etl_env, "LOG_LEVEL": "info"})
    assert "INFO" in chatty.stderr and "sleeping" in chatty.stderr


def test_debug_level_shows_debug_lines(configured, capsys):
    configured("DEBUG")
    log.debug("detail %d", 7)
    assert any("detail 7" in line for line in stderr_lines(capsys))


def test_info_level_hides_debug_lines(configured, capsys):
    configured("INFO")
    log.debug("hidden detail")
    log.info("shown")
    lines = stderr_lines(capsys)
    assert not any("hidden detail" in line for line in lines)
    assert any("shown" in line for line in lines)


@pytest.mark.parametrize("text, secret", [
    ("postgresql://etl:Hunter2-Pass@db:5432/etl", "Hunter2-Pass"),
    ("https://www.alphavantage.co/query?function=X&apikey=AV-KEY-123&symbol=IBM", "AV-KEY-123"),
    ("https://api.twelvedata.com/quote?symbol=AAPL&api_key=TD-KEY-456", "TD-KEY-456"),
    ("GET /coins?x_cg_demo_api_key=CG-KEY-789 failed", "CG-KEY-789"),
    ("https://example.com/x?access_token=TOKEN-XYZ", "TOKEN-XYZ"),
])
def test_secret_shaped_fragments_are_redacted(text, secret):
    cleaned = redact(text, [])
    assert secret not in cleaned
    assert "***" in cleaned


def test_registered_secrets_are_redacted_from_every_line_and_argument(configured, capsys):
    configured(secrets=["PlainSecret-31337"])
    log.warning("key is %s", "PlainSecret-31337")
    try:
        raise RuntimeError("boom with PlainSecret-31337")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "PlainSecret-31337" not in err
    assert "key is ***" in err and "boom with ***" in err


def test_json_lines_are_redacted_too(configured, capsys):
    configured(fmt="json", secrets=["JsonSecret-2718"])
    log.info("url postgresql://u:UrlSecret-1@h/db and JsonSecret-2718")
    [entry] = [json.loads(line) for line in stderr_lines(capsys)]
    assert "UrlSecret-1" not in entry["message"] and "JsonSecret-2718" not in entry["message"]


def test_progress_logs_lines_when_stderr_is_not_a_terminal(caplog, capsys):
    caplog.set_level(logging.INFO, logger="tests.logging")
    assert list(progress(range(3), 3, "assets", log=log, every_seconds=0)) == [0, 1, 2]
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in messages] == ["assets: 1/3 done", "assets: 2/3 done", "assets: 3/3 done"]
    assert "\r" not in capsys.readouterr().err


def test_progress_logs_only_the_last_line_when_work_is_quick(caplog):
    caplog.set_level(logging.INFO, logger="tests.logging")
    list(progress(range(50), 50, "assets", log=log, every_seconds=3600))
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["assets: 50/50 done"]


def test_progress_draws_a_bar_on_a_terminal(capsys, monkeypatch, caplog):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    list(progress(range(4), 4, "assets", log=log))
    err = capsys.readouterr().err
    assert "assets" in err and "4/4" in err and "\n" in err.split("4/4")[-1]  # the finished bar stays, ended
    assert caplog.records == []

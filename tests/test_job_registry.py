"""The job registry is the one declaration of a job: etl, the worker, the README and the crontab read it;
a job added to it runs by `etl`, by its path and through the worker, and stops cleanly on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from etl import registry
from etl.__main__ import BUILT_IN, COMMANDS
from support.db import row_count, rows, scalar
from support.events import read_events
from support.runner import ETL_VARIABLES, PYTHON, REPO

TESTS = REPO / "tests"
# `etl` with the sample job added to the registry by importing its module, as a product job's entry would be.
ETL_WITH_SAMPLE_JOB = [PYTHON, "-c", "import sys, support.sample_job; from etl.__main__ import main; "
                                     "sys.exit(main(sys.argv[1:]))"]
SAMPLE_JOB_PATH = str(TESTS / "support" / "sample_job.py")
FAST_GROUP = ["--session-timeout-ms", "2000", "--heartbeat-interval-ms", "500"]


def process_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full.update(env, PYTHONPATH=f"{REPO}{os.pathsep}{TESTS}")
    return full


def start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=process_env(env), stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def wait_until(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def sample_rows(db) -> list[str]:
    return [r[0] for r in rows(db, "SELECT symbol FROM market_data WHERE source = 'sample' ORDER BY symbol")]


# --- one declaration ------------------------------------------------------------------------

def test_the_readme_job_table_is_the_registry():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| (\w+) \| `(\w+)` \| `(\w+)` \|$", readme, re.M)
    assert table == [(j.name, j.request_topic, j.completion_topic) for j in registry.JOBS.values()
                     if j.module.startswith("etl.")]


def test_every_scheduled_command_in_the_crontab_is_a_registered_job_or_a_command():
    known = {*registry.JOBS, *COMMANDS, *BUILT_IN}
    scheduled = re.findall(r"\betl-cron (\S+)", (REPO / "crontab").read_text(encoding="utf-8"))
    assert scheduled and set(scheduled) <= known, set(scheduled) - known
    assert set(registry.JOBS) - {"sample_job"} <= set(scheduled) | {"generate_mock_transactions"}


def test_every_registered_job_has_its_script_and_module():
    for job in registry.JOBS.values():
        module = job.load()
        assert (REPO / job.script).is_file(), job.script
        assert callable(module.run) and callable(module.main) and callable(module.build_parser)


# --- a job added through the registry alone ------------------------------------------------------

def test_a_job_added_to_the_registry_runs_by_etl_by_its_path_and_through_the_worker(
        with_kafka, etl_env, db, tmp_path):
    prefix = etl_env["KAFKA_TOPIC_PREFIX"]
    listed = subprocess.run([*ETL_WITH_SAMPLE_JOB, "--help"], env=process_env(etl_env), capture_output=True,
                            text=True, timeout=60)
    assert "sample_job" in listed.stdout and "job: a job for the tests" in listed.stdout

    by_etl = subprocess.run([*ETL_WITH_SAMPLE_JOB, "sample_job", "--symbols", "AAPL:STOCK"], env=process_env(etl_env),
                            capture_output=True, text=True, timeout=60)
    assert by_etl.returncode == 0, by_etl.stderr
    by_path = subprocess.run([PYTHON, SAMPLE_JOB_PATH, "--symbols", "MSFT:STOCK"], env=process_env(etl_env),
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert by_path.returncode == 0, by_path.stderr

    worker = start([*ETL_WITH_SAMPLE_JOB, "worker", *FAST_GROUP], etl_env, tmp_path / "worker.log")
    try:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=with_kafka, acks="all", max_block_ms=10_000)
        producer.send(prefix + "SAMPLE_JOB_REQUEST", b'{"symbols": ["NVDA:STOCK"]}').get(timeout=10)
        producer.close()
        wait_until(lambda: row_count(db, "etl_job_runs", "status = 'success'") == 3, what="the requested run")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    assert sample_rows(db) == ["AAPL", "MSFT", "NVDA"]
    events = read_events(with_kafka, prefix + "SAMPLE_JOB_COMPLETE", expect=3)
    assert sorted(e["symbols"][0] for e in events) == ["AAPL:STOCK", "MSFT:STOCK", "NVDA:STOCK"]


# --- signals: cooperative stops, never exit 3 ----------------------------------------------------

def test_sigterm_and_sigint_stop_a_run_at_its_next_asset_with_143_and_130_announcing_what_it_committed(
        with_kafka, etl_env, db, tmp_path):
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        runs_before = row_count(db, "etl_job_runs")
        job = start([PYTHON, SAMPLE_JOB_PATH, "--symbols", "A:STOCK,B:STOCK,C:STOCK", "--checkpoint",
                     "--pause-each", "1.5"], etl_env, tmp_path / f"job{code}.log")
        wait_until(lambda: scalar(db, "SELECT coalesce(max(symbols_ok), 0) FROM etl_job_runs "
                                      "WHERE status = 'running'") >= 1, what="the first committed asset")
        job.send_signal(sig)
        assert job.wait(10) == code, (tmp_path / f"job{code}.log").read_text()
        status, error = rows(db, "SELECT status, error FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")[0]
        assert status == "partial" and ("SIGTERM" if code == 143 else "SIGINT") in error
        assert row_count(db, "etl_job_runs") == runs_before + 1
    events = read_events(with_kafka, etl_env["KAFKA_TOPIC_PREFIX"] + "SAMPLE_JOB_COMPLETE", expect=2)
    assert [e["status"] for e in events] == ["partial", "partial"]
    assert all("A:STOCK" in e["symbols"] and "C:STOCK" not in e["symbols"] for e in events)
    assert row_count(db, "etl_job_runs", "status = 'running'") == 0


def test_a_worker_stopped_mid_job_stops_the_job_within_its_grace_and_leaves_the_request(
        with_kafka, etl_env, db, tmp_path):
    etl_env["ETL_WORKER_GROUP"] = f"group-{etl_env['DB_SCHEMA']}"
    worker = start([*ETL_WITH_SAMPLE_JOB, "worker", *FAST_GROUP, "--stop-grace", "1"], etl_env,
                   tmp_path / "worker.log")
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=with_kafka, acks="all", max_block_ms=10_000)
    producer.send(etl_env["KAFKA_TOPIC_PREFIX"] + "SAMPLE_JOB_REQUEST",
                  b'{"symbols": ["A:STOCK", "B:STOCK"], "pause_each": 60}').get(timeout=10)
    producer.close()
    wait_until(lambda: row_count(db, "etl_job_runs", "status = 'running'") == 1, what="the job to start")
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert time.monotonic() - stopped_at < 1 + 5
    log = (tmp_path / "worker.log").read_text()
    assert "abandoned on shutdown (exit 143)" in log, log
    assert rows(db, "SELECT status, error FROM etl_job_runs") == [("failed", "stopped by SIGTERM")]

    successor = start([*ETL_WITH_SAMPLE_JOB, "worker", *FAST_GROUP], etl_env, tmp_path / "successor.log")
    try:
        wait_until(lambda: row_count(db, "etl_job_runs") == 2, what="the request, not committed, run again")
    finally:
        successor.send_signal(signal.SIGTERM)
        successor.wait(20)


# --- the structure the code keeps ----------------------------------------------------------------

def test_no_module_under_etl_is_over_400_lines_and_the_worker_under_250():
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (REPO / "etl").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert sizes["etl/worker.py"] < 250


def test_the_worker_uses_no_argparse_internals_stderr_swaps_or_injected_exceptions():
    code = "\n".join((REPO / "etl" / name).read_text(encoding="utf-8") for name in ("worker.py", "worker_kafka.py"))
    for trick in ("_actions", "_AppendAction", "sys.stderr =", "setitimer", "SIGALRM", "etl.__main__"):
        assert trick not in code, trick


def test_commands_open_the_database_through_db_utils_database_not_their_own_connect_and_migrate():
    migrating = {str(p.relative_to(REPO)) for p in (REPO / "etl").rglob("*.py")
                 if "migrate(conn" in p.read_text(encoding="utf-8")}
    assert migrating == {"etl/utils/db_utils.py", "etl/runs.py", "etl/__main__.py"}, \
        "use `with db_utils.database(settings) as conn:` (the run engine and `etl migrate` excepted)"


# --- help that fits each command -----------------------------------------------------------------

def help_of(*argv: str) -> str:
    out = subprocess.run([PYTHON, "-m", "etl", *argv, "--help"], env=process_env({}), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def exit_codes_listed(text: str) -> list[str]:
    section = text.split("exit codes:")[1].split("examples:")[0]
    return re.findall(r"^\s+(\d+)\s", section, re.M)


def test_each_command_lists_only_the_exit_codes_it_can_return_and_examples():
    assert exit_codes_listed(help_of("fetch_historical_market_data")) == ["0", "1", "2", "3", "75", "130", "143"]
    assert exit_codes_listed(help_of("generate_mock_transactions")) == ["0", "1", "2", "75", "130", "143"]
    for command in (["runs"], ["migrate"], ["assets", "list"], ["outbox", "flush"], ["holdings", "rebuild"],
                    ["worker"]):
        text = help_of(*command)
        assert exit_codes_listed(text) == ["0", "1", "2"], command
    assert "examples:\n  etl fetch_historical_market_data --symbols" in help_of("fetch_historical_market_data")


EVERY_COMMAND = (["migrate"], ["assets", "add"], ["assets", "list"], ["assets", "remove"], ["outbox", "flush"],
                 ["runs"], ["status"], ["report"], ["db", "url"], ["db", "stop"], ["holdings", "rebuild"],
                 ["holdings", "value"], ["history", "rebase"], ["worker"])


def test_every_command_and_action_explains_itself_above_its_options():
    for command in EVERY_COMMAND:
        text = help_of(*command)
        description = text.split("\n\n")[1]
        assert not description.startswith(("options:", "positional arguments:")), command
        assert exit_codes_listed(text)[:3] == ["0", "1", "2"], command


def test_status_help_says_exit_1_is_also_what_check_returns_for_an_asset_needing_attention():
    section = help_of("status").split("exit codes:")[1].split("examples:")[0]
    assert "with --check: an asset shown is stale or failing" in section


def test_help_shows_each_options_own_default():
    text = " ".join(help_of("fetch_historical_market_data").split())
    assert "first day of the range (default: ETL_HISTORY_START, else five years before today)" in text
    assert "(default: today)" in text
    assert "(default 12)" in " ".join(help_of("generate_mock_transactions").split())


def test_etl_help_lists_each_command_once():
    text = help_of()
    listed = re.findall(r"^    (\w+)", text, re.M)
    assert len(listed) == len(set(listed)) and set(registry.JOBS) - {"sample_job"} <= set(listed)


def test_a_job_run_in_process_leaves_no_stop_request_or_signal_handler_behind(etl_env, db):
    import signal as signals

    import support.sample_job as sample
    from etl import stopping
    from support.runner import run_etl

    before = signals.getsignal(signals.SIGTERM)
    stopping.request(143)  # as if an earlier in-process run had been stopped
    assert run_etl("sample_job", "--symbols", "A:STOCK") == 0
    assert stopping.requested() is None and signals.getsignal(signals.SIGTERM) is before
    assert sample.JOB.name in registry.JOBS

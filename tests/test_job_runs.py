"""db_utils.job_run, exercised through tests/support/sample_job.py run as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from support.db import row_count, rows, scalar
from support.runner import ETL_VARIABLES, PYTHON, REPO, run_etl_process

SAMPLE_JOB = str(Path(__file__).resolve().parent / "support" / "sample_job.py")
EVENT_FIELDS = {"event_id", "job", "run_id", "status", "started_at", "finished_at", "rows_upserted",
                "symbols", "failed", "params"}


def run_sample(env, *args, timeout=60):
    return run_etl_process([PYTHON, SAMPLE_JOB, *args], env, timeout=timeout)


def start_sample(env, *args) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    full_env.update(env, PYTHONPATH=str(REPO))
    return subprocess.Popen([PYTHON, SAMPLE_JOB, *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until_running(db, timeout=30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_id = scalar(db, "SELECT run_id FROM etl_job_runs WHERE status = 'running'")
        if run_id is not None:
            return run_id
        time.sleep(0.1)
    raise AssertionError("the sample job never recorded a running run")


def runs(db) -> list[tuple]:
    return rows(db, "SELECT status, rows_upserted, symbols_ok, symbols_failed, error FROM etl_job_runs "
                    "ORDER BY run_id")


def outbox_payloads(db) -> list[dict]:
    return [r[0] for r in rows(db, "SELECT payload FROM etl_outbox ORDER BY created_at")]


def test_successful_run_records_success_counts_and_exits_0(etl_env, db):
    result = run_sample(etl_env)
    assert result.returncode == 0, result.stderr
    assert runs(db) == [("success", 2, 2, 0, None)]
    assert row_count(db, "market_data") == 2
    assert "success: 2 ok, 0 failed" in result.stdout


def test_a_runs_duration_covers_the_work_of_its_last_transaction(etl_env, db):
    assert run_sample(etl_env, "--sleep", "1.2").returncode == 0
    assert scalar(db, "SELECT extract(epoch FROM finished_at - started_at) FROM etl_job_runs") >= 1.2


def test_run_with_one_failed_asset_is_partial_and_exits_3(etl_env, db):
    result = run_sample(etl_env, "--fail", "MSFT")
    assert result.returncode == 3, result.stderr
    assert runs(db) == [("partial", 1, 1, 1, None)]
    assert rows(db, "SELECT failures FROM etl_job_runs") == [([{"symbol": "MSFT:STOCK",
                                                               "error": "sample failure as asked"}],)]


def test_run_where_every_asset_failed_is_failed_and_exits_1(etl_env, db):
    result = run_sample(etl_env, "--fail", "AAPL,MSFT")
    assert result.returncode == 1, result.stderr
    assert runs(db) == [("failed", 0, 0, 2, None)]


def test_event_payload_has_every_documented_field(etl_env, db):
    assert run_sample(etl_env, "--fail", "MSFT").returncode == 3
    [event] = outbox_payloads(db)
    assert EVENT_FIELDS <= set(event)
    run_id = scalar(db, "SELECT run_id FROM etl_job_runs")
    assert event["run_id"] == run_id
    assert event["job"] == "sample_job"
    assert event["status"] == "partial"
    assert event["rows_upserted"] == 1
    assert event["symbols"] == ["AAPL:STOCK"]
    assert event["failed"] == [{"symbol": "MSFT:STOCK", "error": "sample failure as asked"}]
    assert event["params"]["fail"] == ["MSFT"]
    assert event["event_id"] == str(scalar(db, "SELECT event_id FROM etl_outbox"))
    assert event["finished_at"] >= event["started_at"]
    assert scalar(db, "SELECT topic FROM etl_outbox") == f"{etl_env['KAFKA_TOPIC_PREFIX']}SAMPLE_JOB_COMPLETE"


def test_exception_in_the_body_rolls_back_its_data_and_writes_no_event(etl_env, db):
    result = run_sample(etl_env, "--raise-after-write")
    assert result.returncode == 1
    assert "sample job told to fail after writing" in result.stderr
    assert "Traceback" not in result.stderr
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == 0
    [(status, rows_upserted, symbols_ok, _failed, error)] = runs(db)
    assert status == "failed"
    assert (rows_upserted, symbols_ok) == (0, 0), "the rolled-back rows were never loaded"
    assert "told to fail" in error


def test_a_run_failing_after_a_checkpoint_is_partial_exits_3_and_announces_what_it_committed(etl_env, db):
    result = run_sample(etl_env, "--checkpoint", "--raise-at", "MSFT")
    assert result.returncode == 3, result.stderr
    assert ("sample_job: stopped after 1 of 2 assets: sample job told to fail at MSFT:STOCK — the 1 are "
            "loaded; run again for the rest") in result.stderr
    assert row_count(db, "market_data") == 1
    [(status, rows_upserted, symbols_ok, symbols_failed, error)] = runs(db)
    assert (status, rows_upserted, symbols_ok, symbols_failed) == ("partial", 1, 1, 1) and "told to fail" in error
    [event] = outbox_payloads(db)
    assert (event["status"], event["symbols"], event["rows_upserted"]) == ("partial", ["AAPL:STOCK"], 1)
    assert event["failed"] == [{"symbol": "MSFT:STOCK", "error": "sample job told to fail at MSFT:STOCK"}]


def test_a_run_failing_before_its_first_checkpoint_exits_1_with_zero_counts_and_no_event(etl_env, db):
    result = run_sample(etl_env, "--checkpoint", "--raise-at", "AAPL")
    assert result.returncode == 1, result.stderr
    assert runs(db) == [("failed", 0, 0, 0, "sample job told to fail at AAPL:STOCK")]
    assert row_count(db, "etl_outbox") == 0


def test_a_connection_lost_after_a_checkpoint_still_announces_what_was_committed(etl_env, db):
    job = start_sample(etl_env, "--checkpoint", "--sleep", "3")
    run_id = wait_until_running(db)
    while row_count(db, "market_data") < 2:
        time.sleep(0.1)
    scalar(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE application_name = 'financial-tracker-etl' AND pid <> pg_backend_pid() "
               "AND datname = current_database()")
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 3, stderr
    assert "stopped after 2 of 2 assets" in stderr
    assert scalar(db, "SELECT status FROM etl_job_runs WHERE run_id = %s", (run_id,)) == "partial"
    [event] = outbox_payloads(db)
    assert (event["status"], event["run_id"], event["rows_upserted"]) == ("partial", run_id, 2)


def test_second_concurrent_run_exits_75_and_writes_nothing(etl_env, db):
    first = start_sample(etl_env, "--sleep", "20")
    try:
        wait_until_running(db)
        second = run_sample(etl_env, "--price", "999")
        assert second.returncode == 75, second.stderr
        [line] = [line for line in second.stderr.splitlines() if "another run holds the lock" in line]
        assert line.count("sample_job") == 1, line
        assert row_count(db, "etl_job_runs") == 1
        assert row_count(db, "market_data") == 0
    finally:
        first.kill()
        first.wait()


def test_run_killed_with_sigkill_is_marked_failed_by_the_next_run(etl_env, db):
    killed = start_sample(etl_env, "--sleep", "60")
    killed_run = wait_until_running(db)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    deadline = time.monotonic() + 15
    while True:
        result = run_sample(etl_env)
        if result.returncode != 75 or time.monotonic() > deadline:
            break
        time.sleep(0.3)  # the server has not yet noticed the dead session holding the lock
    assert result.returncode == 0, result.stderr
    status, error = rows(db, "SELECT status, error FROM etl_job_runs WHERE run_id = %s", (killed_run,))[0]
    assert status == "failed"
    assert "abandoned" in error
    assert row_count(db, "etl_job_runs", "status = 'success'") == 1


def test_data_committed_by_a_run_killed_with_sigkill_is_announced_by_the_next_run(etl_env, db):
    killed = start_sample(etl_env, "--checkpoint", "--sleep", "60")
    killed_run = wait_until_running(db)
    while row_count(db, "market_data") < 2:
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    result = run_until_unlocked(etl_env, "--symbols", "NVDA:STOCK")
    assert result.returncode == 0, result.stderr
    announced = [e for e in outbox_payloads(db) if e["run_id"] == killed_run]
    assert [(e["status"], e["symbols"], e["rows_upserted"]) for e in announced] == \
        [("failed", ["AAPL:STOCK", "MSFT:STOCK"], 2)]
    assert announced[0]["error"].startswith("abandoned")


def test_a_killed_run_that_committed_assets_but_changed_no_rows_is_still_announced(etl_env, db):
    assert run_sample(etl_env).returncode == 0  # the same rows again change nothing: a refetch with nothing new
    killed = start_sample(etl_env, "--checkpoint", "--sleep", "60")
    killed_run = wait_until_running(db)
    deadline = time.monotonic() + 30
    while scalar(db, "SELECT symbols_ok FROM etl_job_runs WHERE run_id = %s", (killed_run,)) < 2:
        assert time.monotonic() < deadline, "the sample job never checkpointed its two assets"
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert run_until_unlocked(etl_env, "--symbols", "NVDA:STOCK").returncode == 0
    announced = [e for e in outbox_payloads(db) if e["run_id"] == killed_run]
    assert [(e["status"], e["symbols"], e["rows_upserted"]) for e in announced] == \
        [("failed", ["AAPL:STOCK", "MSFT:STOCK"], 0)]


def test_an_abandoned_run_that_committed_nothing_is_not_announced(etl_env, db):
    killed = start_sample(etl_env, "--sleep", "60")
    wait_until_running(db)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert run_until_unlocked(etl_env).returncode == 0
    assert [e["status"] for e in outbox_payloads(db)] == ["success"]


def run_until_unlocked(env, *args):
    """Run the sample job until the server has noticed that a killed session no longer holds the lock."""
    deadline = time.monotonic() + 15
    while True:
        result = run_sample(env, *args)
        if result.returncode != 75 or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_dry_run_writes_nothing_and_takes_no_lock(etl_env, db):
    result = run_sample(etl_env, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert row_count(db, "etl_job_runs") == 0
    assert row_count(db, "market_data") == 0
    assert row_count(db, "etl_outbox") == 0


def test_a_connection_lost_mid_run_reports_the_real_cause_in_one_line(etl_env, db):
    job = start_sample(etl_env, "--sleep", "3")
    run_id = wait_until_running(db)
    scalar(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE application_name = 'financial-tracker-etl' AND pid <> pg_backend_pid() "
               "AND datname = current_database()")
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 1
    assert "Traceback" not in stderr
    assert "server closed the connection" in stderr and "connection already closed" not in stderr, stderr
    status, error = rows(db, "SELECT status, error FROM etl_job_runs WHERE run_id = %s", (run_id,))[0]
    assert status == "failed" and "server closed the connection" in error  # recorded on a fresh connection


def test_a_run_that_stopped_answering_is_taken_over_once_its_heartbeat_is_stale(etl_env, db):
    env = {**etl_env, "ETL_STALE_RUN_SECONDS": "3"}
    stuck = start_sample(env, "--sleep", "60")
    try:
        run_id = wait_until_running(db)
        time.sleep(1.5)
        assert scalar(db, "SELECT heartbeat_at > started_at + interval '0.4 s' FROM etl_job_runs "
                          "WHERE run_id = %s", (run_id,))
        os.kill(stuck.pid, signal.SIGSTOP)  # alive, its session and lock too, but no longer answering
        assert run_sample(env).returncode == 75  # its heartbeat is still fresh
        time.sleep(3.5)
        result = run_sample(env)
        assert result.returncode == 0, result.stderr
        assert f"run {run_id} stopped answering" in result.stderr
        status, error = rows(db, "SELECT status, error FROM etl_job_runs WHERE run_id = %s", (run_id,))[0]
        assert status == "failed" and error.startswith("abandoned")
    finally:
        stuck.kill()
        stuck.wait()


def test_a_signal_during_a_long_statement_cancels_it_at_once_and_a_second_one_exits_at_once(etl_env, db):
    for signals, code in (((signal.SIGINT,), 130), ((signal.SIGTERM, signal.SIGTERM), 143)):
        job = start_sample(etl_env, "--sql-sleep", "30")
        wait_for_statement(db, "pg_sleep")
        signalled = time.monotonic()
        for signum in signals:
            job.send_signal(signum)
            time.sleep(0.3)
        _, stderr = job.communicate(timeout=40)
        assert job.returncode == code, stderr
        assert time.monotonic() - signalled < 5, "the statement was not cancelled"
        if len(signals) == 1:
            assert rows(db, "SELECT status, error FROM etl_job_runs ORDER BY run_id DESC LIMIT 1") == [
                ("failed", "interrupted by SIGINT (Ctrl-C)")]


def wait_for_statement(db, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                     "AND pid <> pg_backend_pid()", (f"%{text}%",)) == 0:
        assert time.monotonic() < deadline, f"no statement running {text}"
        time.sleep(0.1)

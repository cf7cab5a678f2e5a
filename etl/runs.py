"""Job runs: each run under its locks, recorded in etl_job_runs, ending with its completion event.

A job's body reports into a `JobRun` (assets done, failed, rows written) and
commits each asset with `checkpoint`; `job_run` records the run's start and end
and writes the event in the same transaction as the run's last data. The run's
outcome comes back to the caller as a `RunResult`.
"""

from __future__ import annotations

import json
import logging
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

import psycopg2
from psycopg2.extras import Json

from etl import registry, stopping
from etl.config import Settings
from etl.errors import (EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EtlError, Interrupted, LockHeldError,
                        StoppedPartwayError)
from etl.registry import Job
from etl.utils import kafka_utils
from etl.utils.db_utils import connect, migrate
from etl.utils.log_utils import redact

log = logging.getLogger(__name__)

ABANDONED = "abandoned: the process ended without finishing (killed or crashed)"


@dataclass(frozen=True)
class RunResult:
    """How a run ended, as a value: what the CLI prints and the worker acts on."""

    job: str
    exit_code: int
    message: str                 # one line: the summary, or the error when `failed_to_run`
    status: str = "success"      # success, partial, failed (as in etl_job_runs)
    rows: int = 0
    ok: int = 0
    failed: int = 0
    run_id: int | None = None
    failed_to_run: bool = False  # an error ended it (the message is that error)


@dataclass
class JobRun:
    """What one run of a job has done so far; the pipeline reports into it."""

    job: str
    settings: Settings
    conn: Any
    params: dict
    dry_run: bool = False
    run_id: int | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    rows_upserted: int = 0
    symbols_ok: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    planned: list[str] | None = None  # every asset the run means to process (`plan`)
    committed: tuple[list[str], int] | None = None  # (symbols_ok, rows_upserted) at the last checkpoint

    def plan(self, symbols: Iterable[str]) -> None:
        """Name the assets this run will process, so a run stopped part-way can list those it did not load."""
        self.planned = list(dict.fromkeys(symbols))

    def checkpoint(self) -> None:
        """Commit what the run has written so far, with that progress in its etl_job_runs row.

        Should the run fail later, `job_run` finishes it as partial and announces
        this much; should the process be killed, the next run of the job announces
        it from the row: committed data is never left unannounced.
        """
        if self.run_id is not None:
            with self.conn.cursor() as cur:
                cur.execute("""
                    UPDATE etl_job_runs
                       SET rows_upserted = %s, symbols_ok = %s, symbols = %s, symbols_failed = %s, failures = %s
                     WHERE run_id = %s""",
                            (self.rows_upserted, len(self.symbols_ok), Json(self.symbols_ok), len(self.failures),
                             Json(self.failures), self.run_id))
        self.conn.commit()
        self.committed = (list(self.symbols_ok), self.rows_upserted)

    def unloaded(self, error: str) -> list[dict]:
        """The failures of a run stopped by `error` after its last checkpoint: those it recorded, then
        every planned asset that was neither committed nor already listed, failed with `error`."""
        committed = set(self.committed[0]) if self.committed else set()
        listed = {failure["symbol"] for failure in self.failures}
        left = [symbol for symbol in self.planned or () if symbol not in committed and symbol not in listed]
        return self.failures + [{"symbol": symbol, "error": error} for symbol in left]

    def succeeded(self, symbol: str, rows: int = 0) -> None:
        self.symbols_ok.append(symbol)
        self.rows_upserted += rows

    def failed(self, symbol: str, error: str) -> None:
        self.failures.append({"symbol": symbol, "error": redact(error)})

    def tally(self) -> tuple[int, int]:
        """(assets done, assets failed) so far, for progress lines."""
        return len(self.symbols_ok), len(self.failures)

    @property
    def status(self) -> str:
        if not self.failures:
            return "success"
        return "partial" if self.symbols_ok else "failed"

    @property
    def exit_code(self) -> int:
        return {"success": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}[self.status]

    def result(self, message: str) -> RunResult:
        """The outcome of this finished run, with its one-line summary."""
        return RunResult(self.job, self.exit_code, message, self.status, self.rows_upserted, len(self.symbols_ok),
                         len(self.failures), self.run_id)

    def event_payload(self, event_id: str, finished_at: datetime) -> dict:
        return {
            "event_id": event_id,
            "job": self.job,
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "rows_upserted": self.rows_upserted,
            "symbols": self.symbols_ok,
            "failed": self.failures,
            "params": self.params,
            **self.extra,
        }


@contextmanager
def job_run(job: Job | str, settings: Settings, params: dict, *, dry_run: bool = False) -> Iterator[JobRun]:
    """Run a job under its advisory lock, recorded in etl_job_runs, ending with its event.

    On a normal exit the run row and the completion event are committed in the same
    transaction as whatever data the job left uncommitted, then the outbox is
    flushed (unless the broker already failed at the start: a dead broker costs a
    run one producer timeout, not two). If the body raises, its uncommitted data is rolled back. A run
    that had committed nothing is marked failed with zero counts and writes no event (the error goes on,
    exit 1). A run that had checkpointed data (`JobRun.checkpoint`) is finished as partial: the committed
    assets are its symbols, every other planned asset is failed with the error, its completion event is
    written, and `StoppedPartwayError` (exit 3) is raised from the error — or, when a signal stopped it,
    `Interrupted` (exit 130 / 143). A dry run takes no lock and writes nothing (only pending migrations
    are applied). `job` is a registry entry or the name of one.
    """
    spec = job if isinstance(job, Job) else registry.job(job)
    conn = connect(settings)
    try:
        migrate(conn, settings.db_schema)
        if dry_run:
            run = JobRun(spec.name, settings, conn, params, dry_run=True)
            try:
                yield run
            finally:
                conn.rollback()
            return
        _, left_pending = kafka_utils.flush_outbox(conn, settings)
        broker_failed = bool(settings.kafka_bootstrap_servers) and left_pending > 0
        if not try_job_lock(conn, settings.db_schema, spec.name):
            raise LockHeldError(f"{spec.name}: another run holds the lock; nothing done "
                                "(normal when runs overlap)")
        try:
            run = _start_run(conn, spec, settings, params)
            try:
                with stopping.cancelling(conn.cancel):
                    yield run
                stopping.check()
                _record_end(conn, run, run.status, None, run.symbols_ok, run.rows_upserted, run.failures,
                            spec.completion_topic)
            except BaseException as exc:
                _rollback_quietly(conn)
                if stopping.requested() is not None and not isinstance(exc, Interrupted):
                    exc = Interrupted(stopping.requested())  # a statement cancelled by the stop request
                stopped = _fail_run(conn, run, exc, spec.completion_topic, broker_failed=broker_failed)
                if isinstance(exc, Interrupted):
                    raise exc from None
                if stopped is not None:
                    raise stopped from exc
                raise
        finally:
            _release_quietly(conn, settings.db_schema, spec.name)
        if broker_failed:
            log.info("%s: Kafka was unreachable at the start of this run; its event waits in etl_outbox "
                     "for the next job or `etl outbox flush`", spec.name)
        else:
            kafka_utils.flush_outbox(conn, settings)
    finally:
        conn.close()


# --- the job's advisory lock -----------------------------------------------------------------

def try_job_lock(conn, schema: str, job: str) -> bool:
    """Take the session-level advisory lock of `job` in `schema`; False if another session holds it."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"{schema}:{job}",))
        locked = cur.fetchone()[0]
    conn.commit()
    return locked


def release_job_lock(conn, schema: str, job: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"{schema}:{job}",))
    conn.commit()


def _rollback_quietly(conn) -> None:
    """Roll back; a connection that already died must not hide the error that killed it."""
    try:
        conn.rollback()
    except psycopg2.Error:
        log.debug("rollback failed: the connection is gone", exc_info=True)


def _release_quietly(conn, schema: str, job: str) -> None:
    """Release the job lock; if the connection died, PostgreSQL released it already."""
    try:
        release_job_lock(conn, schema, job)
    except psycopg2.Error:
        log.debug("could not release the %s lock: the connection is gone", job, exc_info=True)


# --- the run's row and event -----------------------------------------------------------------

def _start_run(conn, spec: Job, settings: Settings, params: dict) -> JobRun:
    """Record a new running run; first mark the job's abandoned runs failed and announce what they committed."""
    job, topic = spec.name, spec.completion_topic
    with conn.cursor() as cur:
        cur.execute("""
            UPDATE etl_job_runs
               SET status = 'failed', finished_at = greatest(now(), started_at), error = %s
             WHERE job = %s AND status = 'running'
         RETURNING run_id, params, started_at, finished_at, rows_upserted, symbols, failures""", (ABANDONED, job))
        abandoned = cur.fetchall()
        if abandoned:
            log.warning("%s: marked %d abandoned run(s) as failed", job, len(abandoned))
        for run_id, run_params, started_at, finished_at, rows, symbols, failures in abandoned:
            if rows or symbols:
                log.warning("%s: announcing the %d asset(s) abandoned run %s had committed", job, len(symbols),
                            run_id)
                kafka_utils.enqueue_event(cur, settings.topic(topic), job, lambda event_id: {
                    "event_id": event_id, "job": job, "run_id": run_id, "status": "failed",
                    "started_at": started_at.isoformat(), "finished_at": finished_at.isoformat(),
                    "rows_upserted": rows, "symbols": symbols, "failed": failures, "params": run_params,
                    "error": ABANDONED})
        cur.execute("""
            INSERT INTO etl_job_runs (job, params, status) VALUES (%s, %s, 'running')
            RETURNING run_id, started_at""", (job, Json(params, dumps=_json_dumps)))
        run_id, started_at = cur.fetchone()
    conn.commit()
    return JobRun(job, settings, conn, params, run_id=run_id, started_at=started_at)


def _fail_run(conn, run: JobRun, exc: BaseException, topic: str, *,
              broker_failed: bool = False) -> StoppedPartwayError | None:
    """Record the end of a run whose body raised; return the error to raise when it had committed data.

    Without a checkpoint nothing is loaded: the run is failed with zero counts and no event. After one,
    the run is partial and its event says what was committed; if the run's own connection is what
    failed, a fresh one records it (and if none can, the row stays running with its progress, which
    the next run announces as abandoned).
    """
    error = redact(str(exc) or type(exc).__name__)
    if run.committed is None:
        try:
            _record_end(conn, run, "failed", error, [], 0, run.failures)
        except psycopg2.Error:
            log.warning("%s: could not record the failure of run %s (the database went away)", run.job, run.run_id)
        return None
    symbols, rows = run.committed
    failures = run.unloaded(error)
    try:
        _record_end(conn, run, "partial", error, symbols, rows, failures, topic)
        if not broker_failed:
            _flush_quietly(conn, run.settings)
    except psycopg2.Error:
        try:
            with closing(connect(run.settings)) as fresh:
                _record_end(fresh, run, "partial", error, symbols, rows, failures, topic)
                if not broker_failed:
                    _flush_quietly(fresh, run.settings)
        except (psycopg2.Error, EtlError):
            log.warning("%s: could not record the end of run %s (the database went away); the next run "
                        "announces what it committed", run.job, run.run_id)
    total = len(dict.fromkeys([*symbols, *(failure["symbol"] for failure in failures)]))
    return StoppedPartwayError(f"stopped after {len(symbols)} of {total} assets: {error} — the {len(symbols)} "
                               "are loaded; run again for the rest")


def _record_end(conn, run: JobRun, status: str, error: str | None, symbols: list[str], rows: int,
                failures: list[dict], topic: str | None = None) -> None:
    """Finish the run row as `status` (with `error`, if any) and commit, in the same transaction as
    whatever data the run left uncommitted; with `topic`, also enqueue its completion event."""
    with conn.cursor() as cur:
        cur.execute("""
            UPDATE etl_job_runs
               SET status = %s, finished_at = clock_timestamp(), rows_upserted = %s, symbols_ok = %s, symbols = %s,
                   symbols_failed = %s, failures = %s, error = %s
             WHERE run_id = %s
         RETURNING finished_at""",
                    (status, rows, len(symbols), Json(symbols), len(failures), Json(failures), error, run.run_id))
        finished = cur.fetchone()
        if topic is not None and finished is not None:
            def payload(event_id: str) -> dict:
                payload = {**run.event_payload(event_id, finished[0]), "status": status, "symbols": symbols,
                           "rows_upserted": rows, "failed": failures}
                return payload if error is None else {**payload, "error": error}

            kafka_utils.enqueue_event(cur, run.settings.topic(topic), run.job, payload)
    conn.commit()


def _flush_quietly(conn, settings: Settings) -> None:
    """Publish what waits in the outbox; on failure it waits for the next run or `etl outbox flush`."""
    try:
        kafka_utils.flush_outbox(conn, settings)
    except Exception:  # the run already failed: its own error is the one to report
        log.warning("could not flush the outbox after the failed run; its event waits in etl_outbox", exc_info=True)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=str)

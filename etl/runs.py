"""Job runs: each run under its locks, recorded in etl_job_runs, ending with its completion event.

A job's body reports into a `JobRun` (assets done, failed, rows written) and
commits each asset with `checkpoint`; `job_run` records the run's start and end
and writes the event in the same transaction as the run's last data. The run's
outcome comes back to the caller as a `RunResult`.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

import psycopg2
from psycopg2.extras import Json

from etl import registry, run_locks, stopping
from etl.config import Settings
from etl.errors import (EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EtlError, Interrupted, LockHeldError,
                        StoppedPartwayError)
from etl.heartbeat import Heartbeat, end_stale_runs
from etl.registry import Job
from etl.utils import kafka_utils
from etl.utils.db_utils import connect, migrate
from etl.utils.db_deadline import DatabaseUnresponsive
from etl.utils.log_utils import one_line, redact

log = logging.getLogger(__name__)

_JSON_DUMPS = partial(json.dumps, default=str)
ABANDONED = "abandoned: the process ended without finishing (killed or crashed)"


@dataclass(frozen=True)
class Batch:
    """The `etl enqueue` batch a run belongs to: given by the worker beside the job's options, never as one."""

    batch_id: str
    chunk: int | None = None


_BATCH: ContextVar[Batch | None] = ContextVar("etl_batch", default=None)


@contextmanager
def in_batch(batch: Batch | None) -> Iterator[None]:
    """Runs started inside this block (in this thread) belong to `batch`."""
    token = _BATCH.set(batch)
    try:
        yield
    finally:
        _BATCH.reset(token)


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
    skipped: list[str] = field(default_factory=list)  # assets another run was working on
    batch: Batch | None = None
    taken: int = 0                    # locks of work items taken (`take`)
    _release: list[str] = field(default_factory=list)  # lock keys to release at the next commit

    def take(self, item: str) -> bool:
        """Lock `item` (an asset's spec, or another unit of the job's work) as its work starts; False when
        another run holds it. Release it with `release_after_commit` once its work is written. A dry run
        takes no lock."""
        return self.take_all([item])[0]

    def take_all(self, items: list[str]) -> list[bool]:
        """`take` of each of `items` in one statement: whether each is now this run's, in order."""
        got = run_locks.try_locks(self.conn, [self._key(i) for i in items]) if self.run_id else [True] * len(items)
        self.taken += sum(got)
        return got

    def release_after_commit(self, item: str) -> None:
        """`item`'s work is written: its lock goes at the next commit (`checkpoint`, or the run's end)."""
        if self.run_id is not None:
            self._release.append(self._key(item))

    def skip(self, symbol: str) -> None:
        """Another run holds this asset: listed under `skipped`, neither done nor failed."""
        self.skipped.append(symbol)

    @property
    def every_asset_held(self) -> bool:
        return bool(self.skipped) and not self.taken

    def _key(self, item: str) -> str:
        return run_locks.work_key(self.settings.db_schema, self.job, item)

    def plan(self, symbols: Iterable[str]) -> None:
        """Name the assets this run will process, so a run stopped part-way can list those it did not load."""
        self.planned = list(dict.fromkeys(symbols))

    def checkpoint(self) -> None:
        """Commit what the run has written so far, with that progress in its etl_job_runs row.

        Should the run fail later, `job_run` finishes it as partial and announces
        this much; should the process be killed, the next run of the job announces
        it from the row: committed data is never left unannounced. Its commit skips the WAL flush wait (README).
        """
        if self.run_id is not None:
            with self.conn.cursor() as cur:
                cur.execute("""SET LOCAL synchronous_commit TO off;
                    UPDATE etl_job_runs
                       SET rows_upserted = %s, symbols_ok = %s, symbols = %s, symbols_failed = %s, failures = %s
                     WHERE run_id = %s""",
                            (self.rows_upserted, len(self.symbols_ok), Json(self.symbols_ok), len(self.failures),
                             Json(self.failures), self.run_id))
        self.conn.commit()
        self.committed = (list(self.symbols_ok), self.rows_upserted)
        if self._release:
            with self.conn.cursor() as cur:
                run_locks.unlock(cur, self._release)
            self._release.clear()

    def unloaded(self, error: str) -> list[dict]:
        """The failures of a run stopped by `error` after its last checkpoint: those it recorded, then
        every planned asset that was neither committed nor already listed, failed with `error`."""
        committed = set(self.committed[0]) if self.committed else set()
        listed = {failure["symbol"] for failure in self.failures} | set(self.skipped)
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
            "skipped": self.skipped,
            **batch_fields(self.batch),
            **self.extra,
        }


def batch_fields(batch: Batch | None) -> dict:
    """What an event says of the batch its run belongs to (nothing for a run not from `etl enqueue`)."""
    return {} if batch is None else {"batch_id": batch.batch_id, "batch_chunk": batch.chunk}


@contextmanager
def job_run(job: Job | str, settings: Settings, params: dict, *, dry_run: bool = False) -> Iterator[JobRun]:
    """Run a job recorded in etl_job_runs, under its own run lock, ending with its event.

    The body locks each unit of work as it starts it (`JobRun.take`, see `run_locks`) and
    lists what other runs hold under `skipped`; a run that could take none of them
    (`JobRun.every_asset_held`) leaves no trace and raises `LockHeldError` (exit 75).
    On a normal exit the run row and the completion event are committed in the same
    transaction as whatever data the job left uncommitted, then the outbox is
    flushed (unless the broker already failed at the start: a dead broker costs a
    run one producer timeout, not two). If the body raises, its uncommitted data is rolled back. A run
    that had committed nothing is marked failed with zero counts and writes no event (the error goes on,
    exit 1). A run that had checkpointed data (`JobRun.checkpoint`) is finished as partial: the committed
    assets are its symbols, every other planned asset is failed with the error, its completion event is
    written, and `StoppedPartwayError` (exit 3) is raised from the error — or, when a signal stopped it,
    `Interrupted` (exit 130 / 143). A dry run takes no lock and writes nothing (only pending migrations
    are applied). `job` is a registry entry or the name of one. A run started inside `in_batch` belongs
    to that batch (recorded on its row and in its event).
    """
    spec = job if isinstance(job, Job) else registry.job(job)
    conn = connect(settings)
    try:
        migrate(conn, settings.db_schema)
        if dry_run:
            run = JobRun(spec.name, settings, conn, params, dry_run=True, batch=_BATCH.get())
            try:
                yield run
            finally:
                conn.rollback()
            return
        _, left_pending = kafka_utils.flush_outbox(conn, settings)
        broker_failed = bool(settings.kafka_bootstrap_servers) and left_pending > 0
        end_stale_runs(conn, settings, spec.name)
        run = _start_run(conn, spec, settings, params, _BATCH.get())
        try:
            with stopping.cancelling(conn.cancel), Heartbeat(settings, run.run_id, connect):
                yield run
            stopping.check()
            if run.every_asset_held:
                raise LockHeldError(f"another run holds the lock of every asset it was asked for "
                                    f"({len(run.skipped)}); nothing done (normal when runs overlap)")
            _record_end(conn, run, run.status, None, run.symbols_ok, run.rows_upserted, run.failures,
                        spec.completion_topic)
        except BaseException as exc:
            _rollback_quietly(conn)
            if isinstance(exc, LockHeldError) and run.committed is None:
                _forget_run(conn, run)
                raise
            if stopping.requested() is not None and not isinstance(exc, Interrupted):
                exc = Interrupted(stopping.requested())  # a statement cancelled by the stop request
            stopped = _fail_run(conn, run, exc, spec.completion_topic, broker_failed=broker_failed)
            if isinstance(exc, Interrupted):
                raise exc from None
            if stopped is not None:
                raise stopped from exc
            raise
        if broker_failed:
            log.info("%s: Kafka was unreachable at the start of this run; its event waits in etl_outbox "
                     "for the next job or `etl outbox flush`", spec.name)
        else:
            kafka_utils.flush_outbox(conn, settings)
    finally:
        conn.close()  # releases the run's locks with its session


def _rollback_quietly(conn) -> None:
    """Roll back; a connection that already died must not hide the error that killed it."""
    try:
        conn.rollback()
    except psycopg2.Error:
        log.debug("rollback failed: the connection is gone", exc_info=True)


def _forget_run(conn, run: JobRun) -> None:
    """Delete the row of a run that could take no asset: like a run refused at the door, it leaves no trace."""
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM etl_job_runs WHERE run_id = %s", (run.run_id,))
        conn.commit()
    except psycopg2.Error:
        log.debug("could not delete run %s: the connection is gone (the next run marks it abandoned)",
                  run.run_id, exc_info=True)


# --- the run's row and event -----------------------------------------------------------------

def _start_run(conn, spec: Job, settings: Settings, params: dict, batch: Batch | None) -> JobRun:
    """Record a new running run holding its own run lock; first mark the job's abandoned runs failed (those
    `running` whose lock is free: their process is gone) and announce what they committed."""
    job, topic = spec.name, spec.completion_topic
    with conn.cursor() as cur:
        cur.execute(f"""
            UPDATE etl_job_runs
               SET status = 'failed', finished_at = greatest(now(), started_at), error = %(error)s
             WHERE job = %(job)s AND status = 'running' AND {run_locks.RUN_LOCK_IS_FREE}
         RETURNING run_id, params, started_at, finished_at, rows_upserted, symbols, failures, batch_id,
                   batch_chunk""", {"error": ABANDONED, "job": job, "schema": settings.db_schema})
        abandoned = cur.fetchall()
        if abandoned:
            log.warning("%s: marked %d abandoned run(s) as failed", job, len(abandoned))
        for run_id, run_params, started_at, finished_at, rows, symbols, failures, batch_id, chunk in abandoned:
            if rows or symbols:
                log.warning("%s: announcing the %d asset(s) abandoned run %s had committed", job, len(symbols),
                            run_id)
                of_batch = batch_fields(Batch(str(batch_id), chunk) if batch_id else None)
                kafka_utils.enqueue_event(cur, settings.topic(topic), job, lambda event_id: {
                    "event_id": event_id, "job": job, "run_id": run_id, "status": "failed",
                    "started_at": started_at.isoformat(), "finished_at": finished_at.isoformat(),
                    "rows_upserted": rows, "symbols": symbols, "failed": failures, "params": run_params,
                    "skipped": [], **of_batch, "error": ABANDONED})
        cur.execute("""
            INSERT INTO etl_job_runs (job, params, status, batch_id, batch_chunk, heartbeat_at)
            VALUES (%s, %s, 'running', %s, %s, now())
            RETURNING run_id, started_at""", (job, Json(params, dumps=_JSON_DUMPS),
                                              batch.batch_id if batch else None, batch.chunk if batch else None))
        run_id, started_at = cur.fetchone()
        run_locks.lock(cur, run_locks.run_key(settings.db_schema, run_id))  # before the row is visible
    conn.commit()
    return JobRun(job, settings, conn, params, run_id=run_id, started_at=started_at, batch=batch)


def _fail_run(conn, run: JobRun, exc: BaseException, topic: str, *,
              broker_failed: bool = False) -> StoppedPartwayError | None:
    """Record the end of a run whose body raised; return the error to raise when it had committed data.

    Without a checkpoint nothing is loaded: the run is failed with zero counts and no event. After one,
    the run is partial and its event says what was committed (see `_record_anyhow`).
    """
    error = one_line(exc, limit=None)
    if run.committed is None:
        _record_anyhow(conn, run, exc, "failed", error, [], 0, run.failures)
        return None
    symbols, rows = run.committed
    failures = run.unloaded(error)
    _record_anyhow(conn, run, exc, "partial", error, symbols, rows, failures, topic, flush=not broker_failed)
    total = len(dict.fromkeys([*symbols, *(failure["symbol"] for failure in failures)]))
    reason = one_line(error.split(" — ")[0], 120)  # what failed; the full text is in the run's row
    return StoppedPartwayError(f"stopped after {len(symbols)} of {total} assets: {reason} — the {len(symbols)} "
                               "are loaded; run again for the rest")


def _record_anyhow(conn, run: JobRun, exc: BaseException, status: str, error: str, symbols: list[str], rows: int,
                   failures: list[dict], topic: str | None = None, *, flush: bool = False) -> None:
    """Record the end of a failed run on its connection or, if that is what failed, on a fresh one (not when
    the server stopped answering: that would only wait again). If neither can, the row stays running with
    its progress, which the next run announces as abandoned."""
    unreachable = isinstance(exc, DatabaseUnresponsive) and not exc.server_reachable
    for attempt in [lambda: conn] + ([] if unreachable else [lambda: connect(run.settings)]):
        try:
            target = attempt()
            try:
                _record_end(target, run, status, error, symbols, rows, failures, topic)
                return _flush_quietly(target, run.settings) if flush else None
            finally:
                if target is not conn:
                    target.close()
        except (psycopg2.Error, EtlError):
            log.debug("could not record the end of run %s on this connection", run.run_id, exc_info=True)
    log.warning("%s: could not record the end of run %s (the database went away); the next run "
                "announces what it committed", run.job, run.run_id)


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

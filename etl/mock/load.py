"""Stream generated rows into a table with one COPY, never holding them all in memory."""

from __future__ import annotations

import io
from typing import Iterable, Iterator, Sequence

from psycopg2 import sql

from etl import stopping

TRANSACTION_COLUMNS = ("account_id", "date", "symbol", "asset_type", "credit", "debit", "unit", "kind", "description")


class _RowReader(io.TextIOBase):
    """A file-like view of rows (tuples of COPY-ready text) for copy_expert, read in chunks."""

    def __init__(self, rows: Iterable[Sequence[str]]):
        self._lines: Iterator[str] = ("\t".join(row) + "\n" for row in rows)
        self._pending = ""
        self.rows = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:
        parts = [self._pending]
        length = len(self._pending)
        for line in self._lines:
            if stopping.requested() is not None:
                break  # end the COPY here; the job's stopping.check() then rolls it all back
            parts.append(line)
            length += len(line)
            self.rows += 1
            if 0 <= size <= length:
                break
        text = "".join(parts)
        if size < 0 or len(text) <= size:
            self._pending = ""
            return text
        self._pending = text[size:]
        return text[:size]


def copy_rows(cur, table: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """COPY `rows` (tuples of COPY text values) into `table`; return how many were loaded."""
    reader = _RowReader(rows)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    cur.copy_expert(statement.as_string(cur), reader, size=1 << 20)
    stopping.check()
    return reader.rows


def copy_transactions(cur, rows: Iterable[Sequence[str]], table: str = "transactions") -> int:
    """Load generated transaction rows (see etl.mock.generator.Row) into `table`."""
    return copy_rows(cur, table, TRANSACTION_COLUMNS, rows)

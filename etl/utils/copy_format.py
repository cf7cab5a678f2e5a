"""Values and rows in PostgreSQL's COPY text format, as `bulk_upsert` and the history writer send them.

A backfill encodes millions of values, so a batch is encoded a column at a time:
a check of the column's types, then for the common ones (Decimals and nulls;
text, dates, integers and UUIDs; datetimes) one pass of C code, each distinct
text or date written once; a column of other types goes through `copy_value`.
A batch whose rows differ in width, or holding a value that cannot be stored (a
float, a NaN), is encoded row after row with `copy_value`, so the text, or the
error and the value it names, is what encoding value by value gives.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence
from uuid import UUID

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NONE = type(None)
_DECIMAL_OR_NULL = frozenset({Decimal, _NONE})
# Types whose equal values are always written alike (not Decimal: 1.0 == 1.00; not bool: True == 1;
# not datetime: equal instants differ in offset), so each distinct value of a column is encoded once.
_WRITTEN_BY_VALUE = frozenset({str, date, int, UUID, _NONE})
_DATETIME_OR_NULL = frozenset({datetime, _NONE})


def copy_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return NULL
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


def copy_buffer(rows: Iterable[Sequence[Any]]) -> io.StringIO:
    """`rows` as COPY text, one line each."""
    rows = rows if isinstance(rows, list) else list(rows)
    text = _by_column(rows)
    return io.StringIO(_by_value(rows) if text is None else text)


def copy_columns(columns: Sequence[Sequence[Any]]) -> str:
    """Columns of one length as COPY text, a line per position: what `copy_buffer` gives for the rows
    they make, without making them (a caller holding its values by column saves two transpositions)."""
    text = _of_columns(columns)
    return _by_value(list(zip(*columns))) if text is None else text


def _by_column(rows: list[Sequence[Any]]) -> str | None:
    """The COPY text of rows of one width, a column at a time; None when they differ in width or hold a
    value that cannot be stored."""
    if not rows:
        return ""
    if len(set(map(len, rows))) != 1 or not rows[0]:
        return None
    return _of_columns(list(zip(*rows)))


def _of_columns(columns: Sequence[Sequence[Any]]) -> str | None:
    """The COPY text of columns of one length; None when one holds a value that cannot be stored."""
    if not columns or not columns[0]:
        return ""
    try:
        texts = [_column_texts(column) for column in columns]
    except Exception:  # the value-by-value encoding raises it again, at the value it comes from
        return None
    if any(text is None for text in texts):
        return None
    return "\n".join(map("\t".join, zip(*texts))) + "\n"


def _column_texts(column: Sequence[Any]) -> list[str] | None:
    """Each value of a column as `copy_value` writes it; None for a Decimal that cannot be stored."""
    if column[0] is None and column.count(None) == len(column):
        return [NULL] * len(column)
    kinds = set(map(type, column))
    if kinds <= _DECIMAL_OR_NULL:
        if _NONE not in kinds:
            return list(map(str, column)) if all(map(Decimal.is_finite, column)) else None
        present = [value for value in column if value is not None]
        if not all(map(Decimal.is_finite, present)):
            return None
        return [NULL if value is None else str(value) for value in column]
    if kinds <= _WRITTEN_BY_VALUE:
        if column[0] == column[-1] and column.count(column[0]) == len(column):  # one symbol, source … for all
            return [copy_value(column[0])] * len(column)
        texts = {value: copy_value(value) for value in set(column)}
        return list(map(texts.__getitem__, column))
    if kinds <= _DATETIME_OR_NULL:  # usually one fetch time: each object written once
        ids = list(map(id, column))
        if len(set(ids)) == 1:
            return [copy_value(column[0])] * len(column)
        texts = {key: copy_value(value) for key, value in dict(zip(ids, column)).items()}
        return list(map(texts.__getitem__, ids))
    return [copy_value(value) for value in column]


def _by_value(rows: list[Sequence[Any]]) -> str:
    """The COPY text of any rows, value after value."""
    return "".join(["\t".join([copy_value(value) for value in row]) + "\n" for row in rows])

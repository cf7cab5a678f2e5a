"""COPY text of a batch encoded a column at a time is the text, or the error, of encoding it value by value.

`copy_buffer` takes a column-wise path for batches of common types; `copy_value`
applied to every value, row after row, is the rule. Hypothesis compares the two
on batches of every kind: text needing escapes, equal instants in different
offsets (and either side of a clock change), Decimals written differently though
equal (1.0, 1.00, -0), values that cannot be stored, rows of different widths.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from etl.utils.copy_format import copy_buffer, copy_columns, copy_value

NEW_YORK = ZoneInfo("America/New_York")
UTC_NOON = datetime(2024, 1, 2, 12, tzinfo=timezone.utc)
# Equal instants written differently, and the two 01:30s of New York's 2024-11-03 (equal, not alike).
INSTANTS = [UTC_NOON, UTC_NOON.astimezone(timezone(timedelta(hours=1))), UTC_NOON.astimezone(NEW_YORK),
            datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK), datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),
            datetime(2024, 1, 2, 12, 0, 0, 1)]
DECIMALS = [Decimal(text) for text in ("1", "1.0", "1.00", "-0", "0", "1E+3", "0.000001230", "12.50",
                                       "123456789012345678901234567890.123")]
CANNOT_BE_STORED = [Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), 1.5, float("nan")]


def reference(rows: list) -> Any:
    """The COPY text of `rows`, value by value, or the error that raises."""
    try:
        return "".join("\t".join(copy_value(value) for value in row) + "\n" for row in rows)
    except Exception as exc:  # the error itself is what is compared
        return type(exc), str(exc)


def encoded(rows: list) -> Any:
    try:
        return copy_buffer(rows).getvalue()
    except Exception as exc:
        return type(exc), str(exc)


common = st.one_of(st.none(), st.sampled_from(DECIMALS), st.decimals(allow_nan=False, allow_infinity=False),
                   st.text(alphabet="ab\t\n\r\\é", max_size=4), st.dates(), st.sampled_from(INSTANTS),
                   st.integers(min_value=-10**20, max_value=10**20), st.sampled_from([UUID(int=5), UUID(int=6)]))
rare = st.one_of(st.booleans(), st.sampled_from(CANNOT_BE_STORED), st.just({"k": [1, "x\t"]}), st.just([]),
                 st.sampled_from([True, 1, 1.0, Decimal(1)]))


@st.composite
def batches(draw) -> list:
    """Rows whose columns each draw their values from one kind of value, now and then another."""
    width = draw(st.integers(min_value=1, max_value=5))
    kinds = [draw(st.sampled_from([common, st.sampled_from(DECIMALS), st.sampled_from(INSTANTS), st.dates()]))
             for _ in range(width)]
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        row = [draw(st.one_of(kind, kind, kind, st.none(), rare)) for kind in kinds]
        rows.append(tuple(row[:draw(st.sampled_from([width] * 9 + [width - 1]))]))
    return rows


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(rows=batches())
def test_a_batch_is_encoded_as_copy_value_encodes_each_value(rows):
    assert encoded(rows) == reference(rows)


@pytest.mark.parametrize("rows", [
    [],
    [(), ()],
    [("AAPL", "STOCK", date(2024, 1, 2), Decimal("1.50"), None, UTC_NOON)] * 3,
    [(Decimal("1"), None), (None, Decimal("1.0"))],
    [(None,), (None,)],
    [(Decimal("1"),), (Decimal("NaN"),)],
    [(Decimal("1"), 1.5), (Decimal("NaN"), 2)],
    [(INSTANTS[3],), (INSTANTS[4],)],
    [(1, True), (True, 1)],
    [(Decimal("1"),), (Decimal("1.0"),), ("x",)],
    [(1,), (Decimal("1.0"),), (None,)],
], ids=["none", "empty rows", "one object per column", "decimals and nulls", "only nulls", "a NaN",
        "the first bad value in row order", "equal instants written apart", "1 and True", "1 and 1.0 beside text",
        "1 and 1.0"])
def test_batches_of_note_are_encoded_as_copy_value_encodes_each_value(rows):
    assert encoded(rows) == reference(rows)


def test_rows_may_come_as_any_iterable_of_sequences():
    rows = [("a", Decimal("1")), ("b", None)]
    assert copy_buffer(iter(rows)).getvalue() == copy_buffer({1: rows[0], 2: rows[1]}.values()).getvalue() \
        == "a\t1\nb\t\\N\n"


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(rows=batches())
def test_columns_are_encoded_as_the_rows_they_make(rows):
    """copy_columns, for a caller that holds its values by column: the text of those rows, or the same
    error at the same value."""
    if not rows or len(set(map(len, rows))) != 1 or not rows[0]:
        return
    columns = [list(column) for column in zip(*rows)]
    try:
        got = copy_columns(columns)
    except Exception as exc:
        got = type(exc), str(exc)
    assert got == reference(rows)

"""Tables on the terminal (rich): aligned columns, no wrapping into the next line when piped.

On a terminal a table fits the window (long cells are cut with …); written to a
pipe or a file each row stays one line, whatever its length, so `grep` and
`awk` see whole rows.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 100_000


def stdout_console() -> Console:
    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, highlight=False, markup=False, width=None if terminal else PIPE_WIDTH)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime") and hasattr(value, "hour"):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                console: Console | None = None) -> None:
    """Print rows under their header; None shows as an empty cell."""
    console = console or stdout_console()
    table = Table(*header, title=title, title_justify="left", box=None, pad_edge=False, header_style="bold",
                  show_edge=False)
    for column in table.columns:
        column.overflow = "ellipsis"
        column.no_wrap = True
    for row in rows:
        table.add_row(*(Text(cell(value)) for value in row))
    with console.capture() as captured:
        console.print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))

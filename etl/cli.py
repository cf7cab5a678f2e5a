"""Shared command-line pieces: the common job options and the error-to-exit-code edge."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from datetime import date
from typing import Callable

import psycopg2

from etl.config import PROVIDER_NAMES, Settings
from etl.errors import EXIT_FAILED, EXIT_USAGE, EtlError
from etl.models import Asset, parse_asset_list
from etl.utils.log_utils import redact, setup_logging

log = logging.getLogger(__name__)

EXIT_CODES_HELP = textwrap.dedent("""\
    exit codes:
      0   every asset done
      1   the job could not run (database unreachable, bad credentials …); nothing half-written
      2   bad arguments or configuration; one line says which
      3   partial: some assets failed (or the run stopped part-way), the rest were loaded; the failures are listed
      75  another run of the same job holds the lock; nothing done
    """)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date like 2024-01-31") from None


def asset_list(text: str) -> list[Asset]:
    try:
        return parse_asset_list(text)
    except EtlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def job_parser(prog: str, doc: str | None, *, date_range: bool = True, symbols: bool = True,
               provider: bool = True,
               dry_run_help: str = "fetch and validate, write nothing") -> argparse.ArgumentParser:
    """A parser with the common options of DESIGN.md; the job's docstring is its description."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if symbols:
        parser.add_argument("--symbols", type=asset_list, metavar="A:TYPE,B:TYPE",
                            help="assets to process, e.g. AAPL:STOCK,BTC:CRYPTO,EUR/USD:FOREX "
                                 "(default: the active assets in the asset table)")
    if date_range:
        parser.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD", help="first day of the range")
        parser.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="last day of the range (default: today)")
    if provider:
        parser.add_argument("--provider", choices=PROVIDER_NAMES,
                            help="use only this provider instead of the configured chain")
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    return parser


def run_cli(prog: str, body: Callable[[Settings], int]) -> int:
    """Read settings, set up logging, run `body`, and turn failures into one line and an exit code.

    A traceback is shown only with LOG_LEVEL=DEBUG.
    """
    try:
        settings = Settings.from_env()
    except EtlError as exc:
        print(f"{prog}: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        return body(settings)
    except EtlError as exc:
        _report(prog, settings, str(exc), exc)
        return exc.exit_code
    except psycopg2.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _report(prog, settings, f"database error: {first_line} — the run's uncommitted writes were "
                                "rolled back; check the database and run again", exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, not a traceback
        _report(prog, settings, f"unexpected {type(exc).__name__}: {exc} — rerun with LOG_LEVEL=DEBUG "
                                "for the traceback and report it", exc)
        return EXIT_FAILED


def _report(prog: str, settings: Settings, message: str, exc: BaseException) -> None:
    if settings.log_level == "DEBUG":
        log.debug("traceback", exc_info=exc)
    print(f"{prog}: {redact(message)}", file=sys.stderr)


__all__ = ["EXIT_USAGE", "asset_list", "iso_date", "job_parser", "run_cli"]

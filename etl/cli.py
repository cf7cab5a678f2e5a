"""Shared command-line pieces: parsers with each command's own help, and the error-to-exit-code edge."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping

import psycopg2

from etl import stopping
from etl.config import PROVIDER_NAMES, Settings
from etl.errors import EXIT_CODE_MEANINGS, EXIT_FAILED, EXIT_USAGE, EtlError, Interrupted, UsageError
from etl.models import Asset, parse_asset_list
from etl.registry import Job
from etl.runs import RunResult
from etl.utils.log_utils import one_line, redact, setup_logging

log = logging.getLogger(__name__)


SUMMARY_LIMIT = 200  # characters of an error's one line on stderr (after the job's name)

COMMAND_EXIT_MEANINGS = {
    0: "done",
    1: "could not be done (database unreachable …); one line says why",
    2: "bad arguments or configuration; one line says which",
}


def help_epilog(exit_codes: Iterable[int], examples: Iterable[str] = (), *, job: bool = False,
                exit_meanings: Mapping[int, str] | None = None) -> str:
    """The end of a command's --help: the exit codes it can return (a job's, or a command's, with what
    `exit_meanings` says a code means for this command), then examples."""
    meanings = {**(EXIT_CODE_MEANINGS if job else COMMAND_EXIT_MEANINGS), **(exit_meanings or {})}
    lines = ["exit codes:"] + [f"  {code:<3} {meanings[code]}" for code in exit_codes]
    examples = list(examples)
    if examples:
        lines += ["", "examples:"] + [f"  {example}" for example in examples]
    return "\n".join(lines) + "\n"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UsageError`s, so the worker can check a request with the
    job's own parser; at the command line `main_of` prints them as argparse would (usage, one line, exit 2)."""

    def __init__(self, *args, exit_codes: Iterable[int] = (0, 1, 2), examples: Iterable[str] = (),
                 job: bool = False, exit_meanings: Mapping[int, str] | None = None, **kwargs):
        kwargs.setdefault("epilog", help_epilog(exit_codes, examples, job=job, exit_meanings=exit_meanings))
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""
    def parse(text: str) -> int:
        digits = text.strip().removeprefix("-")
        if not digits.isdigit() or len(digits) > 30 or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low:,} to {high:,}")
        return int(text)
    return parse


positive_int = whole_number(1, 2**31 - 1)  # a Kafka int32 at most


def seconds(high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds from 0 to `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= high:  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to {high:g}")
        return value
    return parse


FIRST_DAY = date(1900, 1, 1)  # the oldest day any command takes: older is a typo, and breaks date arithmetic


def iso_date(text: str) -> date:
    """An argparse type: an ISO date from 1900-01-01 through tomorrow (UTC)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date like 2024-01-31") from None
    last = latest_day()
    if not FIRST_DAY <= day <= last:
        raise argparse.ArgumentTypeError(f"{text} is outside {FIRST_DAY} … {last} (tomorrow)")
    return day


def latest_day() -> date:
    """Tomorrow in UTC: the newest day a date argument may name (anywhere on Earth it may be today)."""
    return datetime.now(timezone.utc).date() + timedelta(days=1)


def asset_list(text: str) -> list[Asset]:
    try:
        return parse_asset_list(text)
    except EtlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def job_parser(job: Job, doc: str | None, *, date_range: bool = True, symbols: bool = True,
               provider: bool = True, start_default: str = "",
               dry_run_help: str = "fetch and validate, write nothing") -> CommandParser:
    """A job's parser with the common options of DESIGN.md; the job's docstring is its description."""
    parser = CommandParser(prog=job.name, description=doc, exit_codes=job.exit_codes, examples=job.examples,
                           job=True)
    if symbols:
        parser.add_argument("--symbols", type=asset_list, metavar="A:TYPE,B:TYPE",
                            help="assets to process, e.g. AAPL:STOCK,BTC:CRYPTO,EUR/USD:FOREX "
                                 "(default: the active assets in the asset table)")
    if date_range:
        parser.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD",
                            help=f"first day of the range (default: {start_default or 'none'})")
        parser.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="last day of the range (default: today)")
    if provider:
        parser.add_argument("--provider", choices=PROVIDER_NAMES,
                            help="use only this provider instead of the configured chain")
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    return parser


def usage_error(parser: argparse.ArgumentParser, message: str):
    """Print usage and `message` as argparse does, and exit 2."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def parse_or_exit(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse a command line; on a usage error print usage and one line, and exit 2 as argparse does."""
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        usage_error(parser, str(exc).removeprefix(f"{parser.prog}: "))


def job_main(job: Job, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace, Settings], RunResult],
             argv: list[str] | None) -> int:
    """A job's `main`: parse, stop cooperatively on SIGINT/SIGTERM, run, print the outcome, return its exit code."""
    options = parse_or_exit(parser, argv)
    with stopping.handling_signals():
        return run_cli(job.name, lambda settings: run(options, settings))


def run_cli(prog: str, body: Callable[[Settings], int | RunResult]) -> int:
    """Read settings, set up logging, run `body`, print its outcome and return the exit code.

    Failures become one line on stderr; a traceback is shown only with LOG_LEVEL=DEBUG.
    """
    try:
        settings = Settings.from_env()
    except EtlError as exc:
        print(f"{prog}: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    outcome = guarded(prog, lambda: body(settings), debug=settings.log_level == "DEBUG")
    if not isinstance(outcome, RunResult):
        return outcome
    if outcome.failed_to_run:
        print(f"{prog}: {outcome.message}", file=sys.stderr)
    else:
        print(outcome.message)
    return outcome.exit_code


def guarded(job: str, body: Callable[[], int | RunResult], *, debug: bool = False) -> int | RunResult:
    """Run `body`; turn whatever it raises into a `RunResult` carrying one clear line and the exit code."""
    try:
        return body()
    except Interrupted as exc:
        return _failure(job, exc.exit_code, f"{exc}; what was committed stays (see `etl runs`)")
    except KeyboardInterrupt:
        return _failure(job, 130, "interrupted")
    except EtlError as exc:
        return _failure(job, exc.exit_code, str(exc), exc if debug else None)
    except psycopg2.Error as exc:
        return _failure(job, EXIT_FAILED, f"database error: {one_line(exc, 120)} — the run's uncommitted writes "
                                          "were rolled back; check the database and run again", exc if debug else None)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        return _failure(job, EXIT_FAILED, f"unexpected {type(exc).__name__}: {exc} — rerun with LOG_LEVEL=DEBUG "
                                          "for the traceback and report it", exc if debug else None)


def _failure(job: str, exit_code: int, message: str, exc: BaseException | None = None) -> RunResult:
    """One line of at most SUMMARY_LIMIT characters; a longer message is cut, and logged whole at DEBUG."""
    if exc is not None:
        log.debug("traceback", exc_info=exc)
    line = one_line(message, limit=None)
    if len(line) > SUMMARY_LIMIT:
        log.debug("%s: %s", job, line)
        line = one_line(line, SUMMARY_LIMIT)
    return RunResult(job, exit_code, line, status="failed", failed_to_run=True)

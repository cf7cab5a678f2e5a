"""Fetch current quotes for every active STOCK, ETF, CRYPTO and FOREX asset (or --types, or --symbols).

Quotes are requested in batches as large as each provider allows and stored as
today's row of market_data (the quote's trading date). A quote arriving later
the same day replaces the earlier one; an older quote never replaces a newer one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from etl.cli import job_main, job_parser  # noqa: E402
from etl.config import Settings  # noqa: E402
from etl.errors import UsageError  # noqa: E402
from etl.pipeline import quotes, selection  # noqa: E402
from etl.registry import JOBS  # noqa: E402
from etl.runs import RunResult  # noqa: E402

JOB = JOBS["fetch_market_data"]
QUOTE_TYPES = ("STOCK", "ETF", "CRYPTO", "FOREX")


def quote_types(text: str) -> tuple[str, ...]:
    """--types CRYPTO,FOREX: the asset types a schedule line serves (crypto trades every day)."""
    types = tuple(dict.fromkeys(t.strip().upper() for t in text.split(",") if t.strip()))
    unknown = [t for t in types if t not in QUOTE_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {','.join(QUOTE_TYPES)}, comma-separated")
    return types


def build_parser():
    parser = job_parser(JOB, __doc__, date_range=False)
    parser.add_argument("--types", type=quote_types, metavar="TYPE,TYPE",
                        help="only the active assets of these types, e.g. CRYPTO (default: all of "
                             f"{', '.join(QUOTE_TYPES)}); not with --symbols")
    return parser


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(options, settings: Settings) -> RunResult:
    if options.symbols and options.types:
        raise UsageError("--types and --symbols both choose the assets — give one of them")
    return quotes.run_quote_job(JOB.name, options, settings,
                                lambda run: selection.select_assets(run, options.symbols, options.types or QUOTE_TYPES))


if __name__ == "__main__":
    sys.exit(main())

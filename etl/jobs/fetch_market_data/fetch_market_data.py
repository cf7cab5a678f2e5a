"""Fetch current quotes for every active STOCK, ETF, CRYPTO and FOREX asset (or --symbols).

Quotes are requested in batches as large as each provider allows and stored as
today's row of market_data (the quote's trading date). A quote arriving later
the same day replaces the earlier one; an older quote never replaces a newer one.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from etl.cli import job_main, job_parser  # noqa: E402
from etl.config import Settings  # noqa: E402
from etl.pipeline import quotes, selection  # noqa: E402
from etl.registry import JOBS  # noqa: E402
from etl.runs import RunResult  # noqa: E402

JOB = JOBS["fetch_market_data"]
QUOTE_TYPES = ("STOCK", "ETF", "CRYPTO", "FOREX")


def build_parser():
    return job_parser(JOB, __doc__, date_range=False)


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(options, settings: Settings) -> RunResult:
    return quotes.run_quote_job(JOB.name, options, settings,
                                lambda run: selection.select_assets(run, options.symbols, QUOTE_TYPES))


if __name__ == "__main__":
    sys.exit(main())

"""Fetch current quotes for market indices: the active INDEX assets plus MARKET_INDEX_SYMBOLS (or --symbols).

Indices not yet in the asset table are registered with the name the provider
gives. Quotes are requested in batches and stored as today's row of
market_data; an older quote never replaces a newer one.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from etl.cli import job_main, job_parser  # noqa: E402
from etl.config import Settings  # noqa: E402
from etl.models import Asset  # noqa: E402
from etl.pipeline import quotes, selection  # noqa: E402
from etl.registry import JOBS  # noqa: E402
from etl.runs import RunResult  # noqa: E402

JOB = JOBS["fetch_market_index_data"]


def build_parser():
    return job_parser(JOB, __doc__, date_range=False)


def main(argv: list[str] | None = None) -> int:
    return job_main(JOB, build_parser(), run, argv)


def run(options, settings: Settings) -> RunResult:
    def pick_assets(run) -> list[Asset]:
        if options.symbols:
            return selection.select_assets(run, [], (), extra=options.symbols)
        configured = [Asset(symbol, "INDEX") for symbol in settings.market_index_symbols]
        return selection.select_assets(run, None, ("INDEX",), extra=configured)

    return quotes.run_quote_job(JOB.name, options, settings, pick_assets, register_new=True)


if __name__ == "__main__":
    sys.exit(main())

"""Fetch current quotes for market indices: the active INDEX assets plus MARKET_INDEX_SYMBOLS (or --symbols).

Indices not yet in the asset table are registered with the name the provider
gives. Quotes are requested in batches and stored as today's row of
market_data; an older quote never replaces a newer one.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `etl` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from etl.cli import job_parser, run_cli  # noqa: E402
from etl.models import Asset  # noqa: E402
from etl.pipeline import quotes, selection  # noqa: E402
from etl.pipeline.chain import ProviderChain  # noqa: E402
from etl.utils.db_utils import job_run  # noqa: E402

log = logging.getLogger(__name__)

JOB = "fetch_market_index_data"


def build_parser():
    return job_parser(JOB, __doc__, date_range=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(JOB, lambda settings: _run(args, settings))


def _run(args, settings) -> int:
    started = time.monotonic()
    selection.check_named(args.symbols)
    params = {"symbols": [a.spec for a in args.symbols or ()], "provider": args.provider, "dry_run": args.dry_run}
    chain = ProviderChain(settings, args.provider)
    configured = [Asset(symbol, "INDEX") for symbol in settings.market_index_symbols]
    with job_run(JOB, settings, params, dry_run=args.dry_run) as run:
        if args.symbols:
            assets = selection.select_assets(run, [], (), extra=args.symbols)
        else:
            assets = selection.select_assets(run, None, ("INDEX",), extra=configured)
        quotes.load_quotes(run, chain, assets, today=selection.utc_today(), register_new=True)
        run.extra["requests"] = chain.requests_made
    print(selection.summary(JOB, run, chain.requests_made, started))
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())

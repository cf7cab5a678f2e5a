"""Every job of the product, declared once.

The command line (`etl <job>`, `etl --help`), the run engine (the completion
topic of each run), the worker (the request topic of each job), the crontab
check and the README's job table all read `JOBS`. Adding a job is one module
under `etl/jobs/` (with `build_parser()`, `run(options, settings)` and `main`)
plus one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from etl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_TERMINATED, EXIT_USAGE

MARKET_JOB_EXIT_CODES = (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED, EXIT_INTERRUPTED,
                         EXIT_TERMINATED)


@dataclass(frozen=True)
class Job:
    name: str
    module: str                      # importable module with build_parser(), run(options, settings), main(argv)
    request_topic: str               # what `etl worker` consumes for it
    completion_topic: str            # where each run's event goes
    summary: str                     # one line for `etl --help` and the README
    script: str                      # the path users run it by, relative to the repository root
    exit_codes: tuple[int, ...] = MARKET_JOB_EXIT_CODES
    examples: tuple[str, ...] = ()

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


JOBS: dict[str, Job] = {}


def register(job: Job) -> Job:
    """Add `job` (or replace the entry of that name); returns it, so a module can keep its own spec."""
    JOBS[job.name] = job
    return job


def job(name: str) -> Job:
    return JOBS[name]


def by_request_topic() -> dict[str, Job]:
    return {j.request_topic: j for j in JOBS.values()}


register(Job(
    name="fetch_historical_market_data",
    module="etl.jobs.fetch_historical_market_data.fetch_historical_market_data",
    request_topic="HISTORICAL_MARKET_DATA_REQUEST",
    completion_topic="HISTORICAL_MARKET_DATA_COMPLETE",
    summary="daily bars, fetching only the missing date ranges",
    script="etl/jobs/fetch_historical_market_data/fetch_historical_market_data.py",
    examples=("etl fetch_historical_market_data --symbols AAPL:STOCK,BTC:CRYPTO --start 2024-01-01",
              "etl fetch_historical_market_data --plan"),
))
register(Job(
    name="fetch_market_data",
    module="etl.jobs.fetch_market_data.fetch_market_data",
    request_topic="MARKET_DATA_UPDATE_REQUEST",
    completion_topic="MARKET_DATA_UPDATE_COMPLETE",
    summary="live quotes for stocks, ETFs, crypto and forex",
    script="etl/jobs/fetch_market_data/fetch_market_data.py",
    examples=("etl fetch_market_data", "etl fetch_market_data --symbols BTC:CRYPTO,EUR/USD:FOREX --dry-run"),
))
register(Job(
    name="fetch_market_index_data",
    module="etl.jobs.fetch_market_index_data.fetch_market_index_data",
    request_topic="MARKET_INDEX_DATA_UPDATE_REQUEST",
    completion_topic="MARKET_INDEX_DATA_UPDATE_COMPLETE",
    summary="live quotes for market indices",
    script="etl/jobs/fetch_market_index_data/fetch_market_index_data.py",
    examples=("etl fetch_market_index_data", "etl fetch_market_index_data --symbols ^GSPC,^FTSE"),
))
register(Job(
    name="generate_mock_transactions",
    module="etl.jobs.generate_mock_transactions",
    request_topic="MOCK_TRANSACTIONS_REQUEST",
    completion_topic="MOCK_TRANSACTIONS_COMPLETE",
    summary="mock accounts, transactions and holdings",
    script="etl/jobs/generate_mock_transactions.py",
    exit_codes=(EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED, EXIT_TERMINATED),
    examples=("etl generate_mock_transactions --accounts 3 --months 12",
              "etl generate_mock_transactions --account-id 0b6c1b9e-3f7a-4a52-9a0e-1c2d3e4f5a6b --months 1"),
))

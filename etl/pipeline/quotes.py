"""Live quotes (fetch_market_data) and index quotes (fetch_market_index_data).

Quotes are fetched in as few requests as each provider allows (its
`limits.max_batch`), validated, and upserted as the row of their trading date:
a later quote the same day replaces the earlier one, an older one never does.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from datetime import date
from typing import Callable, Sequence

from etl.assets import describe_assets, record_asset_errors, register_assets
from etl.config import Settings
from etl.errors import DeferredError, FatalError
from etl.models import Asset
from etl.pipeline import health, selection, store
from etl.pipeline.budget import DailyBudget
from etl.pipeline.chain import ProviderChain
from etl.pipeline.failures import asset_failure_level
from etl.runs import JobRun, RunResult, job_run
from etl.validate import validate_quotes

log = logging.getLogger(__name__)

LOCK_CHUNK = 200  # assets locked, fetched and committed together (a server's lock table holds a few thousand)


def run_quote_job(job: str, options, settings: Settings, pick_assets: Callable[[JobRun], list[Asset]], *,
                  register_new: bool = False) -> RunResult:
    """The body both quote jobs share: run, pick the assets, load their quotes, sum up."""
    started = time.monotonic()
    selection.check_named(options.symbols)
    params = {"symbols": [a.spec for a in options.symbols or ()], "provider": options.provider,
              "dry_run": options.dry_run}
    if getattr(options, "types", None):
        params["types"] = list(options.types)
    chain = ProviderChain(settings, options.provider)
    with job_run(job, settings, params, dry_run=options.dry_run) as run:
        load_quotes(run, chain, pick_assets(run), today=selection.utc_today(), register_new=register_new)
        run.extra["requests"] = chain.requests_made
    return run.result(selection.summary(job, run, chain.requests_made, started))


def load_quotes(run: JobRun, chain: ProviderChain, assets: Sequence[Asset], *, today: date,
                register_new: bool = False) -> None:
    """Fetch, validate and upsert the quotes of `assets`, reporting each asset into `run`.

    Assets go in chunks of LOCK_CHUNK: each asset of a chunk is locked (one another run
    holds is skipped), the chunk is fetched and written, and committed with its locks
    released before the next; the last chunk is committed with the run's event.
    An asset's empty name, currency, exchange and exchange time zone are filled from
    what its quote says (`describe_assets`: never over a value already there). With
    `register_new` (the index job), assets not yet in `asset` are registered first;
    otherwise they are expected to exist.
    """
    run.extra["dropped_rows"] = 0
    with closing(DailyBudget(run.settings, dry_run=run.dry_run)) as budget, \
            health.recording(run.settings, chain, dry_run=run.dry_run):
        chain.check(assets, budget, store.provider_symbols(run.conn, assets))
        for first in range(0, len(assets), LOCK_CHUNK):
            if first and not run.dry_run:
                run.checkpoint()
            taken = []
            for asset in assets[first:first + LOCK_CHUNK]:
                if run.take(asset.spec):
                    taken.append(asset)
                else:
                    log.info("%s: another run is working on it; skipped", asset.spec)
                    run.skip(asset.symbol)
            if taken:
                _load_chunk(run, chain, taken, today=today, register_new=register_new)
            for asset in taken:
                run.release_after_commit(asset.spec)


def _load_chunk(run: JobRun, chain: ProviderChain, assets: Sequence[Asset], *, today: date,
                register_new: bool) -> None:
    quotes, failures = chain.quotes(assets)
    for asset, error in failures.items():
        if isinstance(error, FatalError):
            raise error
    validated = validate_quotes(quotes, today)
    if validated.dropped:
        log.info("dropped %d quote(s): %s", validated.dropped, dict(validated.reasons))
    run.extra["dropped_rows"] += validated.dropped
    priced = {(q.symbol, q.asset_type) for q in validated.rows}
    by_key = {(a.symbol, a.asset_type): a for a in assets}
    dropped = [a for key, a in by_key.items() if key not in priced and a not in failures]

    if not run.dry_run:
        with run.conn.cursor() as cur:
            if register_new:
                known = store.known_assets(run.conn, assets)
                new = [by_key[key] for key in priced if key not in known]
                if new:
                    register_assets(cur, new)
                    log.info("registered %d asset(s): %s", len(new), ", ".join(a.symbol for a in new))
            named = describe_assets(cur, {(q.symbol, q.asset_type): q.meta for q in validated.rows})
            if named:
                log.info("filled the name, currency, exchange or time zone of %d asset(s) from their quotes", named)
            run.rows_upserted += store.upsert_quotes(cur, validated.rows)
            store.store_learned_symbols(cur, chain.learned_symbols())
            record_asset_errors(cur, {**{by_key[k]: None for k in priced},
                                      **{a: str(e) for a, e in failures.items()}})
    for quote in validated.rows:
        run.succeeded(quote.symbol, 1 if run.dry_run else 0)
    for asset, error in failures.items():
        log.log(asset_failure_level(error), "%s: %s", asset.spec, error)
        run.failed(asset.symbol, str(error))
        if isinstance(error, DeferredError):
            run.extra.setdefault("deferred", []).append(asset.symbol)
    why = {(q.symbol, q.asset_type): f"{q.source}: the quote of {q.symbol}:{q.asset_type} failed validation "
           f"({problem})" for q, problem in validated.rejected}
    for asset in dropped:
        run.failed(asset.symbol, why.get((asset.symbol, asset.asset_type),
                                         f"{asset.spec}: the provider's quote failed validation")
                   + " — it is asked again on the next run")


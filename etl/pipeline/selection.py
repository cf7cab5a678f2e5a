"""What the three market-data jobs share at their edge: the assets to process, the
date range, and the one-line summary."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone
from typing import Sequence

from etl.assets import active_assets, register_assets, stored_assets
from etl.errors import UsageError
from etl.models import Asset
from etl.pipeline import store
from etl.runs import JobRun

log = logging.getLogger(__name__)


def utc_today() -> date:
    """Today for the jobs: the UTC date, whatever the server's time zone."""
    return datetime.now(timezone.utc).date()


def date_range(start: date | None, end: date | None, *, default_start: date, today: date) -> tuple[date, date]:
    """--start/--end with their defaults; a start after the end is a usage error."""
    end = end or today
    start = start or default_start
    if start > end:
        raise UsageError(f"--start {start.isoformat()} is after --end {end.isoformat()} — "
                         "give a start on or before the end")
    return start, end


def check_named(named: Sequence[Asset] | None) -> None:
    for asset in named or ():
        if asset.asset_type == "CASH":
            raise UsageError(f"{asset.spec}: cash has no market data — name STOCK, ETF, CRYPTO, FOREX or INDEX assets")


def select_assets(run: JobRun, named: Sequence[Asset] | None, asset_types: Sequence[str],
                  extra: Sequence[Asset] = ()) -> list[Asset]:
    """The assets of this run: those named with --symbols (registered when new, except in a
    dry run), else the active assets of `asset_types` plus `extra`, completed from the asset table."""
    if named:
        if not run.dry_run:
            known = store.known_assets(run.conn, named)
            new = [a for a in named if (a.symbol, a.asset_type) not in known]
            if new:
                with run.conn.cursor() as cur:
                    register_assets(cur, new)
                run.conn.commit()
                log.info("registered %d new asset(s): %s", len(new), ", ".join(a.spec for a in new))
        return stored_assets(run.conn, named)
    chosen = {(a.symbol, a.asset_type): a for a in active_assets(run.conn, asset_types)}
    for asset in stored_assets(run.conn, extra):
        chosen.setdefault((asset.symbol, asset.asset_type), asset)
    return list(chosen.values())


def without_cooling_off(run: JobRun, assets: Sequence[Asset]) -> list[Asset]:
    """`assets` minus those in their cool-off after an unknown/delisted error (listed in the event)."""
    cooling = store.cooling_off(run.conn, assets)
    if cooling:
        names = sorted(f"{s}:{t}" for s, t in cooling)
        log.info("skipping %d asset(s) in their cool-off after a not-found error (name them with --symbols "
                 "to ask anyway): %s", len(names), ", ".join(names))
        run.extra["cooling_off"] = names
    return [a for a in assets if (a.symbol, a.asset_type) not in cooling]


def summary(job: str, run: JobRun, requests: int, started: float) -> str:
    failed = [f["symbol"] for f in run.failures]
    rows = "rows validated (dry run: nothing written)" if run.dry_run else "rows upserted"
    return (f"{job}: {len(run.symbols_ok)} asset(s) done, {len(failed)} failed"
            + (f" ({', '.join(failed)})" if failed else "")
            + f", {run.rows_upserted} {rows}, {requests} request(s), {time.monotonic() - started:.1f} s")

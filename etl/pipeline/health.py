"""Per-provider health for `etl status`: requests made and errors met, recorded by every run.

The counts go to `provider_health` (one row per provider and UTC day) when a
run's fetching ends, however it ends, on a connection of the recorder's own:
a run whose data is rolled back still leaves what its providers did. A dry run
records nothing, like everything else it does.
"""

from __future__ import annotations

import logging
from contextlib import closing, contextmanager
from typing import Iterator

import psycopg2

from etl.config import Settings
from etl.errors import EtlError
from etl.pipeline.chain import ProviderChain
from etl.utils.db_utils import connect
from etl.utils.log_utils import redact

log = logging.getLogger(__name__)

RECORD = """
    INSERT INTO provider_health AS h (provider, day, requests, errors, last_error, last_error_at)
    SELECT r.provider, (now() AT TIME ZONE 'UTC')::date, r.requests, r.errors, r.last_error, r.last_error_at
      FROM unnest(%s::text[], %s::int[], %s::int[], %s::text[], %s::timestamptz[])
           AS r(provider, requests, errors, last_error, last_error_at)
    ON CONFLICT (provider, day) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        errors = h.errors + EXCLUDED.errors,
        last_error = coalesce(EXCLUDED.last_error, h.last_error),
        last_error_at = coalesce(EXCLUDED.last_error_at, h.last_error_at),
        updated_at = now()"""


@contextmanager
def recording(settings: Settings, chain: ProviderChain, *, dry_run: bool = False) -> Iterator[None]:
    """Record in provider_health what `chain`'s providers did inside the block (requests, errors)."""
    before = chain.requests_by_provider()
    errors_before = dict(chain.errors)
    try:
        yield
    finally:
        if not dry_run:
            made = {name: count - before.get(name, 0) for name, count in chain.requests_by_provider().items()}
            errors = {name: error for name, error in chain.errors.items() if errors_before.get(name) != error}
            record(settings, made, errors)


def record(settings: Settings, requests: dict[str, int], errors: dict) -> None:
    """Add `requests` (provider → count) and `errors` (provider → (when, message)) to today's rows.

    Never raises: health is bookkeeping, and the run's own outcome is what counts.
    """
    names = sorted(name for name in {*requests, *errors} if requests.get(name) or name in errors)
    if not names:
        return
    try:
        with closing(connect(settings, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(RECORD, (names, [requests.get(n, 0) for n in names], [int(n in errors) for n in names],
                                 [redact(errors[n][1]) if n in errors else None for n in names],
                                 [errors[n][0] if n in errors else None for n in names]))
    except (psycopg2.Error, EtlError) as exc:
        log.warning("could not record provider health (%s); the run itself is not affected", exc)

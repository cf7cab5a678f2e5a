"""Each provider's daily request budget, counted in the database across runs and processes.

Free plans cap requests per day (Alpha Vantage 25, Twelve Data 800). Before
each request to a provider with a daily limit (declared in its `Limits`, or
PROVIDER_DAILY_LIMITS), the request's units of the UTC day's budget (one, or
its cost: a Twelve Data /quote of n symbols is n credits) are reserved at once in
`provider_request_budget` by one statement on the budget's own autocommit
connection: concurrent jobs, fetch threads and worker processes share the
count, no row lock is held for the length of a job, and a job that rolls back
its data does not give back requests it really made. A reservation is all or
nothing: a request whose units do not fit what is left is refused before it is
sent. A refused reservation means the day's budget is spent (for that request): `BudgetSpentError`, a QuotaExhaustedError, so
the chain stops asking that provider and defers what only it could give. When
the API itself says its quota is spent, the day is marked spent too, under the
limit then in force: a different limit configured later (PROVIDER_DAILY_LIMITS
after a plan upgrade) lifts the mark, and only the count is checked against it.

The same connection reserves the per-minute turns every process shares
(`rate_bucket`), in dry runs too: they send real requests.

Providers without a daily limit cost no query at all. A dry run reads the day's
count once per provider and counts down in memory: it respects the budget but
writes nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Mapping

from etl.config import Settings
from etl.errors import BudgetSpentError
from etl.pipeline.rate_bucket import RateBucket
from etl.utils.db_utils import connect

log = logging.getLogger(__name__)

RESETS_AT = "00:00 UTC"
UTC_TODAY = "(now() AT TIME ZONE 'UTC')::date"

RESERVE = f"""
    INSERT INTO provider_request_budget AS b (provider, day, requests)
    SELECT %(provider)s, {UTC_TODAY}, %(units)s WHERE %(units)s <= %(limit)s
    ON CONFLICT (provider, day) DO UPDATE SET requests = b.requests + %(units)s, updated_at = now()
     WHERE b.requests + %(units)s <= %(limit)s
       AND (b.spent_at IS NULL OR b.spent_limit IS DISTINCT FROM %(limit)s)
    RETURNING b.requests"""
MARK_SPENT = f"""
    INSERT INTO provider_request_budget AS b (provider, day, spent_at, spent_limit)
    VALUES (%(provider)s, {UTC_TODAY}, now(), %(limit)s)
    ON CONFLICT (provider, day) DO UPDATE
       SET spent_at = CASE WHEN b.spent_limit IS NOT DISTINCT FROM %(limit)s THEN coalesce(b.spent_at, now())
                           ELSE now() END,
           spent_limit = %(limit)s, updated_at = now()"""
LEFT_TODAY = f"""
    SELECT w.provider,
           CASE WHEN b.spent_at IS NOT NULL AND b.spent_limit IS NOT DISTINCT FROM w.per_day THEN 0
                ELSE greatest(w.per_day - coalesce(b.requests, 0), 0) END
      FROM unnest(%(providers)s::text[], %(limits)s::int[]) AS w(provider, per_day)
      LEFT JOIN provider_request_budget b ON b.provider = w.provider AND b.day = {UTC_TODAY}"""


def spent_error(provider: str, per_day: int, units: int = 1) -> BudgetSpentError:
    needs = "" if units == 1 else f" for a request of {units} units"
    return BudgetSpentError(
        f"{provider}: today's budget of {per_day} request(s) is spent{needs} (counted across runs in "
        f"provider_request_budget, or the API said so); it resets at {RESETS_AT} — after a plan upgrade, "
        f"set PROVIDER_DAILY_LIMITS={provider}=N to the new daily limit")


def left_today(conn, per_day: Mapping[str, int]) -> dict[str, int]:
    """Requests left today per provider, from its daily limit and the stored count. Reads only."""
    if not per_day:
        return {}
    with conn.cursor() as cur:
        cur.execute(LEFT_TODAY, {"providers": list(per_day), "limits": list(per_day.values())})
        return dict(cur.fetchall())


class DailyBudget:
    """The daily budgets of one run, on a connection of their own opened at the first reservation."""

    def __init__(self, settings: Settings, *, dry_run: bool = False):
        self.settings = settings
        self.dry_run = dry_run
        self._conn = None
        self._lock = threading.Lock()
        self._dry_left: dict[str, int] = {}

    def for_provider(self, provider: str, per_day: int | None) -> "ProviderBudget | None":
        """What the provider's session reserves through; None when it has no daily limit."""
        return ProviderBudget(self, provider, per_day) if per_day else None

    def reserve(self, provider: str, per_day: int, units: int = 1) -> None:
        """Take `units` of today's budget at once, or none and raise BudgetSpentError."""
        with self._lock:
            if self.dry_run:
                left = self._dry_left.get(provider)
                if left is None:
                    left = left_today(self._connection(), {provider: per_day})[provider]
                if left < units:
                    self._dry_left[provider] = left
                    raise spent_error(provider, per_day, units)
                self._dry_left[provider] = left - units
                return
            with self._connection().cursor() as cur:
                cur.execute(RESERVE, {"provider": provider, "limit": per_day, "units": units})
                reserved = cur.fetchone()
        if reserved is None:
            raise spent_error(provider, per_day, units)
        log.debug("%s: %d unit(s) reserved, %d of %d used today", provider, units, reserved[0], per_day)

    def rate_bucket(self, provider: str, per_minute: float) -> RateBucket:
        """`provider`'s per-minute limit shared by every process, reserved on this budget's connection."""
        return RateBucket(self._connection, self._lock, provider, per_minute)

    def mark_spent(self, provider: str, per_day: int) -> None:
        """The API said today's quota is spent: no run under the same limit asks it again before 00:00 UTC."""
        with self._lock:
            if self.dry_run:
                self._dry_left[provider] = 0
                return
            with self._connection().cursor() as cur:
                cur.execute(MARK_SPENT, {"provider": provider, "limit": per_day})
        log.info("%s: today's budget marked spent (the API said so); it resets at %s", provider, RESETS_AT)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self):
        if self._conn is None:
            self._conn = connect(self.settings, autocommit=True)
        return self._conn


class ProviderBudget:
    """One provider's share of a DailyBudget: what its ProviderSession calls before each request."""

    def __init__(self, budget: DailyBudget, provider: str, per_day: int):
        self.budget = budget
        self.provider = provider
        self.per_day = per_day

    def reserve(self, units: int = 1) -> None:
        self.budget.reserve(self.provider, self.per_day, units)

    def mark_spent(self) -> None:
        self.budget.mark_spent(self.provider, self.per_day)

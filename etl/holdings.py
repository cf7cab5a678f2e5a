"""The holdings update: `holdings` and `holdings_monthly` recomputed from live transactions.

A backend calls `apply_transactions(conn, account_ids)` in the same database
transaction as the inserts (or soft deletes) it has just made; nothing here
commits. Both tables are computed set-based from `transactions` (rows with
`deleted_at` set count for nothing): the new state of the given accounts goes
into temporary tables, is merged into the real ones only where a value differs
(so recomputing a consistent account rewrites no row and keeps `updated_at`),
and rows whose account and asset no longer have live transactions are deleted.

- `holdings`: one row per account and asset with live transactions;
  `total_balance` = Σ(credit − debit), `date` = the newest transaction's date.
- `holdings_monthly`: one row per account, asset and month (first day) from
  the month of the asset's first live transaction through the current month
  (or the month of a later-dated transaction), `total_balance` = the running
  balance at the end of that month, carried forward through quiet months.

`unit` is the unit of the asset's transactions (one unit per asset).

Concurrent updates of one account are serialized: before computing anything,
the update locks the accounts' rows in `accounts` (FOR NO KEY UPDATE, in
account_id order, so two updates never deadlock). A second update of the same
account waits until the first commits, then computes from the transactions
both have written; without the lock each would compute from its own snapshot
and the later merge would overwrite the earlier one. NO KEY UPDATE does not
conflict with the key-share lock a foreign-key check takes, so inserting
transactions is never blocked by an update in progress. A rebuild of every
account locks every account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Iterable
from uuid import UUID

log = logging.getLogger(__name__)

# Serializes updates of the same accounts (see the module docstring); every account with all_accounts.
_LOCK_ACCOUNTS = """
    SELECT 1 FROM accounts
     WHERE %(all_accounts)s OR account_id = ANY(%(ids)s::uuid[])
     ORDER BY account_id
       FOR NO KEY UPDATE
"""

# The accounts being recomputed: the given ids, or (with all_accounts) every account
# that has transactions or holdings.
_SELECT_ACCOUNTS = """
    CREATE TEMP TABLE _holdings_accounts AS
    SELECT DISTINCT account_id FROM unnest(%(ids)s::uuid[]) AS given(account_id)
     WHERE NOT %(all_accounts)s
    UNION
    SELECT account_id FROM transactions WHERE %(all_accounts)s
    UNION
    SELECT account_id FROM holdings WHERE %(all_accounts)s
    UNION
    SELECT account_id FROM holdings_monthly WHERE %(all_accounts)s
"""

_COMPUTE_MONTHLY_NET = """
    CREATE TEMP TABLE _holdings_monthly_net AS
    SELECT t.account_id, t.symbol, t.asset_type,
           date_trunc('month', t.date)::date AS month,
           sum(t.credit - t.debit) AS net,
           max(t.date) AS last_date,
           max(t.unit) AS unit
      FROM transactions t
      JOIN _holdings_accounts a USING (account_id)
     WHERE t.deleted_at IS NULL
     GROUP BY t.account_id, t.symbol, t.asset_type, date_trunc('month', t.date)
"""

_COMPUTE_HOLDINGS = """
    CREATE TEMP TABLE _holdings_new AS
    SELECT account_id, symbol, asset_type, sum(net) AS total_balance, max(unit) AS unit,
           max(last_date) AS date
      FROM _holdings_monthly_net
     GROUP BY account_id, symbol, asset_type
"""

_COMPUTE_HOLDINGS_MONTHLY = """
    CREATE TEMP TABLE _holdings_monthly_new AS
    WITH spans AS (
        SELECT account_id, symbol, asset_type, min(month) AS first_month,
               greatest(max(month), date_trunc('month', coalesce(%(today)s::date, current_date))::date)
                   AS last_month,
               max(unit) AS unit
          FROM _holdings_monthly_net
         GROUP BY account_id, symbol, asset_type
    ), grid AS (
        SELECT s.account_id, s.symbol, s.asset_type, m.month::date AS month, s.unit
          FROM spans s
         CROSS JOIN LATERAL generate_series(s.first_month, s.last_month, interval '1 month') AS m(month)
    )
    SELECT g.account_id, g.symbol, g.asset_type, g.month, g.unit,
           sum(coalesce(n.net, 0)) OVER (PARTITION BY g.account_id, g.symbol, g.asset_type
                                         ORDER BY g.month) AS total_balance
      FROM grid g
      LEFT JOIN _holdings_monthly_net n USING (account_id, symbol, asset_type, month)
"""

_MERGE_HOLDINGS = """
    INSERT INTO holdings (account_id, symbol, asset_type, total_balance, unit, date)
    SELECT account_id, symbol, asset_type, total_balance, unit, date FROM _holdings_new
    ON CONFLICT (account_id, symbol, asset_type) DO UPDATE
       SET total_balance = EXCLUDED.total_balance, unit = EXCLUDED.unit, date = EXCLUDED.date,
           updated_at = now()
     WHERE (holdings.total_balance, holdings.unit, holdings.date)
           IS DISTINCT FROM (EXCLUDED.total_balance, EXCLUDED.unit, EXCLUDED.date)
"""

_DELETE_STALE_HOLDINGS = """
    DELETE FROM holdings h
     USING _holdings_accounts a
     WHERE h.account_id = a.account_id
       AND NOT EXISTS (SELECT 1 FROM _holdings_new n
                        WHERE (n.account_id, n.symbol, n.asset_type) = (h.account_id, h.symbol, h.asset_type))
"""

_MERGE_HOLDINGS_MONTHLY = """
    INSERT INTO holdings_monthly (account_id, symbol, asset_type, month, total_balance, unit)
    SELECT account_id, symbol, asset_type, month, total_balance, unit FROM _holdings_monthly_new
    ON CONFLICT (account_id, symbol, asset_type, month) DO UPDATE
       SET total_balance = EXCLUDED.total_balance, unit = EXCLUDED.unit, updated_at = now()
     WHERE (holdings_monthly.total_balance, holdings_monthly.unit)
           IS DISTINCT FROM (EXCLUDED.total_balance, EXCLUDED.unit)
"""

_DELETE_STALE_HOLDINGS_MONTHLY = """
    DELETE FROM holdings_monthly h
     USING _holdings_accounts a
     WHERE h.account_id = a.account_id
       AND NOT EXISTS (SELECT 1 FROM _holdings_monthly_new n
                        WHERE (n.account_id, n.symbol, n.asset_type, n.month)
                              = (h.account_id, h.symbol, h.asset_type, h.month))
"""

_DROP_WORK_TABLES = ("DROP TABLE IF EXISTS _holdings_accounts, _holdings_monthly_net, _holdings_new, "
                     "_holdings_monthly_new")


@dataclass(frozen=True)
class HoldingsChange:
    """How many rows one recomputation wrote (inserted or changed) and deleted."""

    accounts: int
    holdings_written: int
    holdings_deleted: int
    monthly_written: int
    monthly_deleted: int

    @property
    def unchanged(self) -> bool:
        return not (self.holdings_written or self.holdings_deleted or self.monthly_written or self.monthly_deleted)


def apply_transactions(conn, account_ids: Iterable[UUID | str], *, today: date | None = None) -> HoldingsChange:
    """Recompute `holdings` and `holdings_monthly` of `account_ids` in the caller's transaction.

    `today` fixes the current month (default: the database's current_date).
    """
    ids = [str(a) for a in account_ids]
    return _recompute(conn, ids, all_accounts=False, today=today)


def rebuild_holdings(conn, account_ids: Iterable[UUID | str] | None = None, *,
                     today: date | None = None) -> HoldingsChange:
    """Recompute both tables from `transactions` for `account_ids`, or for every account when None."""
    if account_ids is None:
        return _recompute(conn, [], all_accounts=True, today=today)
    return apply_transactions(conn, account_ids, today=today)


def _recompute(conn, ids: list[str], *, all_accounts: bool, today: date | None) -> HoldingsChange:
    params = {"ids": ids, "all_accounts": all_accounts, "today": today}
    with conn.cursor() as cur:
        cur.execute(_LOCK_ACCOUNTS, params)
        cur.execute(_DROP_WORK_TABLES)
        cur.execute(_SELECT_ACCOUNTS, params)
        accounts = cur.rowcount
        cur.execute("ANALYZE _holdings_accounts")
        cur.execute(_COMPUTE_MONTHLY_NET)
        cur.execute("ANALYZE _holdings_monthly_net")
        cur.execute(_COMPUTE_HOLDINGS)
        cur.execute(_COMPUTE_HOLDINGS_MONTHLY, params)
        cur.execute("ANALYZE _holdings_new; ANALYZE _holdings_monthly_new")
        cur.execute(_MERGE_HOLDINGS)
        holdings_written = cur.rowcount
        cur.execute(_DELETE_STALE_HOLDINGS)
        holdings_deleted = cur.rowcount
        cur.execute(_MERGE_HOLDINGS_MONTHLY)
        monthly_written = cur.rowcount
        cur.execute(_DELETE_STALE_HOLDINGS_MONTHLY)
        monthly_deleted = cur.rowcount
        cur.execute(_DROP_WORK_TABLES)
    change = HoldingsChange(accounts, holdings_written, holdings_deleted, monthly_written, monthly_deleted)
    log.debug("holdings recomputed: %s", change)
    return change


__all__ = ["HoldingsChange", "apply_transactions", "rebuild_holdings"]

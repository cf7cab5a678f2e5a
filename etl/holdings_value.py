"""What each account's holdings were worth at each month's end, in the account's currency.

Reads the view `holdings_monthly_value` (migration 0010), which prices every
`holdings_monthly` row at the as-traded close on or before the month's end and
converts it through the stored forex rates. An account's monthly total is the
sum of its rows in the account's currency, or None when any row could not be
valued: a partial sum would pass for a fall in value. `missing` then says,
per asset, why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Iterable
from uuid import UUID

_MONTHLY_TOTALS = """
    SELECT account_id, month, account_currency,
           CASE WHEN count(*) = count(value_account_currency) THEN sum(value_account_currency) END,
           coalesce(array_agg(symbol || ':' || asset_type || ': ' || missing ORDER BY symbol, asset_type)
                    FILTER (WHERE missing IS NOT NULL), '{}')
      FROM holdings_monthly_value
     WHERE %(all_accounts)s OR account_id = ANY(%(ids)s::uuid[])
     GROUP BY account_id, month, account_currency
     ORDER BY account_id, month
"""


@dataclass(frozen=True)
class MonthlyTotal:
    account_id: UUID
    month: date
    currency: str | None
    total: Decimal | None      # unrounded; None when a row of the month could not be valued
    missing: tuple[str, ...]   # "SYMBOL:TYPE: reason" for each row without a value

    def as_json(self) -> dict:
        return {"account_id": str(self.account_id), "month": self.month.isoformat(), "currency": self.currency,
                "total": None if self.total is None else str(self.total), "missing": list(self.missing)}


def monthly_totals(conn, account_ids: Iterable[UUID | str] | None = None) -> list[MonthlyTotal]:
    """Every month's total of `account_ids` (default: every account), by account then month."""
    ids = [str(a) for a in account_ids or ()]
    with conn.cursor() as cur:
        cur.execute(_MONTHLY_TOTALS, {"ids": ids, "all_accounts": account_ids is None})
        return [MonthlyTotal(UUID(str(account)), month, currency, total, tuple(missing))
                for account, month, currency, total, missing in cur.fetchall()]

"""Splits and dividends the mock accounts live through, read from `corporate_actions`.

An account holding a stock at the start of an ex-date receives the dividend in
cash (amount × units held, rounded half up to the cent) and, for a split, the
extra shares (units × ratio, rounded down to the unit's step; a reverse split
debits the difference), so units held times the as-traded price stays right
across the split. A split and a dividend on the same day: the split first,
since the dividend is quoted as traded that day. A dividend paid in another
currency than the account's cash is left out (with one log line): the cash leg
must be in the cash currency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from etl.models import Asset

log = logging.getLogger(__name__)

_ACTIONS_STATEMENT = """
    SELECT c.symbol, c.asset_type, c.date, c.kind, c.ratio, c.amount, c.currency
      FROM corporate_actions c
      JOIN unnest(%(symbols)s::text[], %(types)s::text[]) AS wanted(symbol, asset_type)
           USING (symbol, asset_type)
     WHERE c.date BETWEEN %(first_day)s AND %(last_day)s
     ORDER BY c.date, c.kind DESC, c.symbol, c.asset_type
"""


@dataclass(frozen=True)
class CorporateAction:
    asset: Asset
    date: date
    kind: str                 # split | dividend
    ratio: Decimal | None     # split: shares after per share before
    amount: Decimal | None    # dividend per share, as traded


def load_corporate_actions(conn, assets: list[Asset], first_day: date, last_day: date,
                           currency: str) -> list[CorporateAction]:
    """The actions of `assets` with ex-dates in [first_day, last_day], in the order they apply."""
    if not assets:
        return []
    index = {(a.symbol, a.asset_type): a for a in assets}
    actions, other_currency = [], []
    with conn.cursor() as cur:
        cur.execute(_ACTIONS_STATEMENT, {"symbols": [a.symbol for a in assets],
                                         "types": [a.asset_type for a in assets],
                                         "first_day": first_day, "last_day": last_day})
        for symbol, asset_type, day, kind, ratio, amount, paid_in in cur:
            asset = index[(symbol, asset_type)]
            if kind == "dividend" and paid_in not in (None, currency):
                other_currency.append(f"{asset.spec} {day} ({paid_in})")
                continue
            actions.append(CorporateAction(asset, day, kind, ratio, amount))
    if other_currency:
        log.info("not paying dividends in another currency than the cash (%s): %s", currency,
                 ", ".join(other_currency))
    return actions


def ratio_text(ratio: Decimal) -> str:
    """4 → '4:1', 0.1 → '1:10', 1.5 → '3:2'."""
    after, before = ratio.as_integer_ratio()
    return f"{after}:{before}"

"""Load one asset's fetched history on the contract of DESIGN.md: prices as traded, every stored
adj_close on the basis of the newest corporate action known.

Everything here runs inside the asset's transaction, so the new `corporate_actions`
rows, the bars and the rebased adjusted closes are committed together or not at all:

1. the bars of split-adjusted providers become prices as traded, through the splits
   already stored plus those the answers report (dividend amounts likewise);
2. the bars are upserted; a bar without an adjusted close keeps the stored one while
   its price is unchanged;
3. new actions are inserted, and every stored adj_close not just refetched from a
   provider that gives adjusted closes is multiplied by their factors (one UPDATE);
   a refetched adjusted close that disagrees with the stored one by more than
   DISAGREEMENT without a known action is logged and rebased the same way;
4. adjusted closes still missing are computed from price and every known action
   (for crypto, forex and indices, which have none, that is the price).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable, Sequence

from etl.models import Asset, Bar, CorporateAction
from etl.pipeline import store
from etl.pipeline.actions import (ONE, as_traded_actions, as_traded_bars, factors_of, segments, split_list)
from etl.providers import provider_class

log = logging.getLogger(__name__)

DISAGREEMENT = Decimal("0.005")


@dataclass(frozen=True)
class Answered:
    """What one provider answered for one span, as the loader needs it."""

    provider: str
    bars: list[Bar]
    actions: list[CorporateAction] = field(default_factory=list)
    checked_actions: bool = False      # the answer reports every action of the asset through today


@dataclass
class Loaded:
    rows: int = 0
    bars: list[Bar] = field(default_factory=list)         # as traded, as upserted
    new_actions: list[CorporateAction] = field(default_factory=list)
    rebased: bool = False
    rebased_rows: int = 0                                  # stored rows whose adj_close was multiplied


def load_asset(cur, asset: Asset, answers: Sequence[Answered], *, fetched_at: datetime, today: date) -> Loaded:
    """Steps 1–4 of the module docstring for `asset`; returns what was written and learned."""
    known = known_actions(cur, asset)
    known_keys = {(a.date, a.kind) for a in known}
    splits = _unique(split_list(known) + [a for answer in answers for a in split_list(answer.actions)])
    loaded = Loaded()
    fresh: dict[date, Decimal] = {}
    reported: list[CorporateAction] = []
    for answer in answers:
        cls = provider_class(answer.provider)
        bars = as_traded_bars(answer.bars, cls.price_basis, splits)
        loaded.bars += bars
        if cls.gives_adj_close:
            fresh.update((bar.date, bar.adj_close) for bar in bars if bar.adj_close is not None)
        reported += as_traded_actions(answer.actions, cls.price_basis, splits)
    loaded.new_actions = sorted((a for a in _unique(reported) if (a.date, a.kind) not in known_keys),
                                key=lambda a: (a.date, a.kind))
    first_stored, reference = stored_reference(cur, asset, fresh)

    loaded.rows = store.upsert_bars(cur, loaded.bars, fetched_at)
    insert_actions(cur, loaded.new_actions)
    closes = previous_closes(cur, asset)
    new_factors = factors_of(loaded.new_actions, closes)
    if reference is not None:
        day, stored_value = reference
        expected = stored_value
        for ex_date, factor in new_factors:
            if ex_date > day:
                expected *= factor
        drift = fresh[day] / expected
        if abs(drift - ONE) > DISAGREEMENT:
            log.warning("%s: the refetched adjusted close of %s (%s) differs from the stored one (%s) by more "
                        "than %s %% with no new corporate action known; older adjusted closes are rebased by the "
                        "same factor", asset.spec, day, fresh[day], expected, DISAGREEMENT * 100)
            new_factors.append((day, drift))
    if new_factors:
        loaded.rebased_rows = rebase(cur, asset, new_factors, exclude=fresh)
        loaded.rebased = first_stored is not None and first_stored < max(day for day, _ in new_factors)
    fill_adj_close(cur, asset, factors_of(known + loaded.new_actions, closes))
    if any(answer.checked_actions for answer in answers):
        mark_checked(cur, asset, today)
    return loaded


def _unique(actions: Iterable[CorporateAction]) -> list[CorporateAction]:
    """One action per (ex-date, kind), the first given winning (the stored one before a reported one)."""
    unique: dict[tuple[date, str], CorporateAction] = {}
    for action in actions:
        unique.setdefault((action.date, action.kind), action)
    return list(unique.values())


def known_actions(cur, asset: Asset) -> list[CorporateAction]:
    cur.execute("""
        SELECT date, kind, source, ratio, amount, currency FROM corporate_actions
         WHERE symbol = %s AND asset_type = %s ORDER BY date, kind""", (asset.symbol, asset.asset_type))
    return [CorporateAction(asset.symbol, asset.asset_type, day, kind, source, ratio, amount, currency)
            for day, kind, source, ratio, amount, currency in cur.fetchall()]


def insert_actions(cur, actions: Sequence[CorporateAction]) -> None:
    if actions:
        cur.execute("""
            INSERT INTO corporate_actions (symbol, asset_type, date, kind, ratio, amount, currency, source)
            SELECT * FROM unnest(%s::text[], %s::text[], %s::date[], %s::text[], %s::numeric[], %s::numeric[],
                                 %s::text[], %s::text[])
            ON CONFLICT (symbol, asset_type, date, kind) DO NOTHING""",
                    ([a.symbol for a in actions], [a.asset_type for a in actions], [a.date for a in actions],
                     [a.kind for a in actions], [a.ratio for a in actions], [a.amount for a in actions],
                     [a.currency for a in actions], [a.source for a in actions]))


def previous_closes(cur, asset: Asset) -> dict[date, Decimal]:
    """The close as traded of the last stored day before each of the asset's dividend ex-dates."""
    cur.execute("""
        SELECT c.date, (SELECT m.price FROM market_data m
                         WHERE m.symbol = c.symbol AND m.asset_type = c.asset_type AND m.date < c.date
                         ORDER BY m.date DESC LIMIT 1)
          FROM corporate_actions c
         WHERE c.symbol = %s AND c.asset_type = %s AND c.kind = 'dividend'""", (asset.symbol, asset.asset_type))
    return {day: close for day, close in cur.fetchall() if close is not None}


def stored_reference(cur, asset: Asset, fresh: dict[date, Decimal]) -> tuple[date | None, tuple[date, Decimal] | None]:
    """The asset's first stored day, and — when stored rows older than the refetched adjusted closes
    exist, so that a disagreement matters — the oldest refetched day with a stored adj_close and that value."""
    cur.execute("""
        SELECT (SELECT min(date) FROM market_data WHERE symbol = %(symbol)s AND asset_type = %(type)s),
               (SELECT ARRAY[date::text, adj_close::text] FROM market_data
                 WHERE symbol = %(symbol)s AND asset_type = %(type)s AND date = ANY(%(fresh)s::date[])
                   AND adj_close IS NOT NULL ORDER BY date LIMIT 1)""",
                {"symbol": asset.symbol, "type": asset.asset_type, "fresh": list(fresh)})
    first, reference = cur.fetchone()
    if first is None or reference is None or not fresh or first >= min(fresh):
        return first, None
    return first, (date.fromisoformat(reference[0]), Decimal(reference[1]))


def rebase(cur, asset: Asset, factors: Sequence[tuple[date, Decimal]], *, exclude: Iterable[date] = ()) -> int:
    """Multiply every stored adj_close of `asset` (but those of the days in `exclude`) by the factors
    (ex-date, factor) dated after it: one set-based UPDATE. Returns the rows changed."""
    ranges = segments(factors)
    if not ranges:
        return 0
    cur.execute("""
        UPDATE market_data m
           SET adj_close = round(m.adj_close * s.factor, 10), updated_at = now()
          FROM unnest(%(froms)s::date[], %(untils)s::date[], %(factors)s::numeric[]) AS s(first, until, factor)
         WHERE m.symbol = %(symbol)s AND m.asset_type = %(type)s
           AND m.date >= s.first AND m.date < s.until AND m.adj_close IS NOT NULL
           AND NOT (m.date = ANY(%(exclude)s::date[]))""", _ranges(asset, ranges, exclude=list(exclude)))
    return cur.rowcount


def fill_adj_close(cur, asset: Asset, factors: Sequence[tuple[date, Decimal]]) -> int:
    """Compute the adj_close of the asset's rows that have none: price times the factors after it."""
    cur.execute("""
        UPDATE market_data m
           SET adj_close = CASE WHEN s.factor = 1 THEN m.price ELSE round(m.price * s.factor, 10) END,
               updated_at = now()
          FROM unnest(%(froms)s::date[], %(untils)s::date[], %(factors)s::numeric[]) AS s(first, until, factor)
         WHERE m.symbol = %(symbol)s AND m.asset_type = %(type)s
           AND m.date >= s.first AND m.date < s.until AND m.adj_close IS NULL""",
                _ranges(asset, segments(factors, complete=True)))
    return cur.rowcount


def _ranges(asset: Asset, ranges: Sequence[tuple[date, date, Decimal]], **extra) -> dict:
    return {"symbol": asset.symbol, "type": asset.asset_type, "froms": [r[0] for r in ranges],
            "untils": [r[1] for r in ranges], "factors": [r[2] for r in ranges], **extra}


def mark_checked(cur, asset: Asset, day: date) -> None:
    """Record that the asset's corporate actions are known through `day`."""
    cur.execute("""
        UPDATE asset SET corporate_actions_checked = %s
         WHERE symbol = %s AND asset_type = %s AND corporate_actions_checked IS DISTINCT FROM %s""",
                (day, asset.symbol, asset.asset_type, day))

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
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from etl.models import Asset, Bar, CorporateAction
from etl.pipeline import bar_rows
from etl.pipeline.actions import (ONE, as_traded_actions, as_traded_bars, factors_of, segments, split_list)
from etl.pipeline.bar_rows import EncodedBars, encode_bars
from etl.pipeline.store import asset_arrays
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
    rows: int = 0                                          # rows written (for a batch: of every asset)
    bars: list[Bar] = field(default_factory=list)         # as traded, as upserted
    new_actions: list[CorporateAction] = field(default_factory=list)
    rebased: bool = False
    rebased_rows: int = 0                                  # stored rows whose adj_close was multiplied
    had_rows: bool = True                                  # the asset had rows stored before this load
    final_moves: bool = False                              # its rows were all new, their changes already final
    filled_rows: int = 0                                   # its rows whose adj_close was computed here


def load_asset(cur, asset: Asset, answers: Sequence[Answered], *, fetched_at: datetime, today: date) -> Loaded:
    """Steps 1–4 of the module docstring for `asset`; returns what was written and learned."""
    return load_assets(cur, [(asset, answers)], fetched_at=fetched_at, today=today)[asset]


def load_assets(cur, items: Sequence[tuple[Asset, Sequence[Answered]]], *, fetched_at: datetime,
                today: date, prepared: Mapping[Asset, EncodedBars] | None = None) -> dict[Asset, Loaded]:
    """Steps 1–4 for several assets in one transaction, each step one statement for all of them (a
    rebase, which is rare, one per asset). Each Loaded's `rows` is the rows written for all of them.
    `prepared`: rows some assets' fetch threads already encoded (`prepare`), used where what is
    stored bears their assumptions out."""
    assets = [asset for asset, _ in items]
    known_by = known_actions_of(cur, assets)
    firsts = first_stored(cur, assets)
    result: dict[Asset, Loaded] = {}
    encoded: dict[tuple[str, str], EncodedBars] = {}
    fresh_by: dict[Asset, dict[date, Decimal]] = {}
    references: dict[Asset, tuple[date, Decimal] | None] = {}
    for asset, answers in items:
        key = (asset.symbol, asset.asset_type)
        known = known_by.get(key, [])
        known_keys = {(a.date, a.kind) for a in known}
        splits = _unique(split_list(known) + [a for answer in answers for a in split_list(answer.actions)])
        loaded = result[asset] = Loaded(had_rows=firsts.get(key) is not None)
        bars, reported = _as_traded(answers, splits)
        loaded.new_actions = sorted((a for a in _unique(reported) if (a.date, a.kind) not in known_keys),
                                    key=lambda a: (a.date, a.kind))
        fill = not loaded.had_rows and not known and not loaded.new_actions
        encoded[key] = _encoded(bars, (prepared or {}).get(asset), splits, fill, fetched_at)
        loaded.bars = encoded[key].bars
        first = firsts.get(key)
        fresh = fresh_by[asset] = given_adj_closes(answers) if first is not None or loaded.new_actions else {}
        older_stored = first is not None and fresh and first < min(fresh)
        references[asset] = stored_reference(cur, asset, fresh) if older_stored else None

    rows, inserted = bar_rows.upsert_bars(cur, encoded, new_assets=[key for key in encoded if key not in firsts])
    by_key = {(asset.symbol, asset.asset_type): loaded for asset, loaded in result.items()}
    for key in inserted:
        loaded = by_key[key]
        loaded.final_moves = all(bar.adj_close is not None for bar in loaded.bars)
    insert_actions(cur, [action for loaded in result.values() for action in loaded.new_actions])
    closes_by = previous_closes_of(cur, [asset for asset in assets if known_by.get((asset.symbol, asset.asset_type))
                                         or result[asset].new_actions])
    fill: dict[Asset, list[tuple[date, Decimal]]] = {}
    for asset in assets:
        loaded, key = result[asset], (asset.symbol, asset.asset_type)
        loaded.rows = rows
        known, closes = known_by.get(key, []), closes_by.get(key, {})
        new_factors = factors_of(loaded.new_actions, closes)
        if (reference := references[asset]) is not None:
            new_factors += _drift(asset, reference, fresh_by[asset], new_factors)
        if new_factors:
            loaded.rebased_rows = rebase(cur, asset, new_factors, exclude=fresh_by[asset])
            loaded.rebased = firsts.get(key) is not None and firsts[key] < max(day for day, _ in new_factors)
        if not loaded.final_moves:
            fill[asset] = factors_of(known + loaded.new_actions, closes)
    for key, filled in fill_adj_closes(cur, fill).items():
        by_key[key].filled_rows = filled
    mark_checked(cur, [asset for asset, answers in items if any(answer.checked_actions for answer in answers)],
                 today)
    return result


def prepare(answers: Sequence[Answered], fetched_at: datetime) -> EncodedBars:
    """One asset's rows encoded ahead of its load (on a fetch thread, without the database), assuming
    the splits its answers report are all that matter and, when they report no action, that none is
    stored: `load_assets` encodes again where what is stored says otherwise."""
    splits = _unique(a for answer in answers for a in split_list(answer.actions))
    bars, reported = _as_traded(answers, splits)
    return _encode(bars, splits, not reported, fetched_at)


def _as_traded(answers: Sequence[Answered], splits: Sequence[CorporateAction]) \
        -> tuple[list[Bar], list[CorporateAction]]:
    """Step 1: the answers' bars as traded, and the actions they reported (amounts as traded)."""
    bars: list[Bar] = []
    reported: list[CorporateAction] = []
    for answer in answers:
        basis = provider_class(answer.provider).price_basis
        bars += as_traded_bars(answer.bars, basis, splits)
        reported += as_traded_actions(answer.actions, basis, splits)
    return bars, reported


def given_adj_closes(answers: Sequence[Answered]) -> dict[date, Decimal]:
    """The adjusted closes the answers' providers gave, by day (conversion as traded leaves them as given).
    Needed only where stored rows or new actions are to be rebased: a new asset without actions has none."""
    return {bar.date: bar.adj_close for answer in answers if provider_class(answer.provider).gives_adj_close
            for bar in answer.bars if bar.adj_close is not None}


def _encoded(bars: list[Bar], guess: EncodedBars | None, splits: Sequence[CorporateAction], fill: bool,
             fetched_at: datetime) -> EncodedBars:
    """`guess` when it was encoded on the same splits and filled the same adjusted closes, else `bars` encoded."""
    if guess is not None and guess.splits == _split_keys(splits) and \
            guess.filled_adj_close == (fill and any(bar.adj_close is None for bar in bars)):
        return guess
    return _encode(bars, splits, fill, fetched_at)


def _encode(bars: list[Bar], splits: Sequence[CorporateAction], fill: bool, fetched_at: datetime) -> EncodedBars:
    """`bars` encoded; with `fill` (nothing stored, no corporate action known) a bar without an adjusted
    close gets its price as one, as step 4 would set it after the upsert: one write of each row, not two."""
    filled = fill and any(bar.adj_close is None for bar in bars)
    if filled:
        bars = [bar if bar.adj_close is not None else replace(bar, adj_close=bar.price) for bar in bars]
    return encode_bars(bars, fetched_at, splits=_split_keys(splits), filled_adj_close=filled)


def _split_keys(splits: Iterable[CorporateAction]) -> frozenset[tuple[date, Decimal]]:
    return frozenset((split.date, split.ratio) for split in splits)


def _drift(asset: Asset, reference: tuple[date, Decimal], fresh: dict[date, Decimal],
           new_factors: Sequence[tuple[date, Decimal]]) -> list[tuple[date, Decimal]]:
    """A refetched adjusted close that disagrees with the stored one (on the day `reference`) by more than
    DISAGREEMENT, after the new actions' factors: the factor to rebase the older ones by too."""
    day, expected = reference
    for ex_date, factor in new_factors:
        if ex_date > day:
            expected *= factor
    drift = fresh[day] / expected
    if abs(drift - ONE) <= DISAGREEMENT:
        return []
    log.warning("%s: the refetched adjusted close of %s (%s) differs from the stored one (%s) by more "
                "than %s %% with no new corporate action known; older adjusted closes are rebased by the "
                "same factor", asset.spec, day, fresh[day], expected, DISAGREEMENT * 100)
    return [(day, drift)]


def _unique(actions: Iterable[CorporateAction]) -> list[CorporateAction]:
    """One action per (ex-date, kind), the first given winning (the stored one before a reported one)."""
    unique: dict[tuple[date, str], CorporateAction] = {}
    for action in actions:
        unique.setdefault((action.date, action.kind), action)
    return list(unique.values())


def known_actions_of(cur, assets: Sequence[Asset]) -> dict[tuple[str, str], list[CorporateAction]]:
    """The stored actions of each of `assets` ((symbol, asset_type) → actions by date and kind)."""
    if not assets:
        return {}
    cur.execute("""
        SELECT symbol, asset_type, date, kind, source, ratio, amount, currency FROM corporate_actions
         WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
         ORDER BY symbol, asset_type, date, kind""", asset_arrays(assets))
    known: dict[tuple[str, str], list[CorporateAction]] = {}
    for symbol, asset_type, day, kind, source, ratio, amount, currency in cur.fetchall():
        known.setdefault((symbol, asset_type), []).append(
            CorporateAction(symbol, asset_type, day, kind, source, ratio, amount, currency))
    return known


def first_stored(cur, assets: Sequence[Asset]) -> dict[tuple[str, str], date]:
    """The first stored day of each of `assets` that has one."""
    if not assets:
        return {}
    cur.execute("""
        SELECT w.symbol, w.asset_type,
               (SELECT min(m.date) FROM market_data m WHERE m.symbol = w.symbol AND m.asset_type = w.asset_type)
          FROM unnest(%s::text[], %s::text[]) AS w(symbol, asset_type)""", asset_arrays(assets))
    return {(symbol, asset_type): first for symbol, asset_type, first in cur.fetchall() if first is not None}


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


def previous_closes_of(cur, assets: Sequence[Asset]) -> dict[tuple[str, str], dict[date, Decimal]]:
    """`previous_closes` of each of `assets`: (symbol, asset_type) → ex-date → close."""
    if not assets:
        return {}
    cur.execute("""
        SELECT c.symbol, c.asset_type, c.date,
               (SELECT m.price FROM market_data m
                 WHERE m.symbol = c.symbol AND m.asset_type = c.asset_type AND m.date < c.date
                 ORDER BY m.date DESC LIMIT 1)
          FROM corporate_actions c
         WHERE (c.symbol, c.asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[])) AND c.kind = 'dividend'""",
                asset_arrays(assets))
    closes: dict[tuple[str, str], dict[date, Decimal]] = {}
    for symbol, asset_type, day, close in cur.fetchall():
        if close is not None:
            closes.setdefault((symbol, asset_type), {})[day] = close
    return closes


def stored_reference(cur, asset: Asset, fresh: dict[date, Decimal]) -> tuple[date, Decimal] | None:
    """The oldest refetched day (of `fresh`) with a stored adj_close, and that value; asked only when the
    asset has stored rows older than the refetched adjusted closes, so that a disagreement matters."""
    cur.execute("""
        SELECT date, adj_close FROM market_data
         WHERE symbol = %s AND asset_type = %s AND date = ANY(%s::date[]) AND adj_close IS NOT NULL
         ORDER BY date LIMIT 1""", (asset.symbol, asset.asset_type, list(fresh)))
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


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


def fill_adj_closes(cur, factors: dict[Asset, Sequence[tuple[date, Decimal]]]) -> dict[tuple[str, str], int]:
    """`fill_adj_close` for several assets in one UPDATE: (symbol, asset_type) → rows filled, where any."""
    ranges = [(asset, r) for asset, of_asset in factors.items() for r in segments(of_asset, complete=True)]
    if not ranges:
        return {}
    cur.execute("""
        UPDATE market_data m
           SET adj_close = CASE WHEN s.factor = 1 THEN m.price ELSE round(m.price * s.factor, 10) END,
               updated_at = now()
          FROM unnest(%s::text[], %s::text[], %s::date[], %s::date[], %s::numeric[])
               AS s(symbol, asset_type, first, until, factor)
         WHERE m.symbol = s.symbol AND m.asset_type = s.asset_type
           AND m.date >= s.first AND m.date < s.until AND m.adj_close IS NULL
        RETURNING m.symbol, m.asset_type""",
                ([a.symbol for a, _ in ranges], [a.asset_type for a, _ in ranges], [r[0] for _, r in ranges],
                 [r[1] for _, r in ranges], [r[2] for _, r in ranges]))
    filled: dict[tuple[str, str], int] = {}
    for key in cur.fetchall():
        filled[key] = filled.get(key, 0) + 1
    return filled


def _ranges(asset: Asset, ranges: Sequence[tuple[date, date, Decimal]], **extra) -> dict:
    return {"symbol": asset.symbol, "type": asset.asset_type, "froms": [r[0] for r in ranges],
            "untils": [r[1] for r in ranges], "factors": [r[2] for r in ranges], **extra}


def mark_checked(cur, assets: Sequence[Asset], day: date) -> None:
    """Record that the corporate actions of `assets` are known through `day`."""
    if assets:
        cur.execute("""
            UPDATE asset SET corporate_actions_checked = %s
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
               AND corporate_actions_checked IS DISTINCT FROM %s""", (day, *asset_arrays(assets), day))

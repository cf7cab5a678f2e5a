"""Gap planning for the historical backfill: which date ranges to request. Pure: no I/O.

A day of [start, end] is *covered* when its row is stored or a fetch ledger
range lists it as an empty day (nothing came back: weekend, holiday, before
listing). Everything not covered is requested, merged into contiguous spans.
Days from `today - lookback_days` on are always re-requested because providers
revise them (late closes, crypto's previous UTC day); anything older is final.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Span:
    """An inclusive range of calendar days."""

    start: date
    end: date

    def __post_init__(self):
        if self.start > self.end:
            raise ValueError(f"span starts after it ends: {self.start} > {self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def recheck_from(today: date, lookback_days: int) -> date:
    """The first day that is still re-checked on every run."""
    return today - timedelta(days=lookback_days)


def plan_spans(start: date, end: date, covered: Iterable[Span], *, today: date, lookback_days: int,
               full_refresh: bool = False, max_history_days: int | None = None) -> list[Span]:
    """The spans of [start, end] to request, in order, as few as contiguity allows.

    `covered` may overlap and be unsorted. Days after `today` are never requested;
    with `max_history_days` days the provider cannot serve are left out.
    """
    end = min(end, today)
    if max_history_days is not None:
        start = max(start, today - timedelta(days=max_history_days - 1))
    if start > end:
        return []
    if full_refresh:
        return [Span(start, end)]
    final_until = recheck_from(today, lookback_days) - ONE_DAY
    spans: list[Span] = []
    cursor = start
    for block in sorted(covered):
        block_end = min(block.end, final_until)
        if block_end < cursor or block.start > block_end:
            continue
        if block.start > end:
            break
        if block.start > cursor:
            spans.append(Span(cursor, min(block.start - ONE_DAY, end)))
        cursor = max(cursor, block_end + ONE_DAY)
        if cursor > end:
            break
    if cursor <= end:
        spans.append(Span(cursor, end))
    return spans


def without(spans: Sequence[Span], taken: Iterable[Span]) -> list[Span]:
    """The days of `spans` outside every span of `taken`, as spans in order."""
    left = sorted(spans)
    for cut in sorted(taken):
        kept = []
        for span in left:
            if cut.end < span.start or cut.start > span.end:
                kept.append(span)
                continue
            if span.start < cut.start:
                kept.append(Span(span.start, cut.start - ONE_DAY))
            if cut.end < span.end:
                kept.append(Span(cut.end + ONE_DAY, span.end))
        left = kept
    return left


EDGE_DAYS = 7


def widened(asset_type: str, first: date, last: date, reach: date | None, today: date) -> tuple[date, date]:
    """The days to ask a provider for when `first`..`last` are wanted: a week more on each side (not
    before the provider's `reach`, not after today), so that weekends and holidays at the edges lie
    between two bars of the answer (`Evidence`). Crypto trades every day: asked as it is."""
    if asset_type == "CRYPTO":
        return first, last
    edge = timedelta(days=EDGE_DAYS)
    return max(first - edge, reach or date.min), max(last, min(last + edge, today))


@dataclass(frozen=True)
class Evidence:
    """What proves days of a span had no trading, besides the bars that came back.

    `answered`: the first and last day of any bar of the answer (it may run wider
    than the span); None for an answer without bars. `stored_before` /
    `stored_after`: whether a row is stored before / after the span. `listed_from`:
    the first trading day the provider states.
    """

    answered: tuple[date, date] | None = None
    stored_before: bool = False
    stored_after: bool = False
    listed_from: date | None = None

    def proves_empty(self, day: date) -> bool:
        if self.listed_from is not None and day < self.listed_from:
            return True
        if self.answered is None:
            return False
        first, last = self.answered
        return (first <= day <= last or (day < first and self.stored_before)
                or (day > last and self.stored_after))


def empty_days(span: Span, returned: Iterable[date], *, today: date, lookback_days: int,
               evidence: Evidence) -> list[date]:
    """The days of `span` that came back with nothing, are final (older than the look-back window)
    and that the answer demonstrably covered (`Evidence`).

    Recorded in the fetch ledger so they are never requested again. An empty answer
    proves nothing alone: its days stay missing, to be asked again. Days inside the
    window are not recorded, so a late-arriving row is still picked up.
    """
    got = set(returned)
    final_until = recheck_from(today, lookback_days) - ONE_DAY
    day, last = span.start, min(span.end, final_until)
    days = []
    while day <= last:
        if day not in got and evidence.proves_empty(day):
            days.append(day)
        day += ONE_DAY
    return days


@dataclass(frozen=True)
class Budget:
    """How a number of requests compares with a provider's limits."""

    provider: str
    requests: int
    per_minute: int | None
    per_day: int | None

    @property
    def minutes(self) -> int | None:
        return math.ceil(self.requests / self.per_minute) if self.per_minute else None

    @property
    def days(self) -> int | None:
        return math.ceil(self.requests / self.per_day) if self.per_day else None

    def describe(self) -> str:
        parts = [f"{self.provider}: {self.requests} request(s)"]
        if self.per_minute:
            parts.append(f"limit {self.per_minute}/min → at least {self.minutes} min")
        else:
            parts.append("no per-minute limit")
        if self.per_day:
            verdict = "fits in one day" if self.requests <= self.per_day else f"needs {self.days} days"
            parts.append(f"limit {self.per_day}/day → {verdict}")
        else:
            parts.append("no daily limit")
        return "; ".join(parts)


def budgets(requests_by_provider: dict[str, int],
            limits: dict[str, tuple[int | None, int | None]]) -> Sequence[Budget]:
    """One Budget per provider with requests, from (per_minute, per_day) limits."""
    return [Budget(name, count, *limits[name]) for name, count in sorted(requests_by_provider.items())]

"""The historical backfill: plan the missing spans per asset, fetch them concurrently, load.

Each asset is locked as its work starts and re-checked against what
overlapping runs fetched meanwhile (`claims`). Fetching runs in a small thread pool (`fetching`), so a
backfill can reach a provider's rate limit despite network latency; every database write happens on the
calling thread.
The assets whose fetch has ended by the time the writer is free are written
together, each step one statement for all of them (`adjust.load_assets`), and
committed with their locks released before the next group is written, so
progress survives a crash: with a slow provider a group is one asset, and when
fetching outruns writing (an API that does not limit) it is as many as are
waiting, at most `fetching.in_flight` of them. An asset's failure stays its own: a
group's other assets are written and succeed. The last group's writes are left
for `job_run` to commit together with the completion event.
What the answers say of each asset (`AnswerMeta`) fills its empty name, currency,
exchange and time zone in the same transaction.

Each request for a stock or ETF reaches back at least to the day its corporate
actions were last checked (`asset.corporate_actions_checked`), so a split on a
day only the quote jobs stored is still learned; an asset never checked with
rows stored (an older release's) has its stored span refetched once.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Sequence

from etl import stopping
from etl.assets import describe_assets, record_asset_errors
from etl.config import PROVIDER_VARIABLES_BY_TYPE
from etl.errors import DeferredError, EtlError, NotFoundError
from etl.models import NO_META, AnswerMeta, Asset
from etl.pipeline import adjust, bar_rows, claims, fetching, health, store
from etl.pipeline.bar_rows import EncodedBars
from etl.pipeline.budget import RESETS_AT, DailyBudget, left_today
from etl.pipeline.chain import ProviderChain, Served, daily_limit, provider_limits
from etl.pipeline.failures import asset_failure_level
from etl.pipeline.plan import Evidence, Span, budgets, empty_days, plan_spans
from etl.providers import provider_class
from etl.runs import JobRun
from etl.utils.log_utils import progress
from etl.validate import Validated, validate_bars

log = logging.getLogger(__name__)

COOL_OFF_DAYS = 7
# A day whose bar fails validation is asked again on later runs while it is this recent (a provider may
# still correct it); older, it is recorded as a day without usable data, so it is not asked every night.
DROPPED_DAY_GRACE_DAYS = 30
FETCH_THREADS = 8


@dataclass(frozen=True)
class AssetPlan:
    asset: Asset
    provider: str | None        # first provider of the chain (for --plan and request budgets)
    spans: list[Span]
    per_minute: int | None = None  # the first provider's request rate (PROVIDER_RATE_LIMITS or declared)
    per_day: int | None = None     # the first provider's daily limit (PROVIDER_DAILY_LIMITS or declared)
    left_today: int | None = None  # what is left of it today (UTC), from provider_request_budget
    unserved: str | None = None    # when no provider of the chain reaches --start: from which day, and what to do
    check_actions: bool = True     # its corporate actions are not known through today yet (or --rebase)


@dataclass(frozen=True)
class Part:
    """One provider's answer for part of a span, and its bars fit to load."""

    served: Served
    validated: Validated

    @property
    def served_days(self) -> set[date]:
        """Days the provider returned a bar for, valid or not."""
        return {bar.date for bar in self.served.bars}


@dataclass
class Fetched:
    """What the fetch of one asset brought back, part by part."""

    asset: Asset
    parts: list[Part] = field(default_factory=list)
    error: EtlError | None = None
    encoded: EncodedBars | None = None   # its rows encoded ahead of the load (adjust.prepare)


def plan_assets(conn, assets: Sequence[Asset], chain: ProviderChain, *, start: date, end: date, today: date,
                lookback_days: int, full_refresh: bool, rebase: bool = False) -> list[AssetPlan]:
    """The spans each asset needs, from what is stored and what the ledger knows. No network.

    With `rebase`, each asset's whole stored span (through today) instead, to learn its
    corporate actions and restore its prices as traded and its adjusted closes.
    """
    covered = {} if full_refresh else store.covered_spans(conn, assets, start, end)
    checked = store.actions_checked(conn, assets)
    firsts = [(asset, (chain.candidates(asset) or [None])[0]) for asset in assets]
    per_day = {name: limit for name in {first for _, first in firsts} - {None}
               if (limit := daily_limit(name, chain.settings))}
    left = left_today(conn, per_day)
    plans = []
    for asset, first in firsts:
        limits = provider_limits(first) if first else None
        per_minute = chain.settings.rate_limit(first, limits.per_minute) if limits else None
        deepest = deepest_history(chain.candidates(asset), asset.asset_type)
        key = (asset.symbol, asset.asset_type)
        spans = plan_spans(start, end, covered.get(key, []), today=today,
                           lookback_days=lookback_days, full_refresh=full_refresh, max_history_days=deepest)
        checked_on, first_stored = checked.get(key, (None, None))
        if first and provider_class(first).asks_actions(asset.asset_type, chain.settings):
            spans = reach_back(spans, checked_on, first_stored, today=today, rebase=rebase)
        elif rebase:
            spans = []
        served_from = None if deepest is None else today - timedelta(days=deepest - 1)
        unserved = too_deep(asset, served_from, chain.override) if served_from and served_from > start else None
        if unserved:
            log.warning("%s", unserved)
        plans.append(AssetPlan(asset, first, spans, per_minute, per_day.get(first), left.get(first), unserved,
                               check_actions=rebase or checked_on is None or checked_on < today))
    return plans


def reach_back(spans: list[Span], checked: date | None, first_stored: date | None, *, today: date,
               rebase: bool = False) -> list[Span]:
    """`spans` with the newest one reaching back to the day the asset's corporate actions were last
    checked, or — never checked — to its first stored day; no span is added for that alone. With
    `rebase`, the whole stored span through today."""
    if rebase:
        return [Span(first_stored, today)] if first_stored else []
    reach = checked if checked is not None else first_stored
    if spans and reach is not None and reach < spans[-1].start:
        return spans[:-1] + [Span(reach, spans[-1].end)]
    return spans


def too_deep(asset: Asset, served_from: date, override: str | None) -> str:
    """What to say when no provider of `asset`'s chain serves history as old as the requested start."""
    remedy = ("pass --provider with one that serves them" if override else
              f"add a provider that serves them to {PROVIDER_VARIABLES_BY_TYPE.get(asset.asset_type, '*_PROVIDERS')}")
    return (f"{asset.spec}: no provider of its chain serves history before {served_from}, so it is fetched from "
            f"{served_from} on — for older days, {remedy}")


def deepest_history(names: Sequence[str], asset_type: str) -> int | None:
    """How far back any of the providers `names` serves `asset_type`, in days; None when one has no limit.

    The chain asks the deeper providers for what the first cannot serve, so only
    days that no candidate reaches are left out of the plan.
    """
    depths = [provider_class(name).history_depth(asset_type) for name in names]
    if not depths or None in depths:
        return None
    return max(depths)


def describe_plan(plans: Sequence[AssetPlan]) -> list[str]:
    """The lines --plan prints: each request, then the totals against each provider's limits."""
    lines = []
    requests: Counter = Counter()
    per_minute: dict[str, int | None] = {}
    per_day: dict[str, tuple[int | None, int | None]] = {}
    for plan in plans:
        if not plan.spans:
            lines.append(f"{plan.asset.spec}: up to date")
        if plan.unserved:
            lines.append(plan.unserved)
        for span in plan.spans:
            lines.append(f"{plan.asset.spec}: {plan.provider or 'no provider'} {span} ({span.days} days)")
            if plan.provider:
                requests[plan.provider] += 1
                per_minute[plan.provider] = plan.per_minute
                per_day[plan.provider] = (plan.per_day, plan.left_today)
    limits = {name: (per_minute[name], per_day[name][0]) for name in requests}
    lines += [budget.describe() for budget in budgets(dict(requests), limits)]
    for name, (limit, left) in sorted(per_day.items()):
        if limit is not None and left is not None:
            over = requests[name] - left
            lines.append(f"{name}: {left} of {limit} request(s) left today (resets {RESETS_AT})"
                         + (f"; {over} would be deferred to a later run" if over > 0 else ""))
    lines.append(f"total: {sum(requests.values())} request(s) for {len(plans)} asset(s)")
    return lines


def fetch_asset(chain: ProviderChain, plan: AssetPlan, *, today: date,
                fetched_at: datetime | None = None) -> Fetched:
    """Fetch every span of one asset and, given `fetched_at`, encode its rows for the load (runs on a
    worker thread; no database access)."""
    fetched = Fetched(plan.asset)
    for span in plan.spans:
        checked = any(part.served.answer.checked_actions for part in fetched.parts)
        parts, error = chain.history_parts(plan.asset, span.start, span.end, today=today,
                                           actions=plan.check_actions and not checked)
        for served in parts:
            fetched.parts.append(Part(served, validate_bars(served.bars, served.span.start, served.span.end, today)))
        if error is not None:
            fetched.error = error
            break
    if fetched_at is not None and fetched.parts:
        fetched.encoded = adjust.prepare(_answered(fetched), fetched_at)
    return fetched


def _answered(fetched: Fetched) -> list[adjust.Answered]:
    return [adjust.Answered(part.served.provider, part.validated.rows, part.served.answer.actions,
                            part.served.answer.checked_actions) for part in fetched.parts]


def backfill(run: JobRun, chain: ProviderChain, plans: Sequence[AssetPlan], *, today: date,
             lookback_days: int, threads: int = FETCH_THREADS) -> None:
    """Fetch and load every planned asset, reporting each into `run`."""
    fetched_at = datetime.now(timezone.utc)
    run.plan(plan.asset.symbol for plan in plans)
    todo = [plan for plan in plans if plan.spans]
    for plan in plans:
        if not plan.spans:
            run.succeeded(plan.asset.symbol, 0)
    run.extra.setdefault("dropped_rows", 0)
    run.extra.setdefault("deferred", [])
    run.extra.setdefault("corporate_actions", [])
    run.extra.setdefault("rebased", [])
    if not todo:
        return
    first_write = True
    with closing(DailyBudget(run.settings, dry_run=run.dry_run)) as budget, \
            health.recording(run.settings, chain, dry_run=run.dry_run), fetching.switching_every():
        assets = [plan.asset for plan in todo]
        chain.check(assets, budget, store.provider_symbols(run.conn, assets))
        fetch = functools.partial(fetch_asset, chain, today=today, fetched_at=None if run.dry_run else fetched_at)
        with closing(fetching.fetch_all(fetch, claims.Claims(run, todo).draw, len(todo), threads=threads)) as results:
            for group in progress(results, len(todo), "historical backfill", log=log, tally=run.tally, size=len):
                stopping.check()
                if not run.dry_run and not first_write:
                    run.checkpoint()
                first_write = False
                _load(run, group, fetched_at=fetched_at, today=today, lookback_days=lookback_days)
                for fetched in group:
                    run.release_after_commit(fetched.asset.spec)
    if not run.dry_run:
        with run.conn.cursor() as cur:
            store.store_learned_symbols(cur, chain.learned_symbols())


def unusable_days(served_days: set[date], validated: Validated, *, today: date) -> set[date]:
    """Days whose bar was dropped and that are older than DROPPED_DAY_GRACE_DAYS: final, like an empty day.

    A dropped day inside the grace window stays missing and is asked again (from any provider).
    """
    valid = {bar.date for bar in validated.rows}
    final_before = today - timedelta(days=DROPPED_DAY_GRACE_DAYS)
    return {day for day in served_days - valid if day < final_before}


def _load(run: JobRun, group: Sequence[Fetched], *, fetched_at: datetime, today: date,
          lookback_days: int) -> None:
    """Write what `group`'s fetches brought (set-based, for all of them) and report each asset into `run`."""
    log.debug("writing %d asset(s) together", len(group))
    rows = {fetched.asset: _count(run, fetched) for fetched in group}
    with run.conn.cursor() as cur:
        answered = [fetched for fetched in group if fetched.parts]
        if not run.dry_run and answered:
            loaded = adjust.load_assets(cur, [(fetched.asset, _answered(fetched)) for fetched in answered],
                                        fetched_at=fetched_at, today=today,
                                        prepared={f.asset: f.encoded for f in answered if f.encoded is not None})
            run.rows_upserted += next(iter(loaded.values())).rows
            moved = []
            for fetched in answered:
                done = loaded[fetched.asset]
                _report_actions(run, fetched.asset, done)
                changed = [bar.date for bar in done.bars] + [action.date for action in done.new_actions]
                if changed and not done.final_moves:
                    moved.append((fetched.asset, min(changed), max(changed)))
            store.record_fetches(cur, _ledger(cur, answered, today=today, lookback_days=lookback_days), run.run_id)
            bar_rows.fill_history_changes(cur, moved, today=today)
            described = {(f.asset.symbol, f.asset.asset_type): meta for f in answered
                         if not (meta := answers_meta(f.parts)).empty}
            if described:
                describe_assets(cur, described)
        errors: dict[Asset, str | None] = {}
        for fetched in group:
            asset, error = fetched.asset, fetched.error
            if error is None:
                run.succeeded(asset.symbol, rows[asset] if run.dry_run else 0)
                errors[asset] = None
                continue
            log.log(asset_failure_level(error), "%s: %s", asset.spec, error)
            run.failed(asset.symbol, str(error))
            if isinstance(error, DeferredError):
                run.extra["deferred"].append(asset.symbol)
            errors[asset] = str(error)
        if not run.dry_run:
            record_asset_errors(cur, errors)
            store.clear_cool_off(cur, [asset for asset, error in errors.items() if error is None])
            store.set_cool_off(cur, [f.asset for f in group if isinstance(f.error, NotFoundError)], COOL_OFF_DAYS)


def answers_meta(parts: Sequence[Part]) -> AnswerMeta:
    """What the answers said of the asset, each field from the first answer that carries it."""
    return functools.reduce(AnswerMeta.or_else, (part.served.answer.meta for part in parts), NO_META)


def _count(run: JobRun, fetched: Fetched) -> int:
    """The rows `fetched` brought that are fit to load; what was dropped is logged and counted in `run`."""
    rows = 0
    for part in fetched.parts:
        validated, provider, span = part.validated, part.served.provider, part.served.span
        if validated.dropped:
            run.extra["dropped_rows"] += validated.dropped
            log.info("%s: dropped %d of %d bars from %s for %s (%s)", fetched.asset.spec, validated.dropped,
                     len(validated.rows) + validated.dropped, provider, span, dict(validated.reasons))
        if part.served.answer.answered is None:
            log.warning("%s: %s answered %s with no bars at all; no day of it is recorded as having no "
                        "trading, so the next run asks again", fetched.asset.spec, provider, span)
        rows += len(validated.rows)
    return rows


def _ledger(cur, group: Sequence[Fetched], *, today: date, lookback_days: int) -> list[tuple]:
    """The fetch ledger rows of `group`'s parts, with the days each answer proves had no trading."""
    parts = [(fetched.asset, part) for fetched in group for part in fetched.parts]
    around = store.stored_around(cur, [(asset, part.served.span) for asset, part in parts])
    entries = []
    for (asset, part), (before, after) in zip(parts, around):
        served, validated = part.served, part.validated
        evidence = Evidence(served.answer.answered, before, after, served.answer.listed_from)
        served_days = part.served_days
        returned = served_days - unusable_days(served_days, validated, today=today)
        entries.append((asset, served.provider, served.span, len(validated.rows) + validated.dropped,
                        validated.dropped,
                        empty_days(served.span, returned, today=today, lookback_days=lookback_days, evidence=evidence)))
    return entries


def _report_actions(run: JobRun, asset: Asset, loaded: adjust.Loaded) -> None:
    """New corporate actions and a rebased asset, for the run's event."""
    for action in loaded.new_actions:
        log.info("%s: new %s on %s (%s)", asset.spec, action.kind, action.date,
                 f"ratio {action.ratio}" if action.kind == "split" else f"{action.amount} {action.currency or ''}")
        value = ({"ratio": _plain(action.ratio)} if action.kind == "split" else {"amount": _plain(action.amount)})
        run.extra["corporate_actions"].append({"symbol": asset.symbol, "kind": action.kind,
                                               "date": action.date.isoformat(), **value})
    if loaded.rebased:
        run.extra["rebased"].append(asset.symbol)


def _plain(value: Decimal) -> str:
    """A number as plain text without trailing zeros (0.820 → 0.82, 4 → 4)."""
    return format(value.normalize(), "f")

"""The provider chain: which providers to ask for an asset, in order, and the fallback.

Order for an asset: `--provider` alone when given (the user asked for it by name); otherwise the
asset's own `asset.provider` (when set), then the configured chain of its type (`*_PROVIDERS`).
Providers that do not cover the type are skipped. A retryable or not-found error moves on to the
next provider; a fatal one stops the job. Any other exception raised while one asset's answer is
fetched or read is that asset's UnusableAnswerError (a retryable error: its next provider is asked),
never the run's. For history, a provider serves only the days its declared `history_depth` of the
asset's type reaches: the older rest of a span is asked of the providers after it, and a provider
that reaches none of the span is not asked at all (`history_parts`). An answer as long as the
provider's `limits.max_points` covers the span only from its oldest bar: the provider is asked again
for the older rest (should that fail, the next providers are). A provider whose daily quota is spent
is not asked again in this run, and what only it could give is *deferred*. A provider that raises
ProviderUnavailableError (unreachable: DNS failure or refused connection, after its retries; Yahoo's
edge refusing this client with 429 after 429) is *down*: not asked again in this run, the next
provider of each chain takes over (`mark_unavailable`, the one switch for every reason a provider
cannot serve the rest of a run), and it is said once, not per asset. With a `DailyBudget` given to
`check`, each provider with a daily limit is built to reserve every request from it (and each with a
per-minute limit to take its turns from the bucket all processes share, `rate_bucket`), and a quota
the API reports spent is recorded there so that later runs of the day do not ask either. The budget
belongs to whoever opened it, who closes it; the chain only uses it. `asset.provider_symbol` belongs
to `asset.provider` and is only passed to it. Symbols a provider resolved in earlier runs (stored in
`provider_symbols`) are given to `check` and handed to that provider when it is built, as its
`known_symbols`: they spare a lookup but never change an asset's chain order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

from etl.config import Settings
from etl.errors import (BudgetSpentError, EtlError, FatalError, NotFoundError, ProviderUnavailableError,
                        QuotaExhaustedError, RetryableError)
from etl.models import Asset, Bar, HistoryAnswer, Quote
from etl.pipeline.budget import DailyBudget, ProviderBudget
from etl.pipeline.plan import Span, widened
from etl.pipeline.provider_sessions import SavedSessions
from etl.pipeline.provider_setup import load_class, make_provider
from etl.pipeline.rate_bucket import RateBucket
from etl.pipeline.failures import combined_error, no_provider_error
from etl.providers.answers import reading
from etl.providers.base import Limits, Provider, subject_of

log = logging.getLogger(__name__)


def candidates(asset: Asset, settings: Settings, override: str | None) -> list[str]:
    """Provider names to try for `asset`, in order, keeping only those that cover its type."""
    if override:
        names = [override]
    else:
        names = ([asset.provider] if asset.provider else []) + list(settings.provider_chain(asset.asset_type))
    return [name for name in dict.fromkeys(names) if asset.asset_type in provider_type_set(name)]


def provider_type_set(name: str) -> frozenset[str]:
    return load_class(name).asset_types


def provider_limits(name: str) -> Limits:
    return load_class(name).limits


def daily_limit(name: str, settings: Settings) -> int | None:
    """Requests a UTC day for provider `name`: PROVIDER_DAILY_LIMITS, else its declared limit."""
    return settings.daily_limit(name, provider_limits(name).per_day)


def earliest_served(name: str, asset_type: str, today: date) -> date | None:
    """The oldest day provider `name` serves history of `asset_type` for (its declared depth); None: no limit."""
    depth = load_class(name).history_depth(asset_type)
    return None if depth is None else today - timedelta(days=depth - 1)


def covered_from(bars: Sequence[Bar], first: date, max_points: int | None) -> date:
    """The first day of a history request from `first` that an answer of `bars` covers.

    An answer of a provider's `max_points` bars was cut at the cap: it covers the
    range only from its oldest bar, and the older days are unknown, not empty.
    """
    if max_points is None or len(bars) < max_points:
        return first
    return max(first, min(bar.date for bar in bars))


@dataclass(frozen=True)
class Served:
    """What one provider answered for the part of a span it covers: its `answer`, and of the answer's
    bars those inside the part (`bars`)."""

    provider: str
    span: Span
    bars: list[Bar]
    answer: HistoryAnswer


def for_provider(asset: Asset, name: str) -> Asset:
    """`asset` as provider `name` should see it: provider_symbol only for its own provider."""
    if asset.provider_symbol and asset.provider != name:
        return replace(asset, provider_symbol=None)
    return asset


class ProviderChain:
    """Builds each provider once per run (thread-safe) and asks them in order."""

    def __init__(self, settings: Settings, override: str | None = None):
        self.settings = settings
        self.override = override
        self.exhausted: dict[str, QuotaExhaustedError] = {}  # provider → why its quota is spent (this run)
        self.unavailable: dict[str, ProviderUnavailableError] = {}  # provider → why it is down (this run)
        self.budget: DailyBudget | None = None
        self.saved: SavedSessions | None = None  # provider sessions kept in the database (with a budget)
        self._providers: dict[str, Provider] = {}
        self._unusable: dict[str, EtlError] = {}  # an asset's own provider that cannot be built → why
        self._known_symbols: dict[str, dict[tuple[str, str], str]] = {}  # provider → learned earlier
        # provider → (when, message) of its last error in this run, for provider_health (not-found
        # errors belong to a symbol, not to the provider, and are left out)
        self.errors: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()

    def candidates(self, asset: Asset) -> list[str]:
        return [name for name in candidates(asset, self.settings, self.override) if name not in self._unusable]

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                load_class(name)
                built = make_provider(name, self.settings, self._provider_budget(name), self._rate_bucket(name),
                                      self.saved)
                built.known_symbols.update(self._known_symbols.get(name, {}))
                self._providers[name] = built
            return self._providers[name]

    def check(self, assets: Iterable[Asset], budget: DailyBudget | None = None,
              known_symbols: Mapping[str, Mapping[tuple[str, str], str]] | None = None) -> None:
        """Build the configured providers `assets` may need, so that a missing key or an unavailable
        provider stops the run (exit 2) before anything is fetched or written.

        Configured means --provider, or the *_PROVIDERS chains of the assets' types. An asset's own
        `provider` is data, not configuration: one that cannot be built is left out for the assets
        naming it (logged once), which fall back to their type's chain. With `budget`, every
        provider with a daily limit is built to reserve each request from it. `known_symbols`
        (provider → (symbol, asset_type) → its symbol, from `store.provider_symbols`) are
        handed to each provider as its `known_symbols`.
        """
        with self._lock:
            for name, symbols in (known_symbols or {}).items():
                self._known_symbols.setdefault(name, {}).update(symbols)
                if name in self._providers:
                    self._providers[name].known_symbols.update(symbols)
            if budget is not self.budget:
                if self._providers:
                    raise RuntimeError("the chain's providers are already built without this budget — give it "
                                       "in the first check()")
                self.budget = budget
                self.saved = SavedSessions(budget.settings, read_only=budget.dry_run) if budget else None
        assets = list(assets)
        if self.override:
            configured = [self.override]
        else:
            types = {asset.asset_type for asset in assets}
            configured = [name for asset_type in sorted(types) for name in self.settings.provider_chain(asset_type)
                          if asset_type in provider_type_set(name)]
        for name in dict.fromkeys(configured):
            self.provider(name)
        if self.override:
            return
        for asset in assets:
            name = asset.provider
            if not name or name in configured:
                continue
            if name not in self._unusable:
                try:
                    if asset.asset_type in provider_type_set(name):
                        self.provider(name)
                    continue
                except EtlError as exc:
                    self._unusable[name] = exc
            log.warning("%s: its own provider %s cannot be used (%s); asking its type's chain instead — fix it "
                        "or change it with `etl assets add %s --provider …`", asset.spec, name,
                        self._unusable[name], asset.spec)

    def _provider_budget(self, name: str) -> ProviderBudget | None:
        if self.budget is None:
            return None
        return self.budget.for_provider(name, daily_limit(name, self.settings))

    def _rate_bucket(self, name: str) -> RateBucket | None:
        """The per-minute limit `name` shares with every process, kept on the budget's connection."""
        if self.budget is None:
            return None
        per_minute = self.settings.rate_limit(name, provider_limits(name).per_minute)
        return self.budget.rate_bucket(name, per_minute) if per_minute else None

    @property
    def requests_made(self) -> int:
        return sum(p.session.requests_made for p in self._providers.values())

    def requests_by_provider(self) -> dict[str, int]:
        with self._lock:
            return {name: p.session.requests_made for name, p in self._providers.items()}

    def note_error(self, name: str, exc: Exception) -> None:
        if not isinstance(exc, NotFoundError):
            with self._lock:
                self.errors[name] = (datetime.now(timezone.utc), str(exc))

    def learned_symbols(self) -> dict[Asset, tuple[str, str]]:
        """Provider symbols resolved during the run: asset → (provider, provider_symbol)."""
        learned: dict[Asset, tuple[str, str]] = {}
        for name, provider in self._providers.items():
            for asset, symbol in provider.learned_symbols.items():
                learned.setdefault(asset, (name, symbol))
        return learned

    def history_parts(self, asset: Asset, start: date, end: date, *, today: date,
                      actions: bool = True) -> tuple[list[Served], EtlError | None]:
        """The bars of `start`..`end`, newest part first, each with the provider and the span it covered.

        A provider is asked only for the days its depth reaches, in as many requests as its `max_points`
        needs; the older rest goes to the providers after it; the corporate actions (`actions`) until a
        part has checked them. Also returns why days no provider served are missing (None: none is).
        """
        names = self.candidates(asset)
        if not names:
            return [], no_provider_error(asset)
        parts: list[Served] = []
        errors: list[EtlError] = []
        last = end
        for name in names:
            if last < start:
                break
            if name in self.exhausted or name in self.unavailable:
                errors.append(self.exhausted.get(name) or self.unavailable[name])
                continue
            reach = earliest_served(name, asset.asset_type, today)
            if reach is not None and reach > last:
                log.info("%s: %s serves history from %s only; asking the next provider for %s..%s",
                         asset.spec, name, reach, start, last)
                continue
            first = start if reach is None else max(start, reach)
            try:
                while last >= first:
                    with reading(name, asset.spec):
                        answer = self.provider(name).history_answer(
                            for_provider(asset, name), *widened(asset.asset_type, first, last, reach, today),
                            actions=actions and not any(part.answer.checked_actions for part in parts))
                    bars = [bar for bar in answer.bars if first <= bar.date <= last]
                    covered = covered_from(answer.bars, first, provider_limits(name).max_points)
                    parts.append(Served(name, Span(covered, last), bars, answer))
                    if covered > first:
                        log.info("%s: %s returned its maximum of %d bars, from %s on; asking it for %s..%s",
                                 asset.spec, name, len(bars), covered, first, covered - timedelta(days=1))
                    last = covered - timedelta(days=1)
            except QuotaExhaustedError as exc:
                self._exhaust(name, exc)
                errors.append(exc)
                continue
            except ProviderUnavailableError as exc:
                self.mark_unavailable(name, exc)
                errors.append(exc)
                continue
            except (RetryableError, NotFoundError) as exc:
                log.info("%s: %s failed for %s..%s (%s); trying the next provider", asset.spec, name, first, last,
                         exc)
                self.note_error(name, exc)
                errors.append(exc)
                continue
            except FatalError as exc:
                self.note_error(name, exc)
                raise
        if last < start:
            return parts, None
        if errors:
            return parts, combined_error(asset, errors)
        return parts, RetryableError(f"{asset.spec}: no provider in its chain serves history as old as "
                                     f"{start}..{last} — add one without a depth limit to the *_PROVIDERS "
                                     "setting of its type, or start later")

    def quotes(self, assets: Sequence[Asset]) -> tuple[list[Quote], dict[Asset, EtlError]]:
        """Quotes for `assets`, batched per provider by its max_batch; failures per asset.

        Assets a provider cannot price move on to their next provider, in batches again.
        """
        quotes: list[Quote] = []
        errors: dict[Asset, list[EtlError]] = {asset: [] for asset in assets}
        queue = {asset: self.candidates(asset) for asset in assets}
        failed: dict[Asset, EtlError] = {}
        for asset, names in queue.items():
            if not names:
                failed[asset] = no_provider_error(asset)
        pending = {asset: names for asset, names in queue.items() if names}
        while pending:
            by_provider: dict[str, list[Asset]] = {}
            for asset, names in pending.items():
                by_provider.setdefault(names[0], []).append(asset)
            next_round: dict[Asset, list[str]] = {}
            for name, group in by_provider.items():
                unpriced = self._quote_group(name, group, quotes, errors)
                for asset in unpriced:
                    rest = pending[asset][1:]
                    if rest:
                        next_round[asset] = rest
                    else:
                        failed[asset] = combined_error(asset, errors[asset])
            pending = next_round
        return quotes, failed

    def _quote_group(self, name: str, group: list[Asset], quotes: list[Quote],
                     errors: dict[Asset, list[EtlError]]) -> list[Asset]:
        """Ask provider `name` for `group` batch by batch; return the assets it did not price."""
        if name in self.exhausted or name in self.unavailable:
            for asset in group:
                errors[asset].append(self.exhausted.get(name) or self.unavailable[name])
            return group
        provider = self.provider(name)
        size = max(1, provider.limits.max_batch)
        unpriced: list[Asset] = []
        for first in range(0, len(group), size):
            batch = group[first:first + size]
            seen_as = {for_provider(asset, name): asset for asset in batch}
            try:
                with reading(name, subject_of(batch)):
                    answer = provider.quotes(list(seen_as))
            except FatalError as exc:
                self.note_error(name, exc)
                raise
            except QuotaExhaustedError as exc:
                self._exhaust(name, exc)
                for asset in group[first:]:
                    errors[asset].append(exc)
                return unpriced + group[first:]
            except ProviderUnavailableError as exc:
                self.mark_unavailable(name, exc)
                for asset in group[first:]:
                    errors[asset].append(exc)
                return unpriced + group[first:]
            except (RetryableError, NotFoundError) as exc:
                log.info("%s: quotes failed for %d asset(s) (%s); trying the next provider", name, len(batch), exc)
                self.note_error(name, exc)
                for asset in batch:
                    errors[asset].append(exc)
                unpriced += batch
                continue
            quotes.extend(answer.quotes)
            for seen, exc in answer.failures.items():
                asset = seen_as.get(seen, seen)
                if isinstance(exc, FatalError):
                    self.note_error(name, exc)
                    raise exc
                if isinstance(exc, QuotaExhaustedError):
                    self._exhaust(name, exc)
                if isinstance(exc, ProviderUnavailableError):
                    self.mark_unavailable(name, exc)
                errors[asset].append(exc if isinstance(exc, EtlError) else RetryableError(str(exc)))
                unpriced.append(asset)
        return unpriced

    def mark_unavailable(self, name: str, exc: ProviderUnavailableError) -> None:
        """Provider `name` cannot serve the rest of this run: each chain goes on with its next provider.
        Said once, as one warning line."""
        with self._lock:
            if name in self.unavailable:
                return
            self.unavailable[name] = exc
        log.warning("%s", exc)

    def _exhaust(self, name: str, exc: QuotaExhaustedError) -> None:
        with self._lock:
            if name in self.exhausted:
                return
            log.warning("%s: daily quota spent (%s); not asking it again in this run", name, exc)
            self.exhausted[name] = exc
            self.errors[name] = (datetime.now(timezone.utc), str(exc))
            budget = self._provider_budget(name)
        if budget is not None and not isinstance(exc, BudgetSpentError):
            budget.mark_spent()

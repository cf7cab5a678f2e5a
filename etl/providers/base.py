"""The interface every market-data provider module implements.

A provider is two small halves: fetch functions that return the API's payload
(all I/O, through `fetch_utils`), and pure parse functions that turn a payload
into `Bar`/`Quote` records. The class below ties them together so the pipeline
can treat every API alike, and declares everything else the project needs to
know about the provider (its name, settings variables, coverage and limits):
`config`, the test harness and the README checks read it from the registry in
`etl.providers`, so nothing about a provider is written down twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any, Callable, ClassVar, Protocol, Sequence

from etl.models import AS_TRADED, AnswerMeta, Asset, Bar, HistoryAnswer, PriceBasis, Quote
from etl.providers.answers import reading
from etl.utils.fetch_utils import ProviderSession



class ProviderSettings(Protocol):
    """What building a provider reads from the settings (`etl.config.Settings` is one). Named here,
    so that providers need not import the configuration, which reads their declarations."""

    def base_url(self, provider: str) -> str: ...

    def api_key(self, provider: str) -> str | None: ...

    def rate_limit(self, provider: str, declared: int | None) -> int | None: ...


@dataclass(frozen=True)
class Limits:
    """What a provider's (free) plan allows."""

    per_minute: int | None = None       # requests a minute; None: unlimited
    per_day: int | None = None          # requests a day; None: unlimited
    max_batch: int = 1                  # symbols per quote request
    max_history_days: int | None = None  # deepest history served; None: unlimited
    # Bars one history request returns at most, the newest of the range first; None: unlimited.
    # An answer of that many bars covers the range only from its oldest bar.
    max_points: int | None = None


@dataclass
class QuoteBatch:
    """What one quote call returned: the quotes, and the assets it could not price."""

    quotes: list[Quote] = field(default_factory=list)
    failures: dict[Asset, Exception] = field(default_factory=dict)


class Provider:
    """Base class: subclasses set the class attributes and implement the two methods.

    Every subclass's `history`, `history_answer` and `quotes` return rows or raise the typed errors
    of `etl.errors`, nothing else: any other exception (an answer of a shape no parser expected)
    becomes an UnusableAnswerError naming the provider and the assets asked for.
    """

    name: ClassVar[str]                          # as in settings, `asset.provider` and `source`
    base_url_variable: ClassVar[str]             # the setting that points it elsewhere (tests, proxies)
    default_base_url: ClassVar[str]
    asset_types: ClassVar[frozenset[str]]        # the asset types it covers
    limits: ClassVar[Limits]                     # its plan's limits, history depth included
    key_variable: ClassVar[str | None] = None    # the setting holding its API key, if it takes one
    needs_key: ClassVar[bool] = False            # whether it cannot work without that key
    # What the daily prices of history() are adjusted for (the pipeline turns them back into prices
    # as traded), whether its bars carry an adjusted close, and the asset types whose splits and
    # dividends history_answer() reports through today (when the API lets it: see checked_actions).
    price_basis: ClassVar[PriceBasis] = AS_TRADED
    gives_adj_close: ClassVar[bool] = False
    reports_actions: ClassVar[frozenset[str]] = frozenset()
    # Sent as a browser (curl_cffi impersonating one) instead of requests with the product's User-Agent.
    browser: ClassVar[bool] = False
    # That many 429 answers in a row make the provider unavailable for the rest of the run; None: never.
    down_after_429s: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method in CONTAINED_METHODS:
            if method in cls.__dict__:
                setattr(cls, method, _contained(cls.__dict__[method]))

    def __init__(self, session: ProviderSession, base_url: str, api_key: str | None = None):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        # Provider symbols found in this run (e.g. CoinGecko ids resolved through /search); the
        # pipeline stores them in the provider_symbols table so they are looked up once.
        self.learned_symbols: dict[Asset, str] = {}
        # Those learned in earlier runs, (symbol, asset_type) → symbol, given back by the chain.
        self.known_symbols: dict[tuple[str, str], str] = {}

    @classmethod
    def from_settings(cls, session: ProviderSession, settings: ProviderSettings, saved=None) -> "Provider":
        """The provider built from the settings. `saved`: where sessions are kept between runs
        (`etl.pipeline.provider_sessions.SavedSessions`), for providers that have one (Yahoo)."""
        return cls(session, settings.base_url(cls.name), settings.api_key(cls.name))

    @classmethod
    def asks_actions(cls, asset_type: str, settings: ProviderSettings) -> bool:
        """Whether history_answer asks for `asset_type`'s corporate actions under `settings` (a plan
        whose rate is too low for them may not)."""
        return asset_type in cls.reports_actions

    @classmethod
    def history_depth(cls, asset_type: str) -> int | None:
        """How many days back this provider serves history for `asset_type`; None: no limit."""
        return cls.limits.max_history_days

    def provider_symbol(self, asset: Asset) -> str:
        """The provider's name for `asset`; `asset.provider_symbol` wins when set."""
        return asset.provider_symbol or self.map_symbol(asset)

    def map_symbol(self, asset: Asset) -> str:
        return asset.symbol

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        """Daily bars for `asset` from `start` to `end` inclusive, as the API gave them
        (validation happens later). Raises the typed errors of `etl.errors`."""
        raise NotImplementedError

    def history_answer(self, asset: Asset, start: date, end: date, *, actions: bool = True) -> HistoryAnswer:
        """history() with what else the answer proves: the days it spans, the corporate actions it
        reports, the first trading day it states, what it says of the asset (here: the one currency
        of its bars). Providers that report more override this; with `actions` false (they are known
        through today already), one that needs extra requests for the corporate actions does not make them."""
        bars = self.history(asset, start, end)
        return HistoryAnswer.of(bars, AnswerMeta.of(currency=bars_currency(bars)))

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        """Current quotes for up to `limits.max_batch` assets in as few requests as possible."""
        raise NotImplementedError


def bars_currency(bars: Sequence[Bar]) -> str | None:
    """The currency of `bars` when they all give the same one."""
    currencies = {bar.currency for bar in bars}
    return currencies.pop() if len(currencies) == 1 else None


def unix_seconds(day: date) -> int:
    """00:00 UTC of `day` as Unix seconds, the way APIs take a date in their queries."""
    return int(datetime.combine(day, time(0), timezone.utc).timestamp())


CONTAINED_METHODS = ("history", "history_answer", "quotes")


def _contained(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` of a provider, any untyped exception it raises turned into the asked assets' UnusableAnswerError."""
    @functools.wraps(method)
    def contained(self: Provider, assets: Asset | Sequence[Asset], *args, **kwargs):
        with reading(self.name, subject_of(assets)):
            return method(self, assets, *args, **kwargs)
    return contained


def subject_of(assets: Asset | Sequence[Asset]) -> str:
    """`AAPL:STOCK`, or `the quotes of AAPL:STOCK, MSFT:STOCK …` (at most three named)."""
    if isinstance(assets, Asset):
        return assets.spec
    specs = [asset.spec for asset in assets]
    more = f" and {len(specs) - 3} more" if len(specs) > 3 else ""
    return f"the quotes of {', '.join(specs[:3])}{more}"

"""The interface every market-data provider module implements.

A provider is two small halves: fetch functions that return the API's payload
(all I/O, through `fetch_utils`), and pure parse functions that turn a payload
into `Bar`/`Quote` records. The class below ties them together so the pipeline
can treat every API alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar, Sequence

from etl.models import Asset, Bar, Quote
from etl.utils.fetch_utils import ProviderSession


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
    """Base class: subclasses set the class attributes and implement the two methods."""

    name: ClassVar[str]
    asset_types: ClassVar[frozenset[str]]
    limits: ClassVar[Limits]
    needs_key: ClassVar[bool] = False
    key_variable: ClassVar[str | None] = None

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
    def history_depth(cls, asset_type: str) -> int | None:
        """How many days back this provider serves history for `asset_type`; None: no limit."""
        return cls.limits.max_history_days

    def supports(self, asset: Asset) -> bool:
        return asset.asset_type in self.asset_types

    def provider_symbol(self, asset: Asset) -> str:
        """The provider's name for `asset`; `asset.provider_symbol` wins when set."""
        return asset.provider_symbol or self.map_symbol(asset)

    def map_symbol(self, asset: Asset) -> str:
        return asset.symbol

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        """Daily bars for `asset` from `start` to `end` inclusive, as the API gave them
        (validation happens later). Raises the typed errors of `etl.errors`."""
        raise NotImplementedError

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        """Current quotes for up to `limits.max_batch` assets in as few requests as possible."""
        raise NotImplementedError

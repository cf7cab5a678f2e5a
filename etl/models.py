"""The records that pass between providers, the pipeline and the database.

Prices and quantities are `Decimal` parsed from the provider's text, never float.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from itertools import repeat
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import UsageError

# The characters real tickers use; stricter than the CHECK constraints on `asset` (upper case, trimmed,
# forex as BASE/QUOTE), so a malformed spec is a usage error, not a database one.
_FOREX_PAIR = re.compile(r"^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$")
_SYMBOL = re.compile(r"^[A-Z0-9^][A-Z0-9.\-=^_&]{0,31}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")  # as the CHECK on asset.currency
MARKET_ASSET_TYPES = ("STOCK", "ETF", "CRYPTO", "FOREX", "INDEX")
ASSET_TYPES = (*MARKET_ASSET_TYPES, "CASH")


@dataclass(frozen=True, slots=True)
class Asset:
    """A tracked asset, as stored in `asset` or named on the command line."""

    symbol: str
    asset_type: str
    name: str | None = None
    currency: str | None = None
    exchange: str | None = None
    provider: str | None = None
    provider_symbol: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.symbol}:{self.asset_type}"


@dataclass(frozen=True, slots=True)
class AnswerMeta:
    """What one provider answer says of its asset, apart from prices: its name, the currency its
    prices are in, its exchange and that exchange's IANA time zone. Kept once per answer (not on
    every Bar) and used to fill the asset's columns the user left empty (`assets.describe_assets`).
    Build it with `of`, which leaves out what the `asset` table would refuse."""

    name: str | None = None
    currency: str | None = None
    exchange: str | None = None
    exchange_timezone: str | None = None

    @classmethod
    def of(cls, name=None, currency=None, exchange=None, exchange_timezone=None) -> "AnswerMeta":
        """The meta of an answer's raw values: text trimmed, blanks dropped, a currency that is not
        three capital letters dropped (the provider converts a minor unit such as GBp first), a
        time zone Python does not know dropped."""
        currency = _text(currency)
        zone = _text(exchange_timezone)
        return cls(name=_text(name), exchange=_text(exchange),
                   currency=currency if currency and _CURRENCY.match(currency) else None,
                   exchange_timezone=zone if zone and _known_zone(zone) else None)

    @property
    def empty(self) -> bool:
        return not (self.name or self.currency or self.exchange or self.exchange_timezone)

    def or_else(self, other: "AnswerMeta") -> "AnswerMeta":
        """This meta with what it lacks taken from `other` (an answer after this one)."""
        return AnswerMeta(self.name or other.name, self.currency or other.currency,
                          self.exchange or other.exchange, self.exchange_timezone or other.exchange_timezone)


NO_META = AnswerMeta()


def _text(value) -> str | None:
    """A provider's text value trimmed; None for a blank or a value of another JSON type."""
    return value.strip() or None if isinstance(value, str) else None


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Bar:
    """One trading day of history for one asset (a row of `market_data`)."""

    symbol: str
    asset_type: str
    date: date
    price: Decimal | None           # raw close; None or bad values are dropped by validation
    source: str
    adj_close: Decimal | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None
    currency: str | None = None
    as_of: datetime | None = None   # when the provider stamped the bar; the pipeline fills a default


_BAR_DEFAULTS = {f.name: f.default for f in fields(Bar)}
_BAR_SLOTS = {name: getattr(Bar, name).__set__ for name in _BAR_DEFAULTS}  # the slots' own descriptors


def bars_from_columns(count: int, columns: Mapping[str, Sequence[Any]], **same: Any) -> list[Bar]:
    """`count` Bars from parallel columns: `columns` gives each field's value bar by bar, `same` a field's
    value for every bar, and the fields named in neither take their defaults.

    The Bars equal (and behave as) those built one by one with `Bar(**fields)`; building them a field
    at a time, with each slot's descriptor mapped over all the bars, is three times faster for a long
    history than the frozen `__init__`, which sets each field of each bar through `object.__setattr__`.
    """
    unknown = (columns.keys() | same.keys()) - _BAR_DEFAULTS.keys()
    missing = {name for name, default in _BAR_DEFAULTS.items() if default is MISSING} - columns.keys() - same.keys()
    if unknown or missing or columns.keys() & same.keys():
        raise TypeError(f"bars_from_columns: unknown fields {sorted(unknown)}, missing {sorted(missing)}, "
                        f"given twice {sorted(columns.keys() & same.keys())}")
    if any(len(column) != count for column in columns.values()):
        raise ValueError(f"bars_from_columns: every column must hold {count} values")
    bars = list(map(object.__new__, repeat(Bar, count)))
    for name, set_slot in _BAR_SLOTS.items():
        values = columns[name] if name in columns else repeat(same.get(name, _BAR_DEFAULTS[name]), count)
        deque(map(set_slot, bars, values), maxlen=0)
    return bars


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """A split or a dividend of one asset, as a row of `corporate_actions`.

    `ratio` is shares after per share before (4 for 4:1, 0.1 for 1:10); `amount` is
    the dividend per share in `currency` (major unit), on the basis the provider
    reported it until the pipeline makes it as traded.
    """

    symbol: str
    asset_type: str
    date: date                      # ex-date
    kind: str                       # "split" or "dividend"
    source: str
    ratio: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class PriceBasis:
    """What a provider's daily prices are adjusted for, as of the day they are fetched."""

    splits: bool
    dividends: bool


AS_TRADED = PriceBasis(splits=False, dividends=False)
SPLIT_ADJUSTED = PriceBasis(splits=True, dividends=False)


@dataclass(frozen=True)
class HistoryAnswer:
    """What one history request brought back.

    `bars` are the requested days only. `answered` is the first and last day of
    any bar in the answer, inside the requested days or not (an answer that ran
    wider proves the days between its bars had no trading); None when it held no
    bar. `actions` are the splits and dividends it reported, `listed_from` the
    first trading day the provider states; `checked_actions` says the answer
    reports every action of the asset through today; `meta` what it says of
    the asset (name, currency, exchange, time zone).
    """

    bars: list[Bar]
    actions: list[CorporateAction] = field(default_factory=list)
    answered: tuple[date, date] | None = None
    listed_from: date | None = None
    checked_actions: bool = False
    meta: AnswerMeta = NO_META

    @classmethod
    def of(cls, bars: list[Bar], meta: AnswerMeta = NO_META) -> "HistoryAnswer":
        """An answer that is exactly its bars (no wider window, no actions)."""
        days = [bar.date for bar in bars]
        return cls(bars, answered=(min(days), max(days)) if days else None, meta=meta)


@dataclass(frozen=True, slots=True)
class Quote:
    """A live quote: becomes (or replaces) the row of its trading `date`."""

    symbol: str
    asset_type: str
    date: date                      # trading date in the exchange's time zone
    price: Decimal | None
    as_of: datetime                 # time of the quote (timezone-aware)
    source: str
    change: Decimal | None = None
    percent_change: Decimal | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None
    currency: str | None = None
    name: str | None = None
    exchange: str | None = None
    exchange_timezone: str | None = None  # IANA name, e.g. America/New_York

    @property
    def meta(self) -> AnswerMeta:
        """What the quote says of its asset, as a history answer's `meta`."""
        return AnswerMeta.of(self.name, self.currency, self.exchange, self.exchange_timezone)


def parse_asset_spec(text: str) -> Asset:
    """`SYMBOL:TYPE` → Asset; a bare symbol is a STOCK, or an INDEX when it starts with ^."""
    raw = text.strip()
    symbol, sep, asset_type = raw.rpartition(":")
    if not sep:
        symbol, asset_type = raw, ("INDEX" if raw.startswith("^") else "STOCK")
    symbol, asset_type = symbol.strip().upper(), asset_type.strip().upper()
    if not symbol:
        raise UsageError(f"asset {text!r} has no symbol; write SYMBOL:TYPE like AAPL:STOCK")
    if asset_type not in ASSET_TYPES:
        raise UsageError(f"asset {text!r}: unknown type {asset_type!r}; use one of {', '.join(ASSET_TYPES)}")
    if asset_type == "FOREX" and not _FOREX_PAIR.match(symbol):
        raise UsageError(f"asset {text!r}: forex pairs are written BASE/QUOTE, like EUR/USD:FOREX")
    if asset_type != "FOREX" and not _SYMBOL.match(symbol):
        raise UsageError(f"asset {text!r}: a symbol is letters, digits and . - = ^ _ & (like BRK.B or ^GSPC)")
    if asset_type == "INDEX" and not symbol.startswith("^"):
        raise UsageError(f"asset {text!r}: index symbols start with ^, like ^GSPC")
    return Asset(symbol=symbol, asset_type=asset_type)


def parse_asset_list(text: str) -> list[Asset]:
    """A comma-separated list of asset specs, in order, without repeats."""
    assets = [parse_asset_spec(part) for part in text.split(",") if part.strip()]
    if not assets:
        raise UsageError("--symbols needs at least one SYMBOL:TYPE")
    return list(dict.fromkeys(assets))

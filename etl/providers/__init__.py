"""The market-data providers: the registry of them, by name, and how to build one from the settings.

`PROVIDERS` is the one list of providers. Each class declares its name, key and
base-URL settings, covered asset types and limits (see `base.Provider`);
`etl.config`, the CLI's choices, the test harness and the README checks all
read them from here. Adding a provider is its module, its test fixtures and
one line below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl.errors import MissingKeyError
from etl.providers.alphavantage import AlphaVantageProvider
from etl.providers.base import Provider
from etl.providers.coingecko import CoinGeckoProvider
from etl.providers.frankfurter import FrankfurterProvider
from etl.providers.twelvedata import TwelveDataProvider
from etl.providers.yahoo import YahooProvider
from etl.utils.fetch_utils import RequestBudget, SharedBucket, make_session
from etl.utils.http_clients import BrowserClient

if TYPE_CHECKING:
    from etl.config import Settings

# In the order error messages and `--provider` choices list them; yahoo, keyless, is the default.
PROVIDERS: dict[str, type[Provider]] = {cls.name: cls for cls in (
    YahooProvider,
    TwelveDataProvider,
    CoinGeckoProvider,
    FrankfurterProvider,
    AlphaVantageProvider,
)}


def provider_class(name: str) -> type[Provider]:
    """The provider class registered as `name` (KeyError for an unknown name)."""
    return PROVIDERS[name]


def make_provider(name: str, settings: Settings, budget: RequestBudget | None = None,
                  bucket: SharedBucket | None = None, saved=None) -> Provider:
    """A ready provider: its own rate-limited session, base URL and key from the settings.

    The session spaces requests at the provider's declared `limits.per_minute`
    unless PROVIDER_RATE_LIMITS sets another rate for it (a paid plan, a proxy),
    and reserves each request from `budget` (its daily allowance) when given; with
    `bucket`, that rate is shared with every other process (`pipeline.rate_bucket`). A provider
    declared `browser` is reached through curl_cffi impersonating YAHOO_IMPERSONATE. `saved`
    keeps sessions between runs (`etl.pipeline.provider_sessions.SavedSessions`).
    """
    cls = provider_class(name)
    key = settings.api_key(name)
    if cls.needs_key and not key:
        raise MissingKeyError(f"{name}: {cls.key_variable} is not set — set it in the environment or "
                              f".env, or take {name} out of the provider chain")
    per_minute = settings.rate_limit(name, cls.limits.per_minute)
    client = BrowserClient(settings.yahoo_impersonate) if cls.browser else None
    session = make_session(name, timeout=settings.http_timeout, per_minute=per_minute,
                           retries=settings.http_retries, backoff=settings.http_backoff, budget=budget,
                           bucket=bucket, client=client, down_after_429s=cls.down_after_429s)
    return cls.from_settings(session, settings, saved)

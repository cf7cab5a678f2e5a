"""Providers ready to ask: a registered class by name (an unknown one a user error) and a built provider.

It lives beside the chain that builds providers rather than in `etl.providers`,
which only declares them: `etl.config` reads those declarations, and building
one reads the settings, so keeping the two apart keeps the imports one-way.
"""

from __future__ import annotations

from etl.config import Settings
from etl.errors import FatalError, MissingKeyError
from etl.providers import provider_class
from etl.providers.base import Provider
from etl.utils.fetch_utils import RequestBudget, SharedBucket, make_session
from etl.utils.http_clients import BrowserClient


def load_class(name: str) -> type[Provider]:
    """The class registered as `name`; an unknown name stops the job with what to choose instead."""
    try:
        return provider_class(name)
    except (ImportError, KeyError):
        raise FatalError(f"provider {name!r} is not available in this installation — choose another with "
                         "--provider or the *_PROVIDERS settings") from None


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
    cls = load_class(name)
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

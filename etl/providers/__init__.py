"""The market-data providers, by name, and how to build one from the settings."""

from __future__ import annotations

import importlib

from etl.config import API_KEY_VARIABLES, PROVIDER_NAMES, Settings
from etl.errors import MissingKeyError
from etl.providers.base import Provider
from etl.utils.fetch_utils import RequestBudget, make_session

PROVIDER_MODULES = {name: f"etl.providers.{name}" for name in PROVIDER_NAMES}


def provider_class(name: str) -> type[Provider]:
    """The provider class of `name` (each module exposes it as `PROVIDER`)."""
    return importlib.import_module(PROVIDER_MODULES[name]).PROVIDER


def make_provider(name: str, settings: Settings, budget: RequestBudget | None = None) -> Provider:
    """A ready provider: its own rate-limited session, base URL and key from the settings.

    The session spaces requests at the provider's declared `limits.per_minute`
    unless PROVIDER_RATE_LIMITS sets another rate for it (a paid plan, a proxy),
    and reserves each request from `budget` (its daily allowance) when given.
    """
    cls = provider_class(name)
    key = settings.api_key(name)
    if cls.needs_key and not key:
        raise MissingKeyError(f"{name}: {API_KEY_VARIABLES[name]} is not set — set it in the environment or "
                              f".env, or take {name} out of the provider chain")
    per_minute = settings.rate_limit(name, cls.limits.per_minute)
    session = make_session(name, timeout=settings.http_timeout, per_minute=per_minute,
                           retries=settings.http_retries, backoff=settings.http_backoff, budget=budget)
    return cls(session, settings.base_url(name), key)

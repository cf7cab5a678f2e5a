"""Build a provider as the product does, pointed at a loopback server, and read the error a call ends in."""

from __future__ import annotations

from typing import Callable

import pytest

from etl.config import Settings
from etl.errors import EtlError
from etl.pipeline.provider_setup import make_provider
from etl.providers import PROVIDERS
from etl.providers.base import Provider
from support.runner import UNREACHABLE

# A key per provider that takes one: distinctive, so a test can look for it in any message.
KEYS = {"twelvedata": "td-secret-key-7f3a9c", "alphavantage": "AVSECRETKEY42XQ", "coingecko": "CG-demo-secret-91c2e7"}


def build_provider(name: str, base_url: str, *, key: str | None = None, paced: bool = True,
                   timeout: float | None = None, **env: str) -> Provider:
    """`make_provider(name)` from settings pointing it at `base_url`, with `key` as its API key and
    quick retries; `paced=False` lifts its rate limit (a loopback server has none, and 5 a minute
    would make tests slow); `timeout` waits less than ETL_HTTP_TIMEOUT's whole seconds for a loopback
    answer. `env` adds or overrides settings."""
    cls = PROVIDERS[name]
    settings = {cls.base_url_variable: base_url, "YAHOO_COOKIE_URL": UNREACHABLE, "ETL_HTTP_BACKOFF": "0.01", **env}
    if key and cls.key_variable:
        settings[cls.key_variable] = key
    provider = make_provider(name, Settings.from_env(settings, dotenv=False))
    if not paced:
        provider.session.limiter.interval = 0
    if timeout is not None:
        provider.session.timeout = timeout
    return provider


def error_of(call: Callable[[], object]) -> EtlError:
    """The typed error `call()` raises (the test fails if it raises none)."""
    with pytest.raises(EtlError) as caught:
        call()
    return caught.value

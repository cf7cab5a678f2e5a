"""PROVIDER_RATE_LIMITS: a user's own request rate per provider, over the provider's declared limit."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from etl.config import PROVIDER_NAMES, Settings
from etl.errors import ConfigError
from etl.models import Asset
from etl.pipeline.provider_setup import make_provider
from etl.providers import provider_class
from etl.providers.yahoo import chart_path, to_yahoo_symbol
from support.fake_api import fixture_text
from support.runner import PYTHON, run_etl_process

AAPL = Asset("AAPL", "STOCK")
WINDOW = 0.5


def settings(value: str | None, **extra: str) -> Settings:
    env = {"PROVIDER_RATE_LIMITS": value} if value is not None else {}
    return Settings.from_env({**env, **extra}, dotenv=False)


def config_error(value: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(value)
    return str(caught.value)


def yahoo_for(fake_api, rate_limits: str | None):
    fake_api.route(chart_path(to_yahoo_symbol(AAPL)), fixture_text("yahoo/chart_AAPL.json"))
    return make_provider("yahoo", settings(rate_limits, YAHOO_BASE_URL=fake_api.base_url))


def requests_started_within(provider, fake_api, seconds: float, threads: int = 2) -> int:
    """Requests the server received while `threads` callers asked for history as fast as they could."""
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            provider.history(AAPL, date(2023, 12, 1), date(2024, 6, 30))

    callers = [threading.Thread(target=ask, daemon=True) for _ in range(threads)]
    for caller in callers:
        caller.start()
    time.sleep(seconds)
    stop.set()
    received = len(fake_api.requests_to(chart_path(to_yahoo_symbol(AAPL))))
    for caller in callers:
        caller.join(timeout=5)
    return received


def most_requests_allowed(per_minute: int, seconds: float) -> int:
    """Requests a limiter spacing them 60 / per_minute apart can start in `seconds`, the first at once."""
    return 1 + int(seconds * per_minute / 60)


# ---- parsing ----

def test_unset_means_no_override_and_every_provider_keeps_its_declared_rate():
    plain = settings(None)
    assert plain.rate_limits == {}
    for name in PROVIDER_NAMES:
        assert plain.rate_limit(name, provider_class(name).limits.per_minute) == provider_class(name).limits.per_minute


def test_entries_are_read_per_provider_as_requests_a_minute():
    parsed = settings("yahoo=1200,coingecko=30")
    assert parsed.rate_limits == {"yahoo": 1200, "coingecko": 30}
    assert parsed.rate_limit("yahoo", 60) == 1200
    assert parsed.rate_limit("coingecko", 5) == 30


def test_providers_not_named_keep_their_declared_rate():
    assert settings("yahoo=1200").rate_limit("twelvedata", 8) == 8


def test_spaces_case_and_empty_entries_are_tolerated():
    assert settings(" Yahoo = 90 , ,frankfurter=10 ").rate_limits == {"yahoo": 90, "frankfurter": 10}


def test_an_empty_value_means_no_override():
    assert settings("  ").rate_limits == {}


@pytest.mark.parametrize("value", ["yahoo", "yahoo:60", "=60", "bloomberg=60"])
def test_an_entry_that_is_not_a_known_provider_equals_a_number_is_refused(value):
    message = config_error(value)
    assert "PROVIDER_RATE_LIMITS" in message
    assert "yahoo=1200" in message


@pytest.mark.parametrize("value", ["yahoo=fast", "yahoo=1.5", "yahoo=", "yahoo=0", "yahoo=-5", "yahoo=1000001"])
def test_a_rate_that_is_not_a_positive_whole_number_is_refused(value):
    message = config_error(value)
    assert message.startswith("PROVIDER_RATE_LIMITS (yahoo) must be")


def test_a_provider_named_twice_is_refused():
    assert "names yahoo twice" in config_error("yahoo=60,coingecko=10,YAHOO=120")


def test_a_bad_value_makes_the_command_exit_2_naming_the_variable(etl_env):
    result = run_etl_process([PYTHON, "-m", "etl", "fetch_historical_market_data", "--plan"],
                             {**etl_env, "PROVIDER_RATE_LIMITS": "yahoo=lots"})
    assert result.returncode == 2
    assert "PROVIDER_RATE_LIMITS" in result.stderr


# ---- the provider's session ----

def test_a_provider_built_with_an_override_spaces_requests_at_that_rate():
    built = make_provider("yahoo", settings("yahoo=1200"))
    assert built.session.limiter.interval == pytest.approx(60 / 1200)


def test_a_provider_built_without_an_override_spaces_requests_at_its_declared_rate():
    declared = provider_class("yahoo").limits.per_minute
    built = make_provider("yahoo", settings("coingecko=1000"))
    assert built.session.limiter.interval == pytest.approx(60 / declared)


def test_a_raised_rate_lets_more_requests_through_than_the_declared_rate_allows(fake_api):
    declared = provider_class("yahoo").limits.per_minute
    received = requests_started_within(yahoo_for(fake_api, "yahoo=600"), fake_api, WINDOW)
    assert most_requests_allowed(declared, WINDOW) < received <= most_requests_allowed(600, WINDOW)


def test_a_lowered_rate_holds_concurrent_callers_to_it(fake_api):
    received = requests_started_within(yahoo_for(fake_api, "yahoo=90"), fake_api, WINDOW)
    assert received == most_requests_allowed(90, WINDOW) == 1


def test_the_declared_rate_holds_concurrent_callers_to_it_without_an_override(fake_api):
    declared = provider_class("yahoo").limits.per_minute
    received = requests_started_within(yahoo_for(fake_api, None), fake_api, WINDOW)
    assert 1 <= received <= most_requests_allowed(declared, WINDOW)

"""Each provider is declared once, by its class in the registry; settings and documentation follow it."""

from __future__ import annotations

import re
from datetime import date

import pytest

from etl.config import Settings
from etl.errors import ConfigError, MissingKeyError
from etl.models import ASSET_TYPES, Asset, Bar
from etl.pipeline.provider_setup import make_provider
from etl.providers import PROVIDERS
from etl.providers.base import Limits, Provider
from support.runner import ETL_VARIABLES, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")
COMPOSE = (REPO / "docker-compose.yml").read_text(encoding="utf-8")


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the Markdown table whose header row starts with `header`."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


PROVIDER_TABLE = {row[0].split()[0].strip("`"): row for row in table_rows(README, "| provider | key | covers |")}
SETTINGS_TABLE = table_rows(README, "| variable | default | meaning |")


class ToyProvider(Provider):
    """A sixth provider, as a new module would declare it."""

    name = "toy"
    base_url_variable = "TOY_BASE_URL"
    default_base_url = "https://toy.example/api"
    asset_types = frozenset({"STOCK"})
    limits = Limits(per_minute=10)
    key_variable = "TOY_API_KEY"
    needs_key = True

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        return []


def test_the_readme_provider_table_lists_every_provider_in_registry_order():
    assert list(PROVIDER_TABLE) == list(PROVIDERS)


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_readme_provider_row_matches_the_declaration(name):
    cls = PROVIDERS[name]
    _, key, covers, _, _, limits = PROVIDER_TABLE[name]
    if cls.key_variable is None:
        assert key == "none"
    else:
        assert cls.key_variable in key or ("optional" in key and not cls.needs_key)
    assert {word for word in covers.split() if word in ASSET_TYPES} == set(cls.asset_types)
    declared = cls.limits
    assert f"{declared.per_minute}/min" in limits
    if declared.per_day:
        assert f"{declared.per_day}/day" in limits
    if declared.max_history_days:
        assert f"{declared.max_history_days} days" in limits


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_readme_settings_table_gives_each_providers_variables_and_default(name):
    cls = PROVIDERS[name]
    assert [f"`{cls.base_url_variable}`", f"`{cls.default_base_url}`", ""] in SETTINGS_TABLE
    if cls.key_variable:
        assert any(f"`{cls.key_variable}`" in row[0] for row in SETTINGS_TABLE)


@pytest.mark.parametrize("name", PROVIDERS)
def test_env_example_and_compose_carry_each_providers_variables(name):
    cls = PROVIDERS[name]
    assert f"\n# {cls.base_url_variable}={cls.default_base_url}\n" in ENV_EXAMPLE
    variables = [cls.base_url_variable] + ([cls.key_variable] if cls.key_variable else [])
    for variable in variables:
        assert f"    {variable}: ${{{variable}:-}}\n" in COMPOSE
        assert variable in ETL_VARIABLES
    if cls.key_variable:
        assert re.search(rf"^{cls.key_variable}=$", ENV_EXAMPLE, re.MULTILINE)


def test_a_sixth_provider_is_read_from_its_registry_line_alone(monkeypatch):
    monkeypatch.setitem(PROVIDERS, "toy", ToyProvider)
    settings = Settings.from_env({"STOCK_PROVIDERS": "toy,yahoo", "TOY_API_KEY": "toy-secret",
                                  "PROVIDER_RATE_LIMITS": "toy=20"}, dotenv=False)
    assert settings.provider_chain("STOCK") == ("toy", "yahoo")
    assert settings.base_url("toy") == "https://toy.example/api"
    assert "toy-secret" in settings.secrets()
    built = make_provider("toy", settings)
    assert (type(built), built.api_key, built.session.limiter.interval) == (ToyProvider, "toy-secret", 3.0)
    moved = Settings.from_env({"TOY_BASE_URL": "http://127.0.0.1:9/toy"}, dotenv=False)
    assert moved.base_url("toy") == "http://127.0.0.1:9/toy"
    with pytest.raises(MissingKeyError, match="TOY_API_KEY"):
        make_provider("toy", moved)


def test_an_unregistered_provider_name_is_refused_with_the_registered_ones():
    with pytest.raises(ConfigError, match="choose from yahoo, twelvedata, coingecko, frankfurter, alphavantage"):
        Settings.from_env({"STOCK_PROVIDERS": "toy"}, dotenv=False)

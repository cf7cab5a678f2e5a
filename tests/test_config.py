"""Configuration: every unusable value stops the program with exit 2 and one line naming it."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from etl.config import Settings
from etl.errors import ConfigError
from support.runner import run_etl

BAD_VALUES = [
    ("DB_PORT", "fivefourthreetwo"),
    ("DB_PORT", "70000"),
    ("MARKET_DATA_PROVIDERS", "yahoo,bloomberg"),
    ("STOCK_PROVIDERS", "bloomberg"),
    ("CRYPTO_PROVIDERS", "binance"),
    ("FOREX_PROVIDERS", "oanda"),
    ("INDEX_PROVIDERS", "stooq"),
    ("MARKET_DATA_PROVIDERS", ","),
    ("YAHOO_BASE_URL", "query1.finance.yahoo.com"),
    ("TWELVE_DATA_BASE_URL", "ftp://api.twelvedata.com"),
    ("COINGECKO_BASE_URL", "api.coingecko.com/api/v3"),
    ("FRANKFURTER_BASE_URL", "https://"),
    ("ALPHA_VANTAGE_BASE_URL", "www.alphavantage.co"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("ETL_HISTORY_START", "2020-13-01"),
    ("ETL_HISTORY_START", "last year"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
    ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,broker:port"),
    ("DB_SCHEMA", "etl; DROP TABLE asset"),
    ("DB_SCHEMA", "1abc"),
    ("DB_SCHEMA", "Finance"),
    ("DATABASE_URL", "mysql://user@localhost/etl"),
    ("ETL_HTTP_TIMEOUT", "0"),
    ("ETL_HTTP_BACKOFF", "fast"),
    ("ETL_LOOKBACK_DAYS", "-1"),
    ("MARKET_INDEX_SYMBOLS", "^GSPC,DJI"),
]


def one_line_naming(stderr: str, variable: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and variable in lines[0] and "Traceback" not in stderr


@pytest.mark.parametrize("variable, value", BAD_VALUES)
def test_bad_value_makes_migrate_exit_2_with_one_line_naming_the_variable(etl_env, monkeypatch, capsys,
                                                                          variable, value):
    monkeypatch.setenv(variable, value)
    assert run_etl("migrate") == 2
    assert one_line_naming(capsys.readouterr().err, variable)


@pytest.mark.parametrize("variable, value", [("DB_PORT", "x"), ("LOG_FORMAT", "yaml"),
                                             ("STOCK_PROVIDERS", "nobody")])
def test_bad_value_makes_runs_exit_2_too(etl_env, monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    assert run_etl("runs") == 2
    assert one_line_naming(capsys.readouterr().err, variable)


def test_defaults_follow_the_design():
    settings = Settings.from_env({})
    assert settings.db_schema == "public"
    assert settings.db_port == 5432
    assert settings.provider_chain("STOCK") == ("yahoo",)
    assert settings.base_url("frankfurter") == "https://api.frankfurter.dev/v1"
    assert settings.log_level == "INFO" and settings.log_format == "text"
    assert settings.kafka_bootstrap_servers == ()
    assert settings.market_index_symbols[0] == "^GSPC"
    assert settings.database_url is None and settings.db_host is None


def test_without_any_chain_set_crypto_and_forex_have_a_second_keyless_source():
    settings = Settings.from_env({}, dotenv=False)
    assert {t: settings.provider_chain(t) for t in ("STOCK", "ETF", "CRYPTO", "FOREX", "INDEX")} == {
        "STOCK": ("yahoo",), "ETF": ("yahoo",), "CRYPTO": ("yahoo", "coingecko"),
        "FOREX": ("yahoo", "frankfurter"), "INDEX": ("yahoo",)}


def test_market_data_providers_when_set_is_every_types_chain_as_before():
    settings = Settings.from_env({"MARKET_DATA_PROVIDERS": "yahoo"}, dotenv=False)
    assert {settings.provider_chain(t) for t in ("STOCK", "CRYPTO", "FOREX", "INDEX")} == {("yahoo",)}


def test_a_types_own_chain_replaces_only_its_default():
    settings = Settings.from_env({"CRYPTO_PROVIDERS": "coingecko"}, dotenv=False)
    assert (settings.provider_chain("CRYPTO"), settings.provider_chain("FOREX")) == \
        (("coingecko",), ("yahoo", "frankfurter"))


def test_per_type_provider_chains_fall_back_to_the_market_chain():
    settings = Settings.from_env({"MARKET_DATA_PROVIDERS": "twelvedata, yahoo", "CRYPTO_PROVIDERS": "coingecko"})
    assert settings.provider_chain("STOCK") == ("twelvedata", "yahoo")
    assert settings.provider_chain("CRYPTO") == ("coingecko",)


def test_base_urls_lose_a_trailing_slash():
    assert Settings.from_env({"YAHOO_BASE_URL": "http://127.0.0.1:8080/"}).base_url("yahoo") \
        == "http://127.0.0.1:8080"


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.from_env({}).db_schema = "other"  # type: ignore[misc]


def test_history_start_defaults_to_five_years_back():
    settings = Settings.from_env({})
    assert settings.history_start_or_default(date(2024, 2, 29)) == date(2019, 2, 28)
    assert Settings.from_env({"ETL_HISTORY_START": "2010-01-04"}).history_start_or_default(date.today()) \
        == date(2010, 1, 4)


def test_dot_env_in_the_working_directory_is_read(etl_env, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LOG_FORMAT=json\nMARKET_INDEX_SYMBOLS=^FTSE\n", encoding="utf-8")
    settings = Settings.from_env()
    assert settings.log_format == "json"
    assert settings.market_index_symbols == ("^FTSE",)


def test_environment_wins_over_dot_env(etl_env, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LOG_FORMAT=json\nDB_SCHEMA=from_dotenv\n", encoding="utf-8")
    monkeypatch.setenv("LOG_FORMAT", "text")
    settings = Settings.from_env()
    assert settings.log_format == "text"
    assert settings.db_schema == etl_env["DB_SCHEMA"]


def test_bad_value_in_dot_env_exits_2_naming_it(etl_env, tmp_path, capsys):
    (tmp_path / ".env").write_text("DB_PORT=not-a-port\n", encoding="utf-8")
    assert run_etl("runs") == 2
    assert one_line_naming(capsys.readouterr().err, "DB_PORT")


def test_database_url_error_does_not_echo_the_url():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DATABASE_URL": "user:TopSecret99@localhost/etl"})
    assert "TopSecret99" not in str(error.value)

"""Settings from the environment and `.env`, read and validated once at the edge.

Everything below the entry points takes a `Settings` object (or plain
arguments), never `os.environ`. A value that cannot be used raises
`ConfigError` naming the variable; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from etl.errors import ConfigError
from etl.providers import PROVIDERS
from etl.providers.yahoo_auth import DEFAULT_COOKIE_URL as DEFAULT_YAHOO_COOKIE_URL
from etl.utils.http_clients import DEFAULT_IMPERSONATE as DEFAULT_YAHOO_IMPERSONATE

PROVIDER_NAMES = tuple(PROVIDERS)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")

PROVIDER_VARIABLES_BY_TYPE = {
    "STOCK": "STOCK_PROVIDERS",
    "ETF": "STOCK_PROVIDERS",
    "CRYPTO": "CRYPTO_PROVIDERS",
    "FOREX": "FOREX_PROVIDERS",
    "INDEX": "INDEX_PROVIDERS",
}
# With neither MARKET_DATA_PROVIDERS nor the type's own variable set: Yahoo first, then a second keyless
# source where one exists, so a type is not lost when Yahoo refuses this client.
DEFAULT_CHAINS = {"CRYPTO": ("yahoo", "coingecko"), "FOREX": ("yahoo", "frankfurter")}
DEFAULT_CHAIN = ("yahoo",)
DEFAULT_INDEX_SYMBOLS = "^GSPC,^DJI,^IXIC,^RUT,^VIX,^FTSE,^GDAXI,^N225,^HSI"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "financial-tracker-etl"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(default=None, repr=False)
    db_host: str | None = None
    db_port: int = 5432
    db_name: str | None = None
    db_user: str | None = None
    db_password: str | None = field(default=None, repr=False)
    db_schema: str = "public"
    data_dir: Path = field(default_factory=default_data_dir)
    kafka_bootstrap_servers: tuple[str, ...] = ()
    kafka_topic_prefix: str = ""
    provider_chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    rate_limits: Mapping[str, int] = field(default_factory=dict)   # requests a minute, overriding the declared
    daily_limits: Mapping[str, int] = field(default_factory=dict)  # requests a UTC day, overriding the declared
    base_urls: Mapping[str, str] = field(
        default_factory=lambda: {name: cls.default_base_url for name, cls in PROVIDERS.items()})
    yahoo_cookie_url: str = DEFAULT_YAHOO_COOKIE_URL
    yahoo_impersonate: str = DEFAULT_YAHOO_IMPERSONATE
    history_start: date | None = None
    lookback_days: int = 3
    market_index_symbols: tuple[str, ...] = tuple(DEFAULT_INDEX_SYMBOLS.split(","))
    log_level: str = "INFO"
    log_format: str = "text"
    http_timeout: float = 20.0
    fetch_threads: int = 8
    http_retries: int = 4
    http_backoff: float = 0.5
    worker_group: str = "financial-tracker-etl"
    worker_partitions: int = 6
    db_timeout: float = 15.0           # seconds any database wait may go without a sign of life
    stale_run_seconds: int = 300       # a running run whose heartbeat is older has stopped answering

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> "Settings":
        """Read settings from `environ` (default: the process environment plus `./.env`)."""
        env = dict(_dotenv_values() if dotenv and environ is None else {})
        env.update(os.environ if environ is None else environ)
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> "Settings":
        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        database_url = get("DATABASE_URL")
        if database_url is not None and not database_url.startswith(("postgres://", "postgresql://")):
            scheme = f"{database_url.split('://', 1)[0]}://" if "://" in database_url else "no scheme"
            raise ConfigError(f"DATABASE_URL must be a libpq URI starting with postgresql:// (got {scheme!r})")
        schema = get("DB_SCHEMA") or "public"
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"DB_SCHEMA must be a plain lower-case identifier (a-z, 0-9, _; PostgreSQL folds "
                              f"unquoted names to lower case), got {schema!r}")

        market = get("MARKET_DATA_PROVIDERS")
        default_chain = _provider_list("MARKET_DATA_PROVIDERS", market) if market else None
        chains = {
            asset_type: (_provider_list(var, get(var)) if get(var) else
                         default_chain or DEFAULT_CHAINS.get(asset_type, DEFAULT_CHAIN))
            for asset_type, var in PROVIDER_VARIABLES_BY_TYPE.items()
        }
        base_urls = {name: _url(cls.base_url_variable, get(cls.base_url_variable) or cls.default_base_url)
                     for name, cls in PROVIDERS.items()}
        api_keys = {name: get(cls.key_variable) for name, cls in PROVIDERS.items()
                    if cls.key_variable and get(cls.key_variable)}
        rate_limits = _rate_limits("PROVIDER_RATE_LIMITS", get("PROVIDER_RATE_LIMITS"))
        daily_limits = _rate_limits("PROVIDER_DAILY_LIMITS", get("PROVIDER_DAILY_LIMITS"),
                                    unit="requests_per_day", example="alphavantage=75")

        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        log_format = (get("LOG_FORMAT") or "text").lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"LOG_FORMAT must be 'text' or 'json', got {log_format!r}")

        index_symbols = tuple(
            s.strip() for s in (get("MARKET_INDEX_SYMBOLS") or DEFAULT_INDEX_SYMBOLS).split(",") if s.strip()
        )
        for symbol in index_symbols:
            if not symbol.startswith("^"):
                raise ConfigError(f"MARKET_INDEX_SYMBOLS entries must start with ^ (like ^GSPC), got {symbol!r}")

        return cls(
            database_url=database_url,
            db_host=get("DB_HOST"),
            db_port=_int("DB_PORT", get("DB_PORT"), 5432, minimum=1, maximum=65535),
            db_name=get("DB_NAME"),
            db_user=get("DB_USER"),
            db_password=get("DB_PASSWORD"),
            db_schema=schema,
            data_dir=Path(get("ETL_DATA_DIR")).expanduser() if get("ETL_DATA_DIR") else default_data_dir(),
            kafka_bootstrap_servers=_bootstrap_servers(get("KAFKA_BOOTSTRAP_SERVERS")),
            kafka_topic_prefix=get("KAFKA_TOPIC_PREFIX") or "",
            provider_chains=chains,
            api_keys=api_keys,
            rate_limits=rate_limits,
            daily_limits=daily_limits,
            base_urls=base_urls,
            yahoo_cookie_url=_url("YAHOO_COOKIE_URL", get("YAHOO_COOKIE_URL") or DEFAULT_YAHOO_COOKIE_URL),
            yahoo_impersonate=_impersonate("YAHOO_IMPERSONATE", get("YAHOO_IMPERSONATE")),
            history_start=_date("ETL_HISTORY_START", get("ETL_HISTORY_START")),
            lookback_days=_int("ETL_LOOKBACK_DAYS", get("ETL_LOOKBACK_DAYS"), 3, minimum=0, maximum=366),
            market_index_symbols=index_symbols,
            log_level=log_level,
            log_format=log_format,
            fetch_threads=_int("ETL_FETCH_THREADS", get("ETL_FETCH_THREADS"), 8, minimum=1, maximum=64),
            http_timeout=float(_int("ETL_HTTP_TIMEOUT", get("ETL_HTTP_TIMEOUT"), 20, minimum=1, maximum=600)),
            http_retries=_int("ETL_HTTP_RETRIES", get("ETL_HTTP_RETRIES"), 4, minimum=0, maximum=20),
            http_backoff=_seconds("ETL_HTTP_BACKOFF", get("ETL_HTTP_BACKOFF"), 0.5),
            worker_group=get("ETL_WORKER_GROUP") or "financial-tracker-etl",
            worker_partitions=_int("ETL_WORKER_PARTITIONS", get("ETL_WORKER_PARTITIONS"), 6, minimum=1, maximum=1000),
            db_timeout=float(_int("ETL_DB_TIMEOUT", get("ETL_DB_TIMEOUT"), 15, minimum=2, maximum=3600)),
            stale_run_seconds=_int("ETL_STALE_RUN_SECONDS", get("ETL_STALE_RUN_SECONDS"), 300, minimum=3,
                                   maximum=86400),
        )

    def provider_chain(self, asset_type: str) -> tuple[str, ...]:
        return self.provider_chains.get(asset_type) or DEFAULT_CHAINS.get(asset_type, DEFAULT_CHAIN)

    def api_key(self, provider: str) -> str | None:
        return self.api_keys.get(provider)

    def rate_limit(self, provider: str, declared: int | None) -> int | None:
        """Requests a minute for `provider`: PROVIDER_RATE_LIMITS when it names it, else `declared`."""
        return self.rate_limits.get(provider, declared)

    def daily_limit(self, provider: str, declared: int | None) -> int | None:
        """Requests a UTC day for `provider`: PROVIDER_DAILY_LIMITS when it names it, else `declared`."""
        return self.daily_limits.get(provider, declared)

    def base_url(self, provider: str) -> str:
        return self.base_urls[provider]

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def secrets(self) -> list[str]:
        """Every secret value in these settings, for log redaction."""
        values = [self.db_password, *self.api_keys.values()]
        if self.database_url:
            values.append(urlsplit(self.database_url).password)
        return [v for v in values if v]

    def history_start_or_default(self, today: date) -> date:
        if self.history_start is not None:
            return self.history_start
        try:
            return today.replace(year=today.year - 5)
        except ValueError:  # 29 February
            return today.replace(year=today.year - 5, day=28)


def _dotenv_values() -> dict[str, str]:
    from dotenv import dotenv_values, find_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _provider_list(variable: str, value: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    if not names:
        raise ConfigError(f"{variable} must name at least one provider ({', '.join(PROVIDERS)})")
    for name in names:
        if name not in PROVIDERS:
            raise ConfigError(f"{variable}: unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")
    return names


def _rate_limits(variable: str, value: str | None, *, unit: str = "requests_per_minute",
                 example: str = "yahoo=1200") -> dict[str, int]:
    """`yahoo=1200,coingecko=30`: requests a minute (or a day, per `unit`) per provider."""
    limits: dict[str, int] = {}
    for entry in (value or "").split(","):
        if not entry.strip():
            continue
        name, sep, number = (part.strip() for part in entry.partition("="))
        name = name.lower()
        if not sep or name not in PROVIDERS:
            raise ConfigError(f"{variable} must be provider={unit}[,…] with providers from "
                              f"{', '.join(PROVIDERS)}, like {example}, got {entry.strip()!r}")
        if name in limits:
            raise ConfigError(f"{variable} names {name} twice; keep one {name}=… entry")
        limits[name] = _int(f"{variable} ({name})", number, 0, minimum=1, maximum=1_000_000)
    return limits


def _url(variable: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{variable} must be an http(s) URL with a host, like https://example.com, got {value!r}")
    return value.rstrip("/")


def _impersonate(variable: str, value: str | None) -> str:
    """A browser curl_cffi can impersonate (the installed version's list; its import only when set)."""
    if value is None:
        return DEFAULT_YAHOO_IMPERSONATE
    from etl.utils.http_clients import browser_targets

    targets = browser_targets()
    if value not in targets:
        chrome = sorted(t for t in targets if t.startswith("chrome"))
        raise ConfigError(f"{variable} must be a browser the installed curl_cffi impersonates, like "
                          f"{', '.join(chrome[-3:])} or chrome (its newest), got {value!r}")
    return value


def _int(variable: str, value: str | None, default: int, *, minimum: int, maximum: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{variable} must be between {minimum} and {maximum}, got {number}")
    return number


def _seconds(variable: str, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{variable} must be a number of seconds, got {value!r}") from None
    if not 0 <= number <= 600:
        raise ConfigError(f"{variable} must be between 0 and 600 seconds, got {value}")
    return number


def _date(variable: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{variable} must be an ISO date like 2020-01-31, got {value!r}") from None
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    if not date(1900, 1, 1) <= day <= tomorrow:
        raise ConfigError(f"{variable} must be from 1900-01-01 through tomorrow ({tomorrow}), got {value}")
    return day


def _bootstrap_servers(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    servers = tuple(s.strip() for s in value.split(",") if s.strip())
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port], got {server!r}"
            )
    return servers

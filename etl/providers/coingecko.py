"""CoinGecko (https://docs.coingecko.com): crypto only, priced in USD.

History comes from /coins/{id}/market_chart/range, which has no OHLC: one
[ms, value] point per hour for ranges up to 90 days, one a day beyond. A daily
point is stamped 00:00 UTC and holds the UTC day that just ended (CoinGecko
documents "the last completed UTC day (00:00)"), so a point at exactly
midnight belongs to the day before; every other point to its own day.
A day's close (and its 24-hour volume) is the first point in the hour from the
next 00:00 UTC — the daily point at midnight, or the first hourly point of the
next day — so both granularities close a day at the same moment and a
look-back re-check (hourly) agrees with the first backfill (daily). The request
runs through the day after the last one so that point is in the answer; only a
day without it (today, or a null reading there) closes at its own last point. Quotes come from
/simple/price, many ids in one request.

The key is optional: a demo key goes in the `x-cg-demo-api-key` header, never
in the URL. The free/demo plan serves about 30 requests a minute and 365 days
of history; older days are not asked for (a range entirely older raises a
retryable error so the next provider in the chain is tried).

CoinGecko names coins by id, not ticker. The most traded coins are mapped
below; any other ticker is resolved once through /search (the exact symbol
match with the best market-cap rank) and recorded in `learned_symbols`, which
the pipeline stores in the `provider_symbols` table and the chain gives back in
`known_symbols` on later runs (no /search again). `asset.provider_symbol` (the
user's override) wins over all of them.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from etl.errors import EtlError, FatalError, NotFoundError, RetryableError, UnusableAnswerError
from etl.models import Asset, Bar, Quote
from etl.providers.answers import answer_parser, error_for_code, fetch_json, reading, reported_error, unexpected_answer
from etl.providers.base import Limits, Provider, QuoteBatch, unix_seconds
from etl.utils.fetch_utils import ProviderSession, describe_url
from etl.validate import to_decimal

log = logging.getLogger(__name__)

NAME = "coingecko"
KEY_VARIABLE = "COINGECKO_API_KEY"
KEY_HEADER = "x-cg-demo-api-key"
CURRENCY = "USD"

COIN_IDS = {
    "BTC": "bitcoin", "ETH": "ethereum", "USDT": "tether", "BNB": "binancecoin", "SOL": "solana",
    "XRP": "ripple", "USDC": "usd-coin", "DOGE": "dogecoin", "ADA": "cardano", "TRX": "tron",
    "AVAX": "avalanche-2", "SHIB": "shiba-inu", "TON": "the-open-network", "DOT": "polkadot",
    "LINK": "chainlink", "BCH": "bitcoin-cash", "LTC": "litecoin", "MATIC": "matic-network",
    "POL": "polygon-ecosystem-token", "NEAR": "near", "UNI": "uniswap", "ICP": "internet-computer",
    "DAI": "dai", "XLM": "stellar", "ETC": "ethereum-classic", "APT": "aptos", "ATOM": "cosmos",
    "XMR": "monero", "FIL": "filecoin", "HBAR": "hedera-hashgraph", "ARB": "arbitrum", "OP": "optimism",
    "SUI": "sui", "PEPE": "pepe", "WBTC": "wrapped-bitcoin",
}

KEY_ERROR_CODES = frozenset({401, 10002, 10010, 10011})
PLAN_ERROR_CODES = frozenset({10005})
RANGE_ERROR_CODES = frozenset({10012})
CLOSE_WINDOW_MS = 3_600_000  # a day closes at the first point of the next day's first hour


def _get_json(session: ProviderSession, url: str, params: Mapping[str, Any] | None, api_key: str | None) -> Any:
    return fetch_json(session, url, params, api_key=api_key, key_variable=KEY_VARIABLE)


def fetch_market_chart(session: ProviderSession, base_url: str, coin_id: str, start: date, end: date,
                       api_key: str | None = None) -> Any:
    """The market_chart/range payload covering the UTC days `start` through `end`."""
    params = {"vs_currency": "usd", "from": unix_seconds(start), "to": unix_seconds(end + timedelta(days=2)) - 1}
    return _get_json(session, f"{base_url}/coins/{coin_id}/market_chart/range", params, api_key)


def fetch_simple_price(session: ProviderSession, base_url: str, coin_ids: Sequence[str],
                       api_key: str | None = None) -> Any:
    params = {"ids": ",".join(coin_ids), "vs_currencies": "usd", "include_24hr_change": "true",
              "include_24hr_vol": "true", "include_last_updated_at": "true"}
    return _get_json(session, f"{base_url}/simple/price", params, api_key)


def fetch_search(session: ProviderSession, base_url: str, query: str, api_key: str | None = None) -> Any:
    return _get_json(session, f"{base_url}/search", {"query": query}, api_key)


def body_error(payload: Any, where: str, api_key: str | None = None) -> EtlError | None:
    """The typed error CoinGecko reported in a body, or None when the body carries data."""
    if not isinstance(payload, dict):
        return None
    status, error = payload.get("status"), payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("status"), dict):
        status = error["status"]
    if isinstance(status, dict) and "error_code" in status:
        return coded_error(status.get("error_code"), str(status.get("error_message") or ""), where, api_key)
    if isinstance(error, str):
        if "not found" in error.lower():
            return reported_error(NotFoundError, f"{NAME}: {where}", "unknown coin id; set the asset's "
                                  "provider_symbol to its CoinGecko id", error, api_key)
        return reported_error(FatalError, f"{NAME}: {where}", "the request was refused", error, api_key)
    return None


def coded_error(code: Any, message: str, where: str, api_key: str | None = None) -> EtlError:
    prefix = f"{NAME}: error {code} for {where}"
    if code in KEY_ERROR_CODES:
        return reported_error(FatalError, prefix, f"check {KEY_VARIABLE} (a demo key, for api.coingecko.com)",
                              message, api_key)
    if code in PLAN_ERROR_CODES:
        return reported_error(FatalError, prefix, "not available on this CoinGecko plan; use another provider",
                              message, api_key)
    if code in RANGE_ERROR_CODES:
        return reported_error(RetryableError, prefix, "beyond the history this plan serves; use another provider",
                              message, api_key)
    if code == 429:
        return error_for_code(code, prefix, message, key_variable=KEY_VARIABLE, api_key=api_key)
    return reported_error(RetryableError, prefix, "try again later", message, api_key)


def _points(series: Any) -> list[tuple[int, Any]]:
    """[ms, value] pairs as (ms, value), in time order; malformed entries left out."""
    points = [(entry[0], entry[1]) for entry in series or []
              if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)]
    return sorted(points, key=lambda point: point[0])


def utc_moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def closing_day(ms: int) -> date:
    """The UTC day a point closes: its own, or the day before for a point at exactly 00:00:00.000."""
    return utc_moment(ms - 1).date()


def _close_of_each_day(series: Any) -> dict[date, tuple[datetime, Any]]:
    """Per UTC day with points, its closing point: the first point with a value in the hour from the next
    00:00 UTC; else (today, or a gap) the day's last point with a value, or its last point if none has one."""
    points = _points(series)
    valued = [(ms, value) for ms, value in points if value is not None]
    days: dict[date, tuple[datetime, Any]] = {}
    for ms, value in points:
        day = closing_day(ms)
        held = days.get(day)
        if value is not None or held is None or held[1] is None:
            days[day] = (utc_moment(ms), value)
    for day in days:
        next_midnight = unix_seconds(day + timedelta(days=1)) * 1000
        first = bisect_left(valued, next_midnight, key=lambda point: point[0])
        if first < len(valued) and valued[first][0] < next_midnight + CLOSE_WINDOW_MS:
            days[day] = (utc_moment(valued[first][0]), valued[first][1])
    return days


@answer_parser(NAME)
def parse_market_chart(payload: Mapping[str, Any], asset: Asset) -> list[Bar]:
    """One bar per UTC day: the price and 24 h volume at the day's close (`_close_of_each_day`)."""
    prices = _close_of_each_day(payload.get("prices"))
    volumes = _close_of_each_day(payload.get("total_volumes"))
    return [Bar(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=to_decimal(value),
                volume=to_decimal(volumes.get(day, (None, None))[1]), currency=CURRENCY, as_of=moment,
                source=NAME)
            for day, (moment, value) in sorted(prices.items())]


def parse_simple_price(payload: Mapping[str, Any], assets_by_id: Mapping[str, Asset], where: str,
                       fetched_at: datetime) -> QuoteBatch:
    """Quotes for the ids the answer prices; an id left out or without a USD price is a failure."""
    batch = QuoteBatch()
    for coin_id, asset in assets_by_id.items():
        try:
            with reading(NAME, f"{coin_id} ({asset.spec})"):
                batch.quotes.append(_simple_quote(payload.get(coin_id), coin_id, asset, where, fetched_at))
        except (NotFoundError, UnusableAnswerError) as exc:
            batch.failures[asset] = exc
    return batch


def _simple_quote(entry: Any, coin_id: str, asset: Asset, where: str, fetched_at: datetime) -> Quote:
    price = to_decimal(entry.get("usd")) if isinstance(entry, dict) else None
    if price is None:
        raise NotFoundError(f"{NAME}: no USD price for {coin_id} in the answer from {where} — check the coin id or "
                            "set the asset's provider_symbol")
    stamp = entry.get("last_updated_at")
    as_of = datetime.fromtimestamp(stamp, timezone.utc) if isinstance(stamp, int) else fetched_at
    return Quote(symbol=asset.symbol, asset_type=asset.asset_type, date=as_of.date(), price=price,
                 as_of=as_of, source=NAME, percent_change=to_decimal(entry.get("usd_24h_change")),
                 volume=to_decimal(entry.get("usd_24h_vol")), currency=CURRENCY)


def pick_coin_id(payload: Mapping[str, Any], symbol: str) -> str | None:
    """The id of the coin whose symbol is exactly `symbol` with the best market-cap rank."""
    matches = [coin for coin in payload.get("coins") or []
               if isinstance(coin, dict) and str(coin.get("symbol", "")).upper() == symbol.upper() and coin.get("id")]
    if not matches:
        return None

    def rank(coin: dict) -> tuple[int, int]:
        value = coin.get("market_cap_rank")
        return (0, value) if isinstance(value, int) else (1, 0)
    return min(matches, key=rank)["id"]


class CoinGeckoProvider(Provider):
    name = NAME
    base_url_variable = "COINGECKO_BASE_URL"
    default_base_url = "https://api.coingecko.com/api/v3"
    asset_types = frozenset({"CRYPTO"})
    limits = Limits(per_minute=30, max_batch=250, max_history_days=365)
    key_variable = KEY_VARIABLE
    needs_key = False

    def __init__(self, session: ProviderSession, base_url: str, api_key: str | None = None):
        super().__init__(session, base_url, api_key)
        if api_key:
            self.session.headers[KEY_HEADER] = api_key
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def map_symbol(self, asset: Asset) -> str:
        known = (COIN_IDS.get(asset.symbol.upper()) or self.known_symbols.get((asset.symbol, asset.asset_type))
                 or self.learned_symbols.get(asset))
        if known:
            return known
        where = describe_url(f"{self.base_url}/search", {"query": asset.symbol})
        payload = fetch_search(self.session, self.base_url, asset.symbol, self.api_key)
        error = body_error(payload, where, self.api_key)
        if error:
            raise error
        coin_id = pick_coin_id(payload if isinstance(payload, dict) else {}, asset.symbol)
        if coin_id is None:
            raise NotFoundError(f"{NAME}: no coin with the symbol {asset.symbol} in the answer from {where} — "
                                "set the asset's provider_symbol to its CoinGecko id")
        log.info("coingecko: %s resolved to the coin id %r", asset.spec, coin_id)
        self.learned_symbols[asset] = coin_id
        return coin_id

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        earliest = self.clock().date() - timedelta(days=self.limits.max_history_days - 1)
        if end < earliest:
            raise RetryableError(f"{NAME}: {asset.spec} {start}..{end} is older than the "
                                 f"{self.limits.max_history_days} days of history the free plan serves — "
                                 "use another provider for those days")
        if start < earliest:
            log.info("coingecko: %s history starts at %s, the free plan's limit (asked from %s)",
                     asset.spec, earliest, start)
            start = earliest
        coin_id = self.provider_symbol(asset)
        payload = fetch_market_chart(self.session, self.base_url, coin_id, start, end, self.api_key)
        where = describe_url(f"{self.base_url}/coins/{coin_id}/market_chart/range")
        error = body_error(payload, where, self.api_key)
        if error:
            raise error
        if not isinstance(payload, dict) or not isinstance(payload.get("prices"), list):
            raise unexpected_answer(NAME, where, "no prices")
        return [bar for bar in parse_market_chart(payload, asset) if start <= bar.date <= end]

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        by_id: dict[str, Asset] = {}
        for asset in assets:
            try:
                by_id[self.provider_symbol(asset)] = asset
            except (NotFoundError, RetryableError) as exc:
                batch.failures[asset] = exc
        if not by_id:
            return batch
        where = describe_url(f"{self.base_url}/simple/price", {"ids": ",".join(by_id)})
        payload = fetch_simple_price(self.session, self.base_url, list(by_id), self.api_key)
        error = body_error(payload, where, self.api_key)
        if error:
            raise error
        if not isinstance(payload, dict):
            raise unexpected_answer(NAME, where)
        priced = parse_simple_price(payload, by_id, where, self.clock())
        batch.quotes.extend(priced.quotes)
        batch.failures.update(priced.failures)
        return batch

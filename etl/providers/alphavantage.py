"""Alpha Vantage (https://www.alphavantage.co/documentation/): every call is GET /query?function=….

Needs ALPHA_VANTAGE_API_KEY (the `apikey` parameter; fetch_utils removes it
from messages, and this module removes it from the API's own messages too:
the daily-limit notice quotes the key back).

History: TIME_SERIES_DAILY for stocks and ETFs, FX_DAILY for forex pairs
(`EUR/USD` → from_symbol=EUR, to_symbol=USD), DIGITAL_CURRENCY_DAILY with
market=USD for crypto. `outputsize=compact` (the latest 100 data points) is
asked for whenever the range starts within COMPACT_DAYS calendar days. Older
forex ranges ask `full`; for TIME_SERIES_DAILY `full` is a premium feature, so
an older stock range is not asked at all: it raises a RetryableError and the
chain asks the next provider (that depth, COMPACT_DAYS, is declared for stocks
and ETFs only by `history_depth`, so the planner does not ask this provider for
more; forex and crypto history is served in full). Any "premium" notice the API still sends is a RetryableError too: it
concerns one request, never the whole job.

Prices are as traded. With a stock's or ETF's history come its splits and
dividends (SPLITS: `data` [{effective_date, split_factor}]; DIVIDENDS: `data`
[{ex_dividend_date, amount, …}], amounts as paid, "None" where unknown): two
more requests, once per asset and run, and none when the pipeline knows them
through today already. Should they fail, the bars still load and the actions
are asked again on the next run.

Quotes: GLOBAL_QUOTE for stocks and ETFs, CURRENCY_EXCHANGE_RATE for forex and
crypto, one symbol per request. GLOBAL_QUOTE has a trading day but no time,
so its `as_of` is the time it was fetched.

The free tier allows 25 requests a day and 5 a minute. Errors arrive inside a
200: "Error Message" (unknown symbol, or a bad key), "Note" (call frequency),
"Information" (daily limit, burst limit, bad key or a premium feature).
Indices are not offered by this API.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import EtlError, FatalError, NotFoundError, QuotaExhaustedError, RateLimitedError, RetryableError
from etl.models import AnswerMeta, Asset, Bar, CorporateAction, HistoryAnswer, Quote
from etl.providers.answers import UNKNOWN_SYMBOL, answer_parser, fetch_json, reported_error, unexpected_answer
from etl.providers.base import Limits, Provider, QuoteBatch
from etl.utils.fetch_utils import ProviderSession, describe_url
from etl.validate import to_decimal

log = logging.getLogger(__name__)

NAME = "alphavantage"
KEY_VARIABLE = "ALPHA_VANTAGE_API_KEY"
CRYPTO_MARKET = "USD"
# 100 weekday points span exactly 20 weeks (140 days); a day or two of lag would leave the oldest weekday
# of a 140-day window outside the answer and record it as empty for good, so stay well inside them.
COMPACT_DAYS = 130
LIMITED_TYPES = frozenset({"STOCK", "ETF"})  # only TIME_SERIES_DAILY's full output is premium

SERIES_KEYS = {
    "TIME_SERIES_DAILY": "Time Series (Daily)",
    "FX_DAILY": "Time Series FX (Daily)",
    "DIGITAL_CURRENCY_DAILY": "Time Series (Digital Currency Daily)",
}
# Field names as documented today, then the older crypto names ("1a. open (USD)") some accounts still get.
FIELDS = {
    "open": ("1. open", f"1a. open ({CRYPTO_MARKET})"),
    "high": ("2. high", f"2a. high ({CRYPTO_MARKET})"),
    "low": ("3. low", f"3a. low ({CRYPTO_MARKET})"),
    "close": ("4. close", f"4a. close ({CRYPTO_MARKET})"),
    "volume": ("5. volume",),
}


def fetch_query(session: ProviderSession, base_url: str, params: Mapping[str, str], api_key: str | None) -> Any:
    """GET /query with `params` and the key; the key is taken out of any error."""
    return fetch_json(session, f"{base_url}/query", {**params, "apikey": api_key}, api_key=api_key,
                      key_variable=KEY_VARIABLE)


def pair(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote


def history_params(asset: Asset, symbol: str, start: date, today: date) -> dict[str, str]:
    """The /query parameters for `asset`'s daily history from `start` on."""
    size = "compact" if (today - start).days <= COMPACT_DAYS else "full"
    if asset.asset_type == "FOREX":
        from_symbol, to_symbol = pair(symbol)
        return {"function": "FX_DAILY", "from_symbol": from_symbol, "to_symbol": to_symbol, "outputsize": size}
    if asset.asset_type == "CRYPTO":
        return {"function": "DIGITAL_CURRENCY_DAILY", "symbol": symbol, "market": CRYPTO_MARKET}
    return {"function": "TIME_SERIES_DAILY", "symbol": symbol, "outputsize": size}


def quote_params(asset: Asset, symbol: str) -> dict[str, str]:
    if asset.asset_type == "FOREX":
        from_currency, to_currency = pair(symbol)
        return {"function": "CURRENCY_EXCHANGE_RATE", "from_currency": from_currency, "to_currency": to_currency}
    if asset.asset_type == "CRYPTO":
        return {"function": "CURRENCY_EXCHANGE_RATE", "from_currency": symbol, "to_currency": CRYPTO_MARKET}
    return {"function": "GLOBAL_QUOTE", "symbol": symbol}


def price_currency(asset: Asset, symbol: str) -> str | None:
    if asset.asset_type == "FOREX":
        return pair(symbol)[1].upper()
    if asset.asset_type == "CRYPTO":
        return CRYPTO_MARKET
    return asset.currency


def body_error(payload: Any, where: str, api_key: str | None = None) -> EtlError | None:
    """The typed error an Alpha Vantage body reports instead of data, or None."""
    if not isinstance(payload, dict):
        return unexpected_answer(NAME, where)
    for field, classify in (("Error Message", _error_message), ("Note", _note), ("Information", _information)):
        if field in payload:
            error_class, advice = classify(str(payload[field]).lower())
            return reported_error(error_class, f"{NAME}: {where}", advice, str(payload[field]), api_key)
    return None


def _is_key_problem(text: str) -> bool:
    return "invalid or missing" in text or "invalid api key" in text


def _error_message(text: str) -> tuple[type[EtlError], str]:
    if _is_key_problem(text):
        return FatalError, f"check {KEY_VARIABLE}"
    return NotFoundError, UNKNOWN_SYMBOL


def _note(text: str) -> tuple[type[EtlError], str]:
    return RateLimitedError, "over the call frequency; try again in a minute"


def _information(text: str) -> tuple[type[EtlError], str]:
    if _is_key_problem(text):
        return FatalError, f"check {KEY_VARIABLE}"
    if any(word in text for word in ("spreading out", "per second", "per minute", "burst", "call frequency")):
        return RateLimitedError, "too many requests at once; try again in a minute"
    if "per day" in text or "daily rate limit" in text or "daily limit" in text:
        return QuotaExhaustedError, ("the free daily allowance is spent; Alpha Vantage answers again tomorrow, "
                                    "or use another provider")
    if "premium" in text:
        return RetryableError, ("a premium feature, not on the free plan; the next provider in the chain is asked "
                                "(add one to the *_PROVIDERS setting if none is left)")
    return RetryableError, "the API answered with a notice instead of data; try again later"


def _field(values: Mapping[str, Any], name: str) -> Decimal | None:
    for key in FIELDS[name]:
        if key in values:
            return to_decimal(values[key])
    return None


@answer_parser(NAME)
def parse_daily(payload: Mapping[str, Any], asset: Asset, function: str, currency: str | None) -> list[Bar]:
    """Bars from a daily time series payload (keys are trading dates), as given."""
    series = payload.get(SERIES_KEYS[function]) or {}
    bars = []
    for day_text, values in series.items():
        try:
            day = date.fromisoformat(day_text[:10])
        except ValueError:
            log.warning("alphavantage: %s: skipping a row with an unreadable date %r", asset.spec, day_text)
            continue
        values = values if isinstance(values, dict) else {}
        bars.append(Bar(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=_field(values, "close"),
                        open=_field(values, "open"), high=_field(values, "high"), low=_field(values, "low"),
                        volume=_field(values, "volume"), currency=currency, source=NAME))
    return sorted(bars, key=lambda bar: bar.date)


def daily_meta(payload: Mapping[str, Any], currency: str | None) -> AnswerMeta:
    """What a daily series says of its asset: the currency of its prices and, for a digital
    currency, its name ("Meta Data" → "3. Digital Currency Name"). The "Time Zone" there is that of
    "Last Refreshed" (US/Eastern for every stock, wherever listed), not the exchange's: left out."""
    meta = payload.get("Meta Data")
    named = {key.partition(". ")[2]: value for key, value in meta.items()} if isinstance(meta, dict) else {}
    return AnswerMeta.of(named.get("Digital Currency Name"), currency)


@answer_parser(NAME)
def parse_splits(payload: Mapping[str, Any], asset: Asset) -> list[CorporateAction]:
    """Splits from a SPLITS payload: `split_factor` is shares after per share before (4 for 4:1)."""
    actions = []
    for row in _rows(payload):
        day, ratio = _day(row.get("effective_date")), to_decimal(row.get("split_factor"))
        if day is not None and ratio is not None and ratio.is_finite() and ratio > 0 and ratio != 1:
            actions.append(CorporateAction(asset.symbol, asset.asset_type, day, "split", NAME, ratio=ratio))
    return actions


@answer_parser(NAME)
def parse_dividends(payload: Mapping[str, Any], asset: Asset, currency: str | None) -> list[CorporateAction]:
    """Dividends from a DIVIDENDS payload, by ex-dividend date, amounts as paid."""
    actions = []
    for row in _rows(payload):
        day, amount = _day(row.get("ex_dividend_date")), to_decimal(row.get("amount"))
        if day is not None and amount is not None and amount.is_finite() and amount > 0:
            actions.append(CorporateAction(asset.symbol, asset.asset_type, day, "dividend", NAME, amount=amount,
                                           currency=currency))
    return actions


def _rows(payload: Mapping[str, Any]) -> list[dict]:
    return [row for row in payload.get("data") or [] if isinstance(row, dict)]


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


@answer_parser(NAME)
def parse_global_quote(payload: Mapping[str, Any], asset: Asset, currency: str | None, fetched_at: datetime,
                       where: str) -> Quote:
    """A stock quote from GLOBAL_QUOTE; an empty "Global Quote" means an unknown symbol."""
    values = payload.get("Global Quote") or {}
    if not values:
        raise NotFoundError(f"{NAME}: {where} — empty quote: unknown symbol; check it or set the asset's "
                            "provider_symbol")
    try:
        day = date.fromisoformat(str(values.get("07. latest trading day")))
    except ValueError:
        day = fetched_at.date()
    percent = str(values.get("10. change percent") or "").strip().rstrip("%")
    return Quote(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=to_decimal(values.get("05. price")),
                 as_of=fetched_at, source=NAME, change=to_decimal(values.get("09. change")),
                 percent_change=to_decimal(percent), open=to_decimal(values.get("02. open")),
                 high=to_decimal(values.get("03. high")), low=to_decimal(values.get("04. low")),
                 volume=to_decimal(values.get("06. volume")), currency=currency)


@answer_parser(NAME)
def parse_exchange_rate(payload: Mapping[str, Any], asset: Asset, currency: str | None, fetched_at: datetime,
                        where: str) -> Quote:
    """A forex or crypto quote from CURRENCY_EXCHANGE_RATE, stamped with its "Last Refreshed" time."""
    values = payload.get("Realtime Currency Exchange Rate") or {}
    if not values:
        raise NotFoundError(f"{NAME}: {where} — no exchange rate: unknown currency; check the symbol")
    as_of = _refreshed_at(values.get("6. Last Refreshed"), values.get("7. Time Zone")) or fetched_at
    name = values.get("2. From_Currency Name") if asset.asset_type == "CRYPTO" else None
    return Quote(symbol=asset.symbol, asset_type=asset.asset_type, date=as_of.astimezone(timezone.utc).date(),
                 price=to_decimal(values.get("5. Exchange Rate")), as_of=as_of, source=NAME,
                 currency=str(values.get("3. To_Currency Code") or currency or "").upper() or None,
                 name=name if isinstance(name, str) else None)


def _refreshed_at(text: Any, zone_name: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    try:
        zone = ZoneInfo(str(zone_name)) if zone_name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


class AlphaVantageProvider(Provider):
    name = NAME
    base_url_variable = "ALPHA_VANTAGE_BASE_URL"
    default_base_url = "https://www.alphavantage.co"
    asset_types = frozenset({"STOCK", "ETF", "FOREX", "CRYPTO"})
    limits = Limits(per_minute=5, per_day=25, max_batch=1)
    key_variable = KEY_VARIABLE
    needs_key = True
    reports_actions = LIMITED_TYPES

    @classmethod
    def history_depth(cls, asset_type: str) -> int | None:
        return COMPACT_DAYS if asset_type in LIMITED_TYPES else None

    def __init__(self, session: ProviderSession, base_url: str, api_key: str | None = None):
        super().__init__(session, base_url, api_key)
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self._actions: dict[Asset, list[CorporateAction]] = {}   # asked once per asset and run

    def _query(self, params: Mapping[str, str]) -> Any:
        where = describe_url(f"{self.base_url}/query", params)
        payload = fetch_query(self.session, self.base_url, params, self.api_key)
        error = body_error(payload, where, self.api_key)
        if error:
            raise error
        return payload

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        return self._daily(asset, start, end).bars

    def _daily(self, asset: Asset, start: date, end: date) -> HistoryAnswer:
        """The daily series of `asset` for `start`..`end`, with what its meta says of the asset."""
        symbol = self.provider_symbol(asset)
        params = history_params(asset, symbol, start, self.clock().date())
        if params["function"] == "TIME_SERIES_DAILY" and params["outputsize"] == "full":
            raise RetryableError(f"{NAME}: {asset.spec} {start}..{end} reaches back more than the about 100 "
                                 f"trading days ({COMPACT_DAYS} calendar days) the free plan serves for stocks — "
                                 "another provider is asked for those days (add one to STOCK_PROVIDERS if none "
                                 "is left)")
        payload = self._query(params)
        currency = price_currency(asset, symbol)
        return HistoryAnswer.of(parse_daily(payload, asset, params["function"], currency),
                                daily_meta(payload, currency))

    def history_answer(self, asset: Asset, start: date, end: date, *, actions: bool = True) -> HistoryAnswer:
        answer = self._daily(asset, start, end)
        if not actions or asset.asset_type not in self.reports_actions:
            return answer
        if asset not in self._actions:
            try:
                self._actions[asset] = self.actions(asset)
            except (NotFoundError, RetryableError) as exc:
                log.warning("%s: %s: splits and dividends not available (%s); the bars load without them and "
                            "they are asked again on the next run", NAME, asset.spec, exc)
                return answer
        return HistoryAnswer(answer.bars, self._actions[asset], answer.answered, checked_actions=True,
                             meta=answer.meta)

    def actions(self, asset: Asset) -> list[CorporateAction]:
        """Every split and dividend of `asset` Alpha Vantage knows (SPLITS and DIVIDENDS)."""
        symbol = self.provider_symbol(asset)
        splits = self._query({"function": "SPLITS", "symbol": symbol})
        dividends = self._query({"function": "DIVIDENDS", "symbol": symbol})
        return parse_splits(splits, asset) + parse_dividends(dividends, asset, price_currency(asset, symbol))

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        for asset in assets:
            symbol = self.provider_symbol(asset)
            params = quote_params(asset, symbol)
            where = describe_url(f"{self.base_url}/query", params)
            try:
                payload = self._query(params)
                parse = parse_global_quote if params["function"] == "GLOBAL_QUOTE" else parse_exchange_rate
                batch.quotes.append(parse(payload, asset, price_currency(asset, symbol), self.clock(), where))
            except (FatalError, QuotaExhaustedError):
                raise
            except (NotFoundError, RetryableError) as exc:
                batch.failures[asset] = exc
        return batch

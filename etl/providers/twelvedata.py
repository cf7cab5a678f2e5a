"""Twelve Data (https://twelvedata.com/docs): daily history from /time_series, batched /quote.

Needs TWELVE_DATA_API_KEY, sent as the documented `apikey` query parameter
(fetch_utils removes it from every message). Numbers arrive as JSON strings
and are parsed with `to_decimal`, never through float.

History is asked with `adjust=none`: /time_series adjusts for splits by
default, and the prices stored are as traded. It has no adjusted close (the
pipeline computes one from the stored corporate actions). Its `meta` gives the
currency, exchange and exchange_timezone; /quote gives the name.

With a stock's or ETF's history come its splits and dividends, from /splits and
/dividends (`range=full`: the default is the last one only; dividends with
`adjust=false`, as paid), at most once per asset and run and only when the
pipeline says they need checking. Each costs 20 API credits and needs a Grow
plan or above, so they are asked only while the per-minute limit in force
(PROVIDER_RATE_LIMITS) is at least ACTIONS_COST; a plan that refuses them, or a
daily budget that cannot pay for them, stops them for the rest of the run (said
once). Whatever keeps them from being had, the bars still load and the answer
says the actions were not checked, so a later run asks again.

Limits are those of the free "Basic" plan: 8 API credits a minute and 800 a
day, one credit per symbol, so a batched /quote of 8 symbols spends a whole
minute's credits. /time_series returns at most 5000 points a request, the
newest of the range (`max_points`): the chain asks again for the older rest.

Symbols: stocks, ETFs and forex pairs (`EUR/USD`) are the same on Twelve Data;
crypto is priced against USD (`BTC` → `BTC/USD`); an index drops its caret
(`^GSPC` → `GSPC`). That last one is an assumption: Twelve Data lists many
indices under other tickers (the S&P 500 is `SPX`) or only on paid plans, so
indices usually need `asset.provider_symbol` set.

Errors arrive as {"code": …, "message": …, "status": "error"}, in a 200 or with
the same HTTP status, for the whole request or (in a batch) for one symbol.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from etl.errors import EtlError, FatalError, NotFoundError, QuotaExhaustedError, RateLimitedError, RetryableError
from etl.models import AnswerMeta, Asset, Bar, CorporateAction, HistoryAnswer, Quote
from etl.providers.answers import (answer_parser, error_for_code, fetch_json, reported_error, scrub,
                                  unexpected_answer)
from etl.providers.base import Limits, Provider, ProviderSettings, QuoteBatch
from etl.utils.fetch_utils import ProviderSession, describe_url
from etl.validate import to_decimal, to_major_unit

log = logging.getLogger(__name__)

NAME = "twelvedata"
KEY_VARIABLE = "TWELVE_DATA_API_KEY"
# /time_series returns at most 5000 points a request (`outputsize` 1..5000), the newest of the range.
MAX_POINTS = 5000
# API credits of one /splits or /dividends request (Twelve Data's docs: 20 per symbol, Grow plan and above).
ACTIONS_COST = 20
ACTIONS_TYPES = frozenset({"STOCK", "ETF"})
# What Twelve Data says when an endpoint or a symbol is not on the key's plan.
PLAN_PHRASES = ("with your plan", "available starting with", "available exclusively with", "upgrading")


def fetch_time_series(session: ProviderSession, base_url: str, api_key: str | None, symbol: str,
                      start: date, end_exclusive: date) -> Any:
    """The /time_series payload of daily bars for `symbol` from `start` up to `end_exclusive`."""
    params = {"symbol": symbol, "interval": "1day", "start_date": start.isoformat(),
              "end_date": end_exclusive.isoformat(), "outputsize": MAX_POINTS, "adjust": "none", "apikey": api_key}
    return _get_json(session, f"{base_url}/time_series", params, api_key)


def fetch_quotes(session: ProviderSession, base_url: str, api_key: str | None, symbols: Sequence[str]) -> Any:
    """The /quote payload for `symbols`: one flat object for one symbol, keyed by symbol for several.

    Twelve Data charges one API credit per symbol, batched or not, so the request costs len(symbols)
    of the session's rate limit and daily budget.
    """
    params = {"symbol": ",".join(symbols), "apikey": api_key}
    return _get_json(session, f"{base_url}/quote", params, api_key, cost=len(symbols))


def fetch_splits(session: ProviderSession, base_url: str, api_key: str | None, symbol: str) -> Any:
    """The /splits payload of every split of `symbol` (ACTIONS_COST credits)."""
    params = {"symbol": symbol, "range": "full", "apikey": api_key}
    return _get_json(session, f"{base_url}/splits", params, api_key, cost=ACTIONS_COST)


def fetch_dividends(session: ProviderSession, base_url: str, api_key: str | None, symbol: str) -> Any:
    """The /dividends payload of every dividend of `symbol`, amounts as paid (ACTIONS_COST credits)."""
    params = {"symbol": symbol, "range": "full", "adjust": "false", "apikey": api_key}
    return _get_json(session, f"{base_url}/dividends", params, api_key, cost=ACTIONS_COST)


def _get_json(session: ProviderSession, url: str, params: Mapping[str, Any], api_key: str | None,
              cost: int = 1) -> Any:
    # A 403 may carry Twelve Data's own error object (a plan refusal): it is read like one sent in a 200.
    return fetch_json(session, url, params, api_key=api_key, key_variable=KEY_VARIABLE, cost=cost,
                      json_statuses=(403,))


class PlanRefusal(EtlError):
    """The key's plan does not include an endpoint (never leaves this module)."""


def is_error(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("status") == "error"


def is_plan_refusal(payload: Any) -> bool:
    """An error object saying the endpoint or symbol is not on the key's plan."""
    text = str(payload.get("message") or "").lower() if is_error(payload) else ""
    return any(phrase in text for phrase in PLAN_PHRASES)


def api_error(payload: Mapping[str, Any], where: str, api_key: str | None = None) -> EtlError:
    """The typed error for a Twelve Data error object (not raised, so callers choose)."""
    code = payload.get("code")
    message = str(payload.get("message") or "no message")
    text = message.lower()
    prefix = f"{NAME}: {code} for {where}"
    if code == 429 and "for the day" in text:
        return reported_error(QuotaExhaustedError, prefix, "the daily API credits are spent; Twelve Data answers "
                              "again after midnight UTC, or use another provider", message, api_key)
    if code == 429:
        return reported_error(RateLimitedError, prefix, "out of API credits for this minute; try again in a minute",
                              message, api_key)
    if is_plan_refusal(payload):
        return reported_error(NotFoundError, prefix, "this symbol needs a paid Twelve Data plan; set the asset's "
                              "provider_symbol or use another provider", message, api_key)
    return error_for_code(code, prefix, message, key_variable=KEY_VARIABLE, api_key=api_key)


def quote_currency(asset: Asset, provider_symbol: str, given: Any) -> str | None:
    """The currency prices are in: as given, else the quote side of a pair (`BTC/USD` → USD)."""
    if given:
        return str(given)
    if asset.asset_type in ("FOREX", "CRYPTO") and "/" in provider_symbol:
        return provider_symbol.rpartition("/")[2].upper()
    return asset.currency


def _major(values: Mapping[str, Decimal | None], currency: str | None) -> tuple[dict[str, Decimal | None], str | None]:
    """Each price in `values` in the major currency unit (GBp → GBP), and that currency."""
    converted, major = {}, currency
    for name, value in values.items():
        converted[name], major = to_major_unit(value, currency)
    return converted, major


@answer_parser(NAME)
def parse_time_series(payload: Mapping[str, Any], asset: Asset, provider_symbol: str) -> list[Bar]:
    """Daily bars from a /time_series payload, as given (nulls stay None; validation judges)."""
    meta = payload.get("meta") or {}
    currency = quote_currency(asset, provider_symbol, meta.get("currency"))
    bars = []
    for row in payload.get("values") or []:
        try:
            day = date.fromisoformat(str(row.get("datetime"))[:10])
        except ValueError:
            log.warning("twelvedata: %s: skipping a row with an unreadable date %r", asset.spec, row.get("datetime"))
            continue
        prices, major = _major({name: to_decimal(row.get(name)) for name in ("close", "open", "high", "low")},
                               currency)
        bars.append(Bar(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=prices["close"],
                        open=prices["open"], high=prices["high"], low=prices["low"],
                        volume=to_decimal(row.get("volume")), currency=major, source=NAME))
    return bars


def time_series_meta(payload: Mapping[str, Any], asset: Asset, provider_symbol: str) -> AnswerMeta:
    """What a /time_series `meta` says of the asset: the currency of its bars (major unit), its
    `exchange` and `exchange_timezone`. It carries no name (the /quote answer does)."""
    meta = payload.get("meta") or {}
    if not isinstance(meta, dict):
        return AnswerMeta()
    currency = to_major_unit(None, quote_currency(asset, provider_symbol, meta.get("currency")))[1]
    return AnswerMeta.of(None, currency, meta.get("exchange"), meta.get("exchange_timezone"))


@answer_parser(NAME)
def parse_splits(payload: Mapping[str, Any], asset: Asset) -> list[CorporateAction]:
    """Splits from a /splits payload. Twelve Data's `from_factor` is the shares after and `to_factor`
    the shares before (a 4-for-1 split: 4 and 1, `ratio` 0.25, the price multiplier), so the
    stored ratio is from_factor / to_factor, or 1 / ratio when the factors are missing."""
    actions = []
    for row in _rows(payload, "splits"):
        day = _day(row.get("date"))
        after, before, multiplier = (to_decimal(row.get(name)) for name in ("from_factor", "to_factor", "ratio"))
        if _positive(after) and _positive(before):
            ratio = after / before
        elif _positive(multiplier):
            ratio = 1 / multiplier
        else:
            ratio = None
        if day is not None and ratio is not None and ratio != 1:
            actions.append(CorporateAction(asset.symbol, asset.asset_type, day, "split", NAME, ratio=ratio))
    return actions


@answer_parser(NAME)
def parse_dividends(payload: Mapping[str, Any], asset: Asset, provider_symbol: str) -> list[CorporateAction]:
    """Dividends from a /dividends payload, by `ex_date`, amounts as paid in the major currency unit."""
    currency = quote_currency(asset, provider_symbol, (payload.get("meta") or {}).get("currency"))
    actions = []
    for row in _rows(payload, "dividends"):
        day = _day(row.get("ex_date"))
        amount, major = to_major_unit(to_decimal(row.get("amount")), currency)
        if day is not None and _positive(amount):
            actions.append(CorporateAction(asset.symbol, asset.asset_type, day, "dividend", NAME, amount=amount,
                                           currency=major))
    return actions


def _rows(payload: Mapping[str, Any], key: str) -> list[dict]:
    return [row for row in payload.get(key) or [] if isinstance(row, dict)]


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _positive(value: Decimal | None) -> bool:
    return value is not None and value.is_finite() and value > 0


@answer_parser(NAME)
def parse_quote(payload: Mapping[str, Any], asset: Asset, provider_symbol: str) -> Quote:
    """One asset's quote from its /quote object. The trading date is the object's `datetime`
    (the exchange's own calendar); `as_of` is the last quote time, else the bar's timestamp."""
    stamp = payload.get("last_quote_at") or payload.get("timestamp")
    if not isinstance(stamp, int):
        raise RetryableError(f"{NAME}: quote for {provider_symbol} has no timestamp — try again later")
    as_of = datetime.fromtimestamp(stamp, timezone.utc)
    try:
        day = date.fromisoformat(str(payload.get("datetime"))[:10])
    except ValueError:
        day = as_of.date()
    currency = quote_currency(asset, provider_symbol, payload.get("currency"))
    prices, major = _major({name: to_decimal(payload.get(name)) for name in ("close", "open", "high", "low", "change")},
                           currency)
    return Quote(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=prices["close"], as_of=as_of,
                 source=NAME, change=prices["change"], percent_change=to_decimal(payload.get("percent_change")),
                 open=prices["open"], high=prices["high"], low=prices["low"],
                 volume=to_decimal(payload.get("volume")), currency=major,
                 name=payload.get("name"), exchange=payload.get("exchange"))


def quote_objects(payload: Any, symbols: Sequence[str]) -> dict[str, Any]:
    """Each requested symbol's object from a /quote payload (flat for one symbol, keyed for several)."""
    if not isinstance(payload, dict):
        return {}
    if len(symbols) == 1:
        return {symbols[0]: payload}
    return {symbol: payload.get(symbol) for symbol in symbols if symbol in payload}


class TwelveDataProvider(Provider):
    name = NAME
    base_url_variable = "TWELVE_DATA_BASE_URL"
    default_base_url = "https://api.twelvedata.com"
    asset_types = frozenset({"STOCK", "ETF", "INDEX", "FOREX", "CRYPTO"})
    limits = Limits(per_minute=8, per_day=800, max_batch=8, max_points=MAX_POINTS)
    key_variable = KEY_VARIABLE
    needs_key = True
    reports_actions = ACTIONS_TYPES

    @classmethod
    def asks_actions(cls, asset_type: str, settings: ProviderSettings) -> bool:
        per_minute = settings.rate_limit(NAME, cls.limits.per_minute)
        return asset_type in cls.reports_actions and (not per_minute or per_minute >= ACTIONS_COST)

    def __init__(self, session: ProviderSession, base_url: str, api_key: str | None = None):
        super().__init__(session, base_url, api_key)
        self._lock = threading.Lock()    # history is fetched on several threads
        self._asked: dict[Asset, tuple[list[CorporateAction], bool]] = {}   # at most once per asset and run
        self._stopped: str | None = None  # why no more splits and dividends are asked in this run

    def map_symbol(self, asset: Asset) -> str:
        if asset.asset_type == "CRYPTO" and "/" not in asset.symbol:
            return f"{asset.symbol}/USD"
        if asset.asset_type == "INDEX":
            return asset.symbol.lstrip("^")
        return asset.symbol

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        return self._series(asset, start, end).bars

    def _series(self, asset: Asset, start: date, end: date) -> HistoryAnswer:
        symbol = self.provider_symbol(asset)
        # end_date bounds the series exclusively in practice; ask for the day after and trim.
        payload = fetch_time_series(self.session, self.base_url, self.api_key, symbol, start, end + timedelta(days=1))
        where = describe_url(f"{self.base_url}/time_series", {"symbol": symbol})
        if is_error(payload):
            raise api_error(payload, where, self.api_key)
        if not isinstance(payload, dict):
            raise unexpected_answer(NAME, where)
        return HistoryAnswer.of([bar for bar in parse_time_series(payload, asset, symbol) if bar.date <= end],
                                time_series_meta(payload, asset, symbol))

    def history_answer(self, asset: Asset, start: date, end: date, *, actions: bool = True) -> HistoryAnswer:
        answer = self._series(asset, start, end)
        if not actions or asset.asset_type not in self.reports_actions:
            return answer
        reported, checked = self.actions_once(asset)
        return replace(answer, actions=reported, checked_actions=checked)

    def actions_once(self, asset: Asset) -> tuple[list[CorporateAction], bool]:
        """`asset`'s splits and dividends, and whether they are all of them; asked at most once per run."""
        with self._lock:
            done = self._asked.get(asset)
        if done is not None:
            return done
        interval = self.session.limiter.interval
        per_minute = 60.0 / interval if interval else None
        if per_minute is not None and per_minute < ACTIONS_COST:
            self._stop(f"/splits and /dividends cost {ACTIONS_COST} API credits each, more than the {per_minute:g} "
                       f"a minute in force (Twelve Data's free plan; a Grow plan or above serves them: set "
                       f"PROVIDER_RATE_LIMITS={NAME}=N to its rate)")
        result = ([], False) if self._stopped else self._fetch_actions(asset)
        with self._lock:
            self._asked[asset] = result
        return result

    def _fetch_actions(self, asset: Asset) -> tuple[list[CorporateAction], bool]:
        symbol = self.provider_symbol(asset)
        found: list[CorporateAction] = []
        try:
            found += parse_splits(self._actions_payload(fetch_splits, "/splits", symbol), asset)
            found += parse_dividends(self._actions_payload(fetch_dividends, "/dividends", symbol), asset, symbol)
        except (PlanRefusal, QuotaExhaustedError) as exc:
            self._stop(str(exc))
            return found, False
        except (NotFoundError, RetryableError) as exc:
            log.warning("%s: %s: splits and dividends not available (%s); the bars load without them and they are "
                        "asked again on a later run", NAME, asset.spec, exc)
            return found, False
        return found, True

    def _actions_payload(self, fetch: Callable[..., Any], path: str, symbol: str) -> Any:
        payload = fetch(self.session, self.base_url, self.api_key, symbol)
        where = describe_url(f"{self.base_url}{path}", {"symbol": symbol})
        if is_error(payload) and (payload.get("code") == 403 or is_plan_refusal(payload)):
            raise PlanRefusal(f"{where} is not on this key's plan ({scrub(str(payload.get('message')), self.api_key)})")
        if is_error(payload):
            raise api_error(payload, where, self.api_key)
        if not isinstance(payload, dict):
            raise unexpected_answer(NAME, where)
        return payload

    def _stop(self, why: str) -> None:
        """Ask no more splits and dividends in this run, and say why once."""
        with self._lock:
            if self._stopped is not None:
                return
            self._stopped = why
        log.warning("%s: %s — splits and dividends are not asked again in this run; the bars still load, and the "
                    "actions stay unchecked for a later run (adj_close uses those already stored)", NAME, why)

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        by_symbol = {self.provider_symbol(asset): asset for asset in assets}
        symbols = list(by_symbol)
        if not symbols:
            return batch
        payload = fetch_quotes(self.session, self.base_url, self.api_key, symbols)
        where = describe_url(f"{self.base_url}/quote", {"symbol": ",".join(symbols)})
        if is_error(payload) and "code" in payload:  # the whole request failed
            error = api_error(payload, where, self.api_key)
            if not isinstance(error, NotFoundError):
                raise error
            batch.failures.update((asset, error) for asset in by_symbol.values())
            return batch
        if not isinstance(payload, dict):
            raise unexpected_answer(NAME, where)
        objects = quote_objects(payload, symbols)
        for symbol, asset in by_symbol.items():
            found = objects.get(symbol)
            one = describe_url(f"{self.base_url}/quote", {"symbol": symbol})
            if not isinstance(found, dict):
                batch.failures[asset] = NotFoundError(f"{NAME}: no quote for {symbol} in the answer from {where} — "
                                                      "check the symbol or set the asset's provider_symbol")
            elif is_error(found):
                error = api_error(found, one, self.api_key)
                if isinstance(error, (FatalError, QuotaExhaustedError)):
                    raise error
                batch.failures[asset] = error
            else:
                try:
                    batch.quotes.append(parse_quote(found, asset, symbol))
                except RetryableError as exc:
                    batch.failures[asset] = exc
        return batch

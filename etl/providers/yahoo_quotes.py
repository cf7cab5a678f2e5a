"""Yahoo quotes: the spark endpoint, and the chart endpoint when spark is refused.

Spark, `/v7/finance/spark?symbols=A,B,…&range=1d&interval=1d`, answers with one
chart-like `response[0].meta` per symbol in a single request, 20 symbols at
most. An unknown symbol is missing from the answer (or, when every symbol is
unknown, a 404 whose body is spark's own `{"spark": {"error": {"code": "Not
Found"}}}`).

Yahoo has been closing spark to clients it does not like: a 401 or 403, a 404
that is not spark's own answer, or "User is unable to access this feature"
in the error description. Then the quotes of the rest of the run come from
the chart endpoint, `/v8/finance/chart/{symbol}?range=1d&interval=1d`, one
request per symbol inside the rate limit: its `meta` has the same
`regularMarketPrice`, `regularMarketTime`, day high and low, volume and
previous close as spark's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from etl.errors import (AccessRefusedError, NotFoundError, ProviderUnavailableError, QuotaExhaustedError,
                        RetryableError, UnusableAnswerError)
from etl.models import Asset, Quote
from etl.providers.answers import answer_parser, reading
from etl.providers.base import QuoteBatch
from etl.providers.yahoo_auth import FEATURE_REFUSED, YahooAuth
from etl.providers.yahoo_chart import (NAME, chart_meta, chart_path, chart_result, exchange_zone, major_price,
                                       raise_for_api_error, trading_date)
from etl.validate import percent_change, to_decimal, to_major_unit

log = logging.getLogger(__name__)

SPARK_PATH = "/v7/finance/spark"
SPARK_MAX_SYMBOLS = 20  # symbols a spark request accepts


def fetch_spark(auth: YahooAuth, base_url: str, symbols: Sequence[str]) -> Any:
    """The spark payload; a 404 with a JSON body is returned too, for `spark_refusal` to read."""
    params = {"symbols": ",".join(symbols), "range": "1d", "interval": "1d"}
    return auth.get_json(f"{base_url}{SPARK_PATH}", params, json_statuses=(404,))


def fetch_chart_quote(auth: YahooAuth, base_url: str, symbol: str) -> Any:
    return auth.get_json(f"{base_url}{chart_path(symbol)}", {"range": "1d", "interval": "1d"})


def spark_refusal(payload: Any) -> str | None:
    """Why a spark answer is a refusal of the endpoint rather than quotes (None: it is spark's answer)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("spark"), dict):
        error = ((payload.get("finance") or {}).get("error") if isinstance(payload, dict) else None) or {}
        return str(error.get("description") or error.get("code") or "no 'spark' object in the answer")
    error = payload["spark"].get("error") or {}
    description = str(error.get("description") or "") if isinstance(error, dict) else str(error)
    return description if FEATURE_REFUSED in description.lower() else None


@answer_parser(NAME)
def quote_from_chart(chart: dict, asset: Asset) -> Quote:
    """A Quote from one chart-shaped object (`meta` plus the day's arrays): spark's or the chart's."""
    meta = chart.get("meta") or {}
    raw_currency = meta.get("currency")
    price = major_price(meta.get("regularMarketPrice"), raw_currency)
    previous = major_price(meta.get("previousClose"), raw_currency)
    if previous is None:
        previous = major_price(meta.get("chartPreviousClose"), raw_currency)
    change, percent = percent_change(price, previous)
    stamp = meta.get("regularMarketTime")
    if stamp is None:
        raise NotFoundError(f"{NAME}: no regularMarketTime in the quote for {asset.spec} — the symbol may "
                            "not be trading; check it")
    day_quote = ((chart.get("indicators") or {}).get("quote") or [{}])[0] or {}
    described = chart_meta(meta)
    return Quote(
        symbol=asset.symbol,
        asset_type=asset.asset_type,
        date=trading_date(stamp, exchange_zone(meta)),
        price=price,
        as_of=datetime.fromtimestamp(int(stamp), timezone.utc),
        source=NAME,
        change=change,
        percent_change=percent,
        open=major_price(_last(day_quote.get("open")), raw_currency),
        high=major_price(meta.get("regularMarketDayHigh"), raw_currency),
        low=major_price(meta.get("regularMarketDayLow"), raw_currency),
        volume=to_decimal(meta.get("regularMarketVolume")),
        currency=to_major_unit(None, raw_currency)[1],
        name=described.name,
        exchange=described.exchange,
        exchange_timezone=described.exchange_timezone,
    )


def _last(values: Any) -> Any:
    return values[-1] if isinstance(values, list) and values else None


@answer_parser(NAME)
def parse_spark(payload: Any, assets_by_symbol: dict[str, Asset], where: str) -> QuoteBatch:
    """Quotes for the requested Yahoo symbols; a symbol missing from the answer, or
    answered with an error, is a NotFoundError for its asset alone."""
    spark = payload.get("spark") if isinstance(payload, dict) else None
    if not isinstance(spark, dict):
        raise RetryableError(f"{NAME}: unexpected answer for {where} (no 'spark' object) — try again later")
    batch = QuoteBatch()
    try:
        raise_for_api_error(spark.get("error"), where)
    except NotFoundError as exc:
        batch.failures.update({asset: exc for asset in assets_by_symbol.values()})
        return batch
    answered: dict[str, dict] = {}
    for item in spark.get("result") or []:
        if isinstance(item, dict) and item.get("symbol"):
            answered[str(item["symbol"]).upper()] = item
    for symbol, asset in assets_by_symbol.items():
        item = answered.get(symbol.upper())
        try:
            with reading(NAME, f"{symbol} ({asset.spec})"):
                charts = (item or {}).get("response") or []
                if not charts:
                    raise NotFoundError(f"{NAME}: no quote for {symbol} ({asset.spec}) in {where} — unknown or "
                                        "delisted symbol; check it or set asset.provider_symbol")
                raise_for_api_error(charts[0].get("error"), f"{symbol} in {where}")
                batch.quotes.append(quote_from_chart(charts[0], asset))
        except (NotFoundError, UnusableAnswerError) as exc:
            batch.failures[asset] = exc
    return batch


class YahooQuotes:
    """One run's quotes from Yahoo: spark while Yahoo allows it, the chart endpoint after a refusal."""

    def __init__(self, auth: YahooAuth, base_url: str, symbol_of: Callable[[Asset], str],
                 seen: Callable[[Asset, dict], None] = lambda asset, meta: None):
        self.auth = auth
        self.base_url = base_url
        self.symbol_of = symbol_of
        self.seen = seen                           # told each answered asset's meta (its names)
        self.spark_refused: str | None = None      # why spark is not asked again in this run

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        unique = list(dict.fromkeys(assets))
        for first in range(0, len(unique), SPARK_MAX_SYMBOLS):
            chunk = {self.symbol_of(asset): asset for asset in unique[first:first + SPARK_MAX_SYMBOLS]}
            part = self._spark(chunk) if self.spark_refused is None else None
            if part is None:
                part = self._charts(chunk)
            batch.quotes.extend(part.quotes)
            batch.failures.update(part.failures)
        return batch

    def _spark(self, chunk: dict[str, Asset]) -> QuoteBatch | None:
        """Spark's quotes for `chunk`, or None when Yahoo refuses spark (then the chart is asked)."""
        where = f"{SPARK_PATH}?symbols={','.join(chunk)}"
        try:
            payload = fetch_spark(self.auth, self.base_url, list(chunk))
            refusal = spark_refusal(payload)
        except AccessRefusedError as exc:
            refusal = str(exc)
        except NotFoundError as exc:  # a 404 that is not spark's own JSON answer: the endpoint is gone
            refusal = str(exc)
        if refusal is not None:
            self.spark_refused = refusal
            log.warning("yahoo: spark refused (%s); quotes come from the chart endpoint, one request per symbol, "
                        "for the rest of this run", refusal)
            return None
        part = parse_spark(payload, chunk, where)
        by_symbol = {symbol.upper(): asset for symbol, asset in chunk.items()}
        for item in payload["spark"].get("result") or []:
            asset = by_symbol.get(str(item.get("symbol") or "").upper()) if isinstance(item, dict) else None
            charts = (item.get("response") or [{}]) if asset else [{}]
            if asset and isinstance(charts[0], dict) and charts[0].get("meta"):
                self.seen(asset, charts[0]["meta"])
        return part

    def _charts(self, chunk: dict[str, Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        for symbol, asset in chunk.items():
            where = chart_path(symbol)
            try:
                payload = fetch_chart_quote(self.auth, self.base_url, symbol)
                with reading(NAME, f"{symbol} ({asset.spec})"):
                    result = chart_result(payload, where)
                    if result is None:
                        raise NotFoundError(f"{NAME}: no quote for {symbol} ({asset.spec}) in {where} — unknown "
                                            "or delisted symbol")
                    batch.quotes.append(quote_from_chart(result, asset))
                    self.seen(asset, result.get("meta") or {})
            except AccessRefusedError as exc:
                raise ProviderUnavailableError(f"{exc}; spark was refused too ({self.spark_refused}) — Yahoo is "
                                               "not asked again in this run") from exc
            except (ProviderUnavailableError, QuotaExhaustedError):
                raise
            except (NotFoundError, RetryableError) as exc:
                batch.failures[asset] = exc
        return batch

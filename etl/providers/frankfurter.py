"""Frankfurter: keyless ECB reference rates for forex pairs.

History is the time-series endpoint `/{start}..{end}?base=EUR&symbols=USD`, answered as
`{"amount": 1.0, "base": "EUR", "start_date": …, "end_date": …, "rates": {"2024-01-02": {"USD": 1.0956}, …}}`;
the latest rates are `/latest?base=EUR&symbols=USD,GBP`, answered as
`{"amount": 1.0, "base": "EUR", "date": "2024-01-05", "rates": {"USD": 1.0921, "GBP": 0.86}}`.
One latest request serves every pair with the same base currency. A currency
the API does not know gets a 404 `{"message": "not found"}`.

The ECB publishes one reference rate per working day, around 16:00 CET, so a
rate has no open/high/low and a quote's `as_of` is 16:00 Europe/Berlin on the
rate's date. Frankfurter documents no rate limit; 60 requests a minute is our
own, polite ceiling.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timezone
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from etl.errors import NotFoundError, RetryableError, UnusableAnswerError
from etl.models import Asset, Bar, Quote
from etl.providers.answers import answer_parser, reading
from etl.providers.base import Limits, Provider, QuoteBatch
from etl.utils.fetch_utils import ProviderSession, get_json
from etl.validate import to_decimal

log = logging.getLogger(__name__)

NAME = "frankfurter"
ECB_PUBLICATION = time(16, 0, tzinfo=ZoneInfo("Europe/Berlin"))
MAX_SYMBOLS_PER_BASE = 30   # the ECB publishes about 30 currencies; one request covers them all


def split_pair(asset: Asset) -> tuple[str, str]:
    """EUR/USD → ("EUR", "USD"): Frankfurter's base and symbol."""
    symbol = (asset.provider_symbol or asset.symbol).upper()
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise NotFoundError(f"{NAME}: {asset.spec} is not a BASE/QUOTE currency pair — write it like "
                            "EUR/USD:FOREX")
    return base, quote


def publication_time(day: date) -> datetime:
    """When the ECB rate of `day` was published (16:00 Berlin), in UTC."""
    return datetime.combine(day, ECB_PUBLICATION).astimezone(timezone.utc)


def _rates_object(payload: Any, where: str) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("rates"), dict):
        raise RetryableError(f"{NAME}: unexpected answer for {where} (no 'rates' object) — try again later")
    return payload["rates"]


def fetch_history(session: ProviderSession, base_url: str, base: str, quote: str, start: date, end: date) -> dict:
    params = {"base": base, "symbols": quote}
    return get_json(session, f"{base_url}/{start.isoformat()}..{end.isoformat()}", params)


@answer_parser(NAME)
def parse_history(payload: Any, asset: Asset, where: str = "") -> list[Bar]:
    """One bar per published date; the price is the rate (no open/high/low/volume)."""
    where = where or asset.spec
    _, quote = split_pair(asset)
    bars = []
    for day, rates in sorted(_rates_object(payload, where).items()):
        if not isinstance(rates, dict):
            continue
        try:
            bar_date = date.fromisoformat(day)
        except ValueError:
            log.warning("%s: skipping unreadable date %r in %s", NAME, day, where)
            continue
        bars.append(Bar(symbol=asset.symbol, asset_type=asset.asset_type, date=bar_date,
                        price=to_decimal(rates.get(quote)), currency=quote, source=NAME))
    return bars


def fetch_latest(session: ProviderSession, base_url: str, base: str, quotes: Sequence[str]) -> dict:
    return get_json(session, f"{base_url}/latest", {"base": base, "symbols": ",".join(quotes)})


def parse_latest(payload: Any, assets: Sequence[Asset], where: str) -> QuoteBatch:
    """Quotes for `assets` (all of one base currency); a pair missing from the answer fails alone."""
    rates = _rates_object(payload, where)
    try:
        day = date.fromisoformat(str(payload.get("date")))
    except ValueError:
        raise RetryableError(f"{NAME}: unreadable date {payload.get('date')!r} in {where} — try again later") from None
    batch = QuoteBatch()
    for asset in assets:
        try:
            with reading(NAME, asset.spec):
                batch.quotes.append(_latest_quote(rates, day, asset, where))
        except (NotFoundError, UnusableAnswerError) as exc:
            batch.failures[asset] = exc
    return batch


def _latest_quote(rates: dict, day: date, asset: Asset, where: str) -> Quote:
    base, quote = split_pair(asset)
    price = to_decimal(rates.get(quote))
    if price is None:
        raise NotFoundError(f"{NAME}: no {base}/{quote} rate in {where} — the ECB does not publish this currency; "
                            "use another provider for it")
    return Quote(symbol=asset.symbol, asset_type=asset.asset_type, date=day, price=price,
                 as_of=publication_time(day), currency=quote, source=NAME, name=f"{base}/{quote}", exchange="ECB")


class FrankfurterProvider(Provider):
    name = NAME
    base_url_variable = "FRANKFURTER_BASE_URL"
    default_base_url = "https://api.frankfurter.dev/v1"
    asset_types = frozenset({"FOREX"})
    limits = Limits(per_minute=60, max_batch=MAX_SYMBOLS_PER_BASE)

    def history(self, asset: Asset, start: date, end: date) -> list[Bar]:
        base, quote = split_pair(asset)
        payload = fetch_history(self.session, self.base_url, base, quote, start, end)
        bars = parse_history(payload, asset, where=f"/{start}..{end}?base={base}&symbols={quote}")
        # The API starts a series at the last working day on or before `start`.
        return [bar for bar in bars if start <= bar.date <= end]

    def quotes(self, assets: Sequence[Asset]) -> QuoteBatch:
        batch = QuoteBatch()
        by_base: dict[str, list[Asset]] = {}
        for asset in dict.fromkeys(assets):
            try:
                by_base.setdefault(split_pair(asset)[0], []).append(asset)
            except NotFoundError as exc:
                batch.failures[asset] = exc
        for base, group in by_base.items():
            for first in range(0, len(group), MAX_SYMBOLS_PER_BASE):
                chunk = group[first:first + MAX_SYMBOLS_PER_BASE]
                part = self._latest(base, chunk)
                batch.quotes.extend(part.quotes)
                batch.failures.update(part.failures)
        return batch

    def _latest(self, base: str, assets: list[Asset]) -> QuoteBatch:
        """One latest request for `assets`; when the API refuses the whole request because
        one currency is unknown (404), each pair is asked alone so only that one fails."""
        symbols = [split_pair(asset)[1] for asset in assets]
        where = f"/latest?base={base}&symbols={','.join(symbols)}"
        try:
            return parse_latest(fetch_latest(self.session, self.base_url, base, symbols), assets, where)
        except NotFoundError as exc:
            if len(assets) == 1:
                return QuoteBatch(failures={assets[0]: exc})
        batch = QuoteBatch()
        for asset in assets:
            part = self._latest(base, [asset])
            batch.quotes.extend(part.quotes)
            batch.failures.update(part.failures)
        return batch

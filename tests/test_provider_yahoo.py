"""The Yahoo provider against a loopback server answering in Yahoo's chart and spark formats."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from etl.errors import FatalError, NotFoundError, ProviderUnavailableError, RetryableError
from etl.models import Asset
from etl.providers.yahoo import (chart_path, from_yahoo_symbol, parse_actions, parse_history, split_ratio,
                                  to_yahoo_symbol)
from etl.validate import validate_bars
from support.fake_api import Response, fixture_json, fixture_text
from support.providers import build_provider

AAPL = Asset("AAPL", "STOCK")
VOD = Asset("VOD.L", "STOCK")
N225 = Asset("^N225", "INDEX")
EURUSD = Asset("EUR/USD", "FOREX")
BTC = Asset("BTC", "CRYPTO")
CHART_FIXTURES = {AAPL: "chart_AAPL.json", VOD: "chart_VOD.L.json", N225: "chart_N225.json",
                  EURUSD: "chart_EURUSD=X.json", BTC: "chart_BTC-USD.json"}


@pytest.fixture
def yahoo(fake_api):
    return provider_for(fake_api)


def provider_for(fake_api, **extra):
    return build_provider("yahoo", fake_api.base_url, **extra)


def serve_chart(fake_api, asset: Asset) -> None:
    fake_api.route(chart_path(to_yahoo_symbol(asset)), fixture_text(f"yahoo/{CHART_FIXTURES[asset]}"))


def served(asset: Asset) -> dict:
    """The fixture's chart result, numbers read as Decimal straight from the text."""
    text = fixture_text(f"yahoo/{CHART_FIXTURES[asset]}")
    return json.loads(text, parse_float=Decimal)["chart"]["result"][0]


def served_column(asset: Asset, name: str) -> list:
    result = served(asset)
    if name == "adjclose":
        return result["indicators"]["adjclose"][0]["adjclose"]
    return result["indicators"]["quote"][0][name]


def history_of(yahoo, fake_api, asset, start=date(2023, 12, 1), end=date(2024, 6, 30)):
    serve_chart(fake_api, asset)
    return yahoo.history(asset, start, end)


def dates(bars) -> list[date]:
    return [bar.date for bar in bars]


# ---- history: values ----

def test_history_values_equal_the_served_values_to_the_last_digit(yahoo, fake_api):
    bars = history_of(yahoo, fake_api, AAPL)
    assert len(bars) == len(served(AAPL)["timestamp"])
    for field, column in [("price", "close"), ("adj_close", "adjclose"), ("open", "open"), ("high", "high"),
                          ("low", "low"), ("volume", "volume")]:
        expected = [None if v is None else Decimal(v) for v in served_column(AAPL, column)]
        got = [getattr(bar, field) for bar in bars]
        assert got == expected, field
        assert [str(v) for v in got] == [str(v) for v in expected], field
    assert {bar.currency for bar in bars} == {"USD"}
    assert {bar.source for bar in bars} == {"yahoo"}


def test_price_is_the_raw_close_and_adj_close_the_adjusted_one(yahoo, fake_api):
    first = history_of(yahoo, fake_api, AAPL)[0]
    assert first.price == Decimal("185.63999938964844")
    assert first.adj_close == Decimal("184.73497009277344")


def test_history_asks_the_chart_endpoint_for_daily_bars_from_the_range_through_today(yahoo, fake_api):
    history_of(yahoo, fake_api, AAPL, date(2024, 1, 2), date(2024, 1, 10))
    (request,) = fake_api.requests_to("/v8/finance/chart/")
    assert request.path == "/v8/finance/chart/AAPL"
    assert request.query["interval"] == "1d"
    assert request.query["includeAdjustedClose"] == "true"
    assert request.query["events"] == "div,split"
    assert int(request.query["period1"]) <= datetime(2024, 1, 2, tzinfo=timezone.utc).timestamp()
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    assert int(request.query["period2"]) >= today.timestamp() + 86400


def test_history_declares_split_adjusted_prices_with_an_adjusted_close_and_reports_stock_actions(yahoo):
    assert (yahoo.price_basis.splits, yahoo.price_basis.dividends) == (True, False)
    assert yahoo.gives_adj_close and yahoo.reports_actions == {"STOCK", "ETF"}


def test_splits_and_dividends_come_from_the_chart_events(yahoo, fake_api):
    fake_api.route(chart_path("AAPL"), fixture_text("yahoo/chart_AAPL_split_2020.json"))
    answer = yahoo.history_answer(AAPL, date(2020, 8, 27), date(2020, 8, 31))
    assert [bar.date for bar in answer.bars] == [date(2020, 8, 27), date(2020, 8, 28), date(2020, 8, 31)]
    assert answer.answered == (date(2020, 8, 27), date(2020, 9, 1))
    assert answer.listed_from == date(1980, 12, 12)
    split, dividend = sorted(answer.actions, key=lambda a: a.kind, reverse=True)
    assert (split.date, split.kind, split.ratio, split.source) == (date(2020, 8, 31), "split", Decimal(4), "yahoo")
    assert (dividend.date, dividend.kind, dividend.amount, dividend.currency) == \
        (date(2020, 8, 7), "dividend", Decimal("0.205"), "USD")


def test_a_reverse_split_is_a_ratio_below_one_and_a_ratio_text_alone_is_read():
    assert split_ratio({"numerator": 1, "denominator": 10, "splitRatio": "1:10"}) == Decimal("0.1")
    assert split_ratio({"splitRatio": "3:2"}) == Decimal("1.5")
    assert split_ratio({"numerator": 0, "denominator": 1}) is None


def test_dividends_in_pence_are_converted_to_pounds():
    payload = json.loads(fixture_text("yahoo/chart_VOD.L.json"), parse_float=Decimal)
    stamp = payload["chart"]["result"][0]["timestamp"][3]
    payload["chart"]["result"][0]["events"] = {"dividends": {str(stamp): {"amount": Decimal("4.5"), "date": stamp}}}
    (dividend,) = parse_actions(payload, VOD)
    assert (dividend.amount, dividend.currency) == (Decimal("0.045"), "GBP")


def test_an_answer_without_bars_spans_no_day_but_still_states_the_first_trading_day(yahoo, fake_api):
    payload = fixture_json("yahoo/chart_AAPL.json")
    result = payload["chart"]["result"][0]
    del result["timestamp"]
    result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    fake_api.route("/v8/finance/chart/AAPL", payload)
    answer = yahoo.history_answer(AAPL, date(2024, 1, 2), date(2024, 1, 31))
    assert (answer.bars, answer.answered, answer.listed_from) == ([], None, date(1980, 12, 12))


def test_history_returns_only_the_requested_dates(yahoo, fake_api):
    bars = history_of(yahoo, fake_api, AAPL, date(2024, 1, 3), date(2024, 1, 5))
    assert dates(bars) == [date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]


def test_null_rows_and_broken_rows_are_dropped_and_counted_by_validation(yahoo, fake_api):
    start, end = date(2024, 1, 1), date(2024, 1, 31)
    result = validate_bars(history_of(yahoo, fake_api, AAPL, start, end), start, end, today=date(2024, 2, 1))
    assert result.dropped == 2
    assert result.reasons == {"missing price": 1, "high below low": 1}
    assert date(2024, 1, 9) not in dates(result.rows) and date(2024, 1, 11) not in dates(result.rows)
    assert len(result.rows) == 6


def test_pence_prices_of_a_london_stock_are_stored_in_pounds(yahoo, fake_api):
    bars = history_of(yahoo, fake_api, VOD)
    pence = served_column(VOD, "close")
    assert [bar.price for bar in bars] == [None if p is None else Decimal(p) / 100 for p in pence]
    assert bars[0].price == Decimal("0.6981999969482422")
    assert bars[0].high == Decimal("0.7008000183105469")
    assert bars[0].adj_close == Decimal("0.6420417022705078")
    assert bars[0].volume == Decimal(48213402)
    assert {bar.currency for bar in bars} == {"GBP"}


# ---- history: trading dates in the exchange's time zone ----

def test_a_tokyo_index_gets_tokyo_trading_days(yahoo, fake_api):
    assert dates(history_of(yahoo, fake_api, N225)) == [date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 9),
                                                        date(2024, 1, 10)]


def test_trading_dates_do_not_depend_on_the_machines_time_zone(yahoo, fake_api, monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert dates(history_of(yahoo, fake_api, N225))[0] == date(2024, 1, 4)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_forex_bars_stamped_at_london_midnight_carry_the_london_date(yahoo, fake_api):
    # 2024-06-02 23:00 UTC is 2024-06-03 00:00 in London (BST): the session of June 3.
    bars = history_of(yahoo, fake_api, EURUSD)
    assert served(EURUSD)["timestamp"][0] == 1717369200
    assert dates(bars) == [date(2024, 6, day) for day in (3, 4, 5, 6, 7)]
    assert [bar.price for bar in bars] == [Decimal(close) for close in served_column(EURUSD, "close")]


def test_crypto_bars_are_dated_in_utc(yahoo, fake_api):
    bars = history_of(yahoo, fake_api, BTC)
    assert dates(bars) == [date(2024, 1, day) for day in (1, 2, 3, 4)]
    assert bars[-1].price is None
    assert bars[1].volume == Decimal(39335274536)


def test_the_gmt_offset_is_used_when_the_time_zone_name_is_missing():
    payload = json.loads(fixture_text("yahoo/chart_EURUSD=X.json"), parse_float=Decimal)
    meta = payload["chart"]["result"][0]["meta"]
    del meta["exchangeTimezoneName"]
    assert meta["gmtoffset"] == 3600
    assert parse_history(payload, EURUSD)[0].date == date(2024, 6, 3)


# ---- symbols ----

@pytest.mark.parametrize("asset, yahoo_symbol", [
    (Asset("AAPL", "STOCK"), "AAPL"),
    (Asset("BRK.B", "STOCK"), "BRK-B"),
    (Asset("VOD.L", "STOCK"), "VOD.L"),
    (Asset("SAP.DE", "STOCK"), "SAP.DE"),
    (Asset("VOO", "ETF"), "VOO"),
    (Asset("BTC", "CRYPTO"), "BTC-USD"),
    (Asset("EUR/USD", "FOREX"), "EURUSD=X"),
    (Asset("^GSPC", "INDEX"), "^GSPC"),
])
def test_symbols_map_to_yahoo_and_back(asset, yahoo_symbol):
    assert to_yahoo_symbol(asset) == yahoo_symbol
    assert from_yahoo_symbol(yahoo_symbol, asset.asset_type) == asset.symbol


def test_yahoos_short_form_of_dollar_pairs_maps_back():
    assert from_yahoo_symbol("JPY=X", "FOREX") == "USD/JPY"


def test_the_assets_own_provider_symbol_wins(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/BRK-A", fixture_text("yahoo/chart_AAPL.json"))
    yahoo.history(Asset("BERKSHIRE", "STOCK", provider_symbol="BRK-A"), date(2024, 1, 2), date(2024, 1, 5))
    assert [r.path for r in fake_api.requests_to("/v8/")] == ["/v8/finance/chart/BRK-A"]


# ---- history: errors ----

def test_chart_error_inside_a_200_is_not_found(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/NOPE", fixture_json("yahoo/chart_not_found.json"))
    with pytest.raises(NotFoundError, match="delisted"):
        yahoo.history(Asset("NOPE", "STOCK"), date(2024, 1, 2), date(2024, 1, 5))


def test_a_401_is_not_fatal_when_no_session_can_be_had_yahoo_is_down_for_the_run(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/AAPL", {"finance": {"result": None, "error": {
        "code": "Unauthorized", "description": "Invalid Crumb"}}}, status=401)
    with pytest.raises(ProviderUnavailableError, match="401") as raised:
        yahoo.history(AAPL, date(2024, 1, 2), date(2024, 1, 5))
    assert not isinstance(raised.value, FatalError) and "Invalid Crumb" in str(raised.value)


def test_another_chart_error_inside_a_200_is_retryable_not_not_found(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/AAPL", {"chart": {"result": None, "error": {
        "code": "Internal Server Error", "description": "Timeout while fetching data"}}})
    with pytest.raises(RetryableError, match="Timeout while fetching data") as raised:
        yahoo.history(AAPL, date(2024, 1, 2), date(2024, 1, 5))
    assert not isinstance(raised.value, NotFoundError)


@pytest.mark.parametrize("status", [400, 200])
def test_a_span_before_the_first_trading_day_is_an_empty_history(yahoo, fake_api, status):
    # Yahoo's answer for a window entirely before a listing: HTTP 400 with chart.error "Bad Request",
    # "Data doesn't exist for startDate = …, endDate = …". An empty history (which proves no day empty).
    fake_api.route("/v8/finance/chart/ARM", fixture_json("yahoo/chart_before_first_trade.json"), status=status)
    assert yahoo.history(Asset("ARM", "STOCK"), date(2019, 8, 14), date(2020, 7, 29)) == []
    assert len(fake_api.requests_to("/v8/finance/chart/ARM")) == 1


def test_the_pre_listing_400_is_read_from_the_json_body_however_it_is_serialised(yahoo, fake_api):
    # The same answer pretty-printed with the apostrophe escaped (\u0027), as JSON allows: the
    # description is only recognisable once parsed, and lies past any short excerpt of the text.
    body = json.dumps(fixture_json("yahoo/chart_before_first_trade.json"), indent=8).replace("'", "\\u0027")
    fake_api.route("/v8/finance/chart/ARM", Response(400, body))
    assert yahoo.history(Asset("ARM", "STOCK"), date(2019, 8, 14), date(2020, 7, 29)) == []


def test_another_bad_request_still_stops_the_job(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/AAPL", {"chart": {"result": None, "error": {
        "code": "Bad Request", "description": "Invalid input - interval=1d is not supported"}}}, status=400)
    with pytest.raises(FatalError, match="400") as caught:
        yahoo.history(AAPL, date(2024, 1, 2), date(2024, 1, 5))
    assert "Invalid input - interval=1d is not supported" in str(caught.value)


def test_a_bad_request_page_that_is_not_json_still_stops_the_job(yahoo, fake_api):
    fake_api.route("/v8/finance/chart/AAPL", Response(400, "<html>Bad Request</html>", content_type="text/html"))
    with pytest.raises(FatalError, match="400"):
        yahoo.history(AAPL, date(2024, 1, 2), date(2024, 1, 5))


def test_a_range_with_no_sessions_is_an_empty_history(yahoo, fake_api):
    payload = fixture_json("yahoo/chart_AAPL.json")
    result = payload["chart"]["result"][0]
    del result["timestamp"]
    result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    fake_api.route("/v8/finance/chart/AAPL", payload)
    assert yahoo.history(AAPL, date(2024, 1, 1), date(2024, 1, 1)) == []


# ---- quotes ----

QUOTED = [AAPL, VOD, N225, EURUSD, BTC]


def serve_spark(fake_api, body=None) -> None:
    fake_api.route("/v7/finance/spark", body or fixture_text("yahoo/spark_quotes.json"))


def spark_meta(symbol: str) -> dict:
    body = json.loads(fixture_text("yahoo/spark_quotes.json"), parse_float=Decimal)
    return next(item for item in body["spark"]["result"] if item["symbol"] == symbol)["response"][0]["meta"]


def test_quotes_for_several_assets_take_one_spark_request(yahoo, fake_api):
    serve_spark(fake_api)
    batch = yahoo.quotes(QUOTED)
    (request,) = fake_api.requests_to("/v7/finance/spark")
    assert request.query == {"symbols": "AAPL,VOD.L,^N225,EURUSD=X,BTC-USD", "range": "1d", "interval": "1d"}
    assert [q.symbol for q in batch.quotes] == ["AAPL", "VOD.L", "^N225", "EUR/USD", "BTC"]
    assert not batch.failures


def test_a_quote_carries_price_change_time_date_and_names_from_the_meta(yahoo, fake_api):
    serve_spark(fake_api)
    aapl = yahoo.quotes([AAPL]).quotes[0]
    meta = spark_meta("AAPL")
    assert aapl.price == meta["regularMarketPrice"] == Decimal("185.59")
    assert aapl.change == meta["regularMarketPrice"] - meta["previousClose"] == Decimal("0.45")
    assert aapl.percent_change == (Decimal("0.45") / Decimal("185.14") * 100).quantize(Decimal("0.000001"))
    assert aapl.as_of == datetime.fromtimestamp(meta["regularMarketTime"], timezone.utc)
    assert aapl.as_of.tzinfo is not None
    assert aapl.date == date(2024, 1, 11)
    assert (aapl.high, aapl.low, aapl.volume) == (Decimal("187.05"), Decimal("183.62"), Decimal(49128408))
    assert aapl.open == Decimal("186.54")
    assert (aapl.currency, aapl.name, aapl.exchange) == ("USD", "Apple Inc.", "NasdaqGS")


def test_quote_in_pence_is_converted_to_pounds(yahoo, fake_api):
    serve_spark(fake_api)
    vod = yahoo.quotes([VOD]).quotes[0]
    assert (vod.price, vod.currency) == (Decimal("0.6901"), "GBP")
    assert vod.change == Decimal("0.0005")


def test_an_index_quote_has_its_name_and_tokyo_date(yahoo, fake_api):
    serve_spark(fake_api)
    nikkei = yahoo.quotes([N225]).quotes[0]
    assert (nikkei.name, nikkei.date, nikkei.currency) == ("Nikkei 225", date(2024, 1, 10), "JPY")


def test_crypto_and_forex_quotes_carry_their_own_trading_dates(yahoo, fake_api):
    serve_spark(fake_api)
    by_symbol = {q.symbol: q for q in yahoo.quotes([BTC, EURUSD]).quotes}
    assert by_symbol["BTC"].date == date(2024, 1, 5)          # 00:00 UTC
    assert by_symbol["EUR/USD"].date == date(2024, 6, 7)      # 22:00 UTC is 23:00 in London
    assert by_symbol["EUR/USD"].price == Decimal("1.08")


def test_a_symbol_missing_from_the_answer_fails_alone(yahoo, fake_api):
    serve_spark(fake_api)
    unknown = Asset("ZZZZ", "STOCK")
    batch = yahoo.quotes([AAPL, unknown, BTC])
    assert [q.symbol for q in batch.quotes] == ["AAPL", "BTC"]
    assert list(batch.failures) == [unknown]
    assert isinstance(batch.failures[unknown], NotFoundError)


def test_a_spark_404_fails_the_batchs_assets_without_raising(yahoo, fake_api):
    fake_api.route("/v7/finance/spark", {"spark": {"result": None, "error": {
        "code": "Not Found", "description": "No data found for spark symbols"}}}, status=404)
    batch = yahoo.quotes([Asset("NOPE", "STOCK"), Asset("NADA", "STOCK")])
    assert batch.quotes == []
    assert {asset.symbol for asset in batch.failures} == {"NOPE", "NADA"}
    assert all(isinstance(error, NotFoundError) for error in batch.failures.values())


def spark_for_any_symbols(request):
    """Answers a spark request for whatever symbols it names, each quoted at 100 + its position."""
    template = json.loads(fixture_text("yahoo/spark_quotes.json"))["spark"]["result"][0]
    result = []
    for position, symbol in enumerate(request.query["symbols"].split(",")):
        item = json.loads(json.dumps(template))
        item["symbol"] = symbol
        item["response"][0]["meta"].update(symbol=symbol, regularMarketPrice=100 + position)
        result.append(item)
    return {"spark": {"result": result, "error": None}}


def test_twenty_five_assets_take_ceil_25_over_the_batch_size_requests(yahoo, fake_api):
    fake_api.route(re.compile("/v7/finance/spark"), spark_for_any_symbols)
    assets = [Asset(f"S{n:02d}", "STOCK") for n in range(25)]
    batch = yahoo.quotes(assets)
    requests = fake_api.requests_to("/v7/finance/spark")
    assert len(requests) == math.ceil(25 / yahoo.limits.max_batch) == 2
    assert all(len(r.query["symbols"].split(",")) <= yahoo.limits.max_batch for r in requests)
    assert sorted(q.symbol for q in batch.quotes) == [a.symbol for a in assets]
    assert not batch.failures

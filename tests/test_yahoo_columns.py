"""Reading a Yahoo chart a column at a time gives the bars, or the error, that reading it row by row gives.

`parse_history` reads the arrays of a chart column by column when they hold what
Yahoo sends (integer stamps, numbers and nulls), and row by row otherwise. The
row-by-row reading is the rule: these tests compare the two on recorded answers
and on generated ones with odd values, short arrays, minor currency units and
stamps around daylight-saving changes, in named and fixed-offset zones.
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import FrozenInstanceError, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from etl.errors import EtlError, UnusableAnswerError
from etl.models import Asset, Bar, bars_from_columns
from etl.providers import yahoo
from etl.providers.yahoo import first_trade_date, parse_history
from etl.providers.yahoo_chart import chart_columns, exchange_zone, trading_date, trading_dates
from support.fake_api import fixture_text

ASSET = Asset("VOD.L", "STOCK")
RECORDED = ["chart_AAPL.json", "chart_VOD.L.json", "chart_N225.json", "chart_EURUSD=X.json", "chart_BTC-USD.json",
            "chart_AAPL_split_2020.json"]
ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Tokyo", "America/Sao_Paulo",
         "Pacific/Apia", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns"]
# UTC midnights near daylight-saving changes (and Samoa's skipped 2011-12-30, the 32-bit limit, the epoch).
AROUND = [int(datetime(*day, tzinfo=timezone.utc).timestamp()) for day in [
    (2024, 3, 10), (2024, 11, 3), (2024, 3, 31), (2024, 10, 27), (2024, 4, 7), (2024, 10, 6), (2018, 11, 4),
    (2019, 2, 17), (2011, 12, 30), (1970, 1, 1), (2038, 1, 19), (1945, 9, 30), (2000, 1, 1)]]


def outcome(payload: Any) -> Any:
    """The bars read, as text (so 1.0 and 1.00 differ), or the error raised."""
    try:
        return [repr(bar) for bar in parse_history(payload, ASSET)]
    except EtlError as exc:
        return type(exc), str(exc)


def outcome_row_by_row(payload: Any) -> Any:
    with mock.patch.object(yahoo, "chart_columns", lambda *args: None):
        return outcome(payload)


def recorded(name: str) -> dict:
    return json.loads(fixture_text(f"yahoo/{name}"), parse_float=Decimal)


@pytest.mark.parametrize("name", RECORDED)
def test_a_recorded_chart_is_read_a_column_at_a_time_into_the_same_bars(name):
    payload = recorded(name)
    result = payload["chart"]["result"][0]
    quote, adjclose = result["indicators"]["quote"][0], result["indicators"]["adjclose"][0]["adjclose"]
    assert chart_columns(result["timestamp"], exchange_zone(result["meta"]), quote, adjclose,
                         result["meta"]["currency"]) is not None
    assert outcome(payload) == outcome_row_by_row(payload)


@pytest.mark.parametrize("zone", [*map(ZoneInfo, ZONES), timezone(timedelta(hours=-5)),
                                  timezone(timedelta(hours=5, minutes=45))], ids=str)
def test_trading_dates_are_the_dates_in_the_zone_at_every_minute_around_a_clock_change(zone):
    stamps = [base + minute * 60 for base in AROUND for minute in range(-36 * 60, 36 * 60, 7)]
    expected = [datetime.fromtimestamp(stamp, zone).date() for stamp in stamps]
    assert trading_dates(stamps, zone) == expected
    assert trading_dates(stamps[::-1], zone) == expected[::-1]  # now remembered


def test_a_stamp_no_date_has_raises_as_trading_date_does():
    with pytest.raises(OverflowError) as expected:
        trading_date(10**20, timezone.utc)
    with pytest.raises(OverflowError) as got:
        trading_dates([0, 10**20], timezone.utc)
    assert str(got.value) == str(expected.value)


def test_bars_built_from_columns_are_the_bars_built_one_by_one():
    days, prices = [date(2024, 1, 2), date(2024, 1, 3)], [Decimal("1.50"), None]
    built = bars_from_columns(2, {"date": days, "price": prices}, symbol="A", asset_type="STOCK", source="s",
                              currency="USD")
    one_by_one = [Bar(symbol="A", asset_type="STOCK", date=day, price=price, source="s", currency="USD")
                  for day, price in zip(days, prices)]
    assert built == one_by_one and repr(built) == repr(one_by_one)
    assert hash(built[0]) == hash(one_by_one[0]) and pickle.loads(pickle.dumps(built[0])) == built[0]
    assert replace(built[0], price=Decimal(2)) == replace(one_by_one[0], price=Decimal(2))
    with pytest.raises(FrozenInstanceError):
        built[0].price = Decimal(2)


@pytest.mark.parametrize("columns, same", [
    ({"date": [date(2024, 1, 2)]}, {"symbol": "A", "asset_type": "STOCK", "price": None}),  # no source
    ({"date": [date(2024, 1, 2)], "colour": [1]}, {"symbol": "A", "asset_type": "STOCK", "price": None,
                                                   "source": "s"}),
    ({"date": [date(2024, 1, 2)], "price": [None]}, {"symbol": "A", "asset_type": "STOCK", "price": None,
                                                     "source": "s"}),
])
def test_bars_from_columns_refuse_a_field_missing_unknown_or_given_twice(columns, same):
    with pytest.raises(TypeError):
        bars_from_columns(1, columns, **same)


def test_bars_from_columns_refuse_a_column_of_another_length():
    with pytest.raises(ValueError):
        bars_from_columns(2, {"date": [date(2024, 1, 2)], "price": [None, None]}, symbol="A", asset_type="STOCK",
                          source="s")


stamps = st.one_of(st.builds(lambda base, delta: base + delta, st.sampled_from(AROUND),
                             st.integers(min_value=-3 * 86400, max_value=3 * 86400)),
                   st.integers(min_value=-2**36, max_value=2**36))
ODD = [True, False, "12.5", " 7 ", "abc", "", 1.5, [1], {}, Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"),
       Decimal("1e400"), Decimal("1.500"), Decimal("-0"), 10**30]
odd_values = st.sampled_from([*ODD, Decimal("1e999999999")])
odd_stamps = st.sampled_from([*ODD, Decimal("1700000000.5"), "1700000000", Decimal("1e999999999"),
                              Decimal("-1e999999999"), 253_402_300_800])
numbers = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False),
                    st.decimals(min_value=0, max_value=10**6, places=6), st.integers(min_value=0, max_value=10**12))
zones_meta = st.one_of(st.builds(lambda name: {"exchangeTimezoneName": name},
                                  st.sampled_from([*ZONES, "Nowhere/Else"])),
                       st.builds(lambda offset: {"gmtoffset": offset}, st.sampled_from([-18000, 0, 19800, 34200])),
                       st.just({}))


@st.composite
def charts(draw, odd: bool) -> dict:
    """A chart payload; with `odd`, values, stamps and arrays Yahoo would not send turn up now and then."""
    values = st.one_of(numbers, odd_values) if odd else numbers
    count = draw(st.integers(min_value=0, max_value=12))
    timestamps = draw(st.lists(st.one_of(stamps, odd_stamps) if odd else stamps, min_size=count, max_size=count))

    def array():
        size = draw(st.sampled_from([count, count, count, max(count - 1, 0), count + 2]))
        shaped = draw(st.sampled_from(["list"] * 8 + (["missing", "null", "text"] if odd else [])))
        return {"list": draw(st.lists(values, min_size=size, max_size=size)), "missing": None, "null": None,
                "text": "123"}[shaped]

    quote = {name: array() for name in ("open", "high", "low", "close", "volume")}
    meta = {**draw(zones_meta), "currency": draw(st.sampled_from(["USD", "GBp", " GBX ", "ZAc", "ILA", "usd", None]))}
    result = {"meta": meta, "timestamp": timestamps,
              "indicators": {"quote": [quote], "adjclose": [{"adjclose": array()}]}}
    return {"chart": {"result": [result], "error": None}}


PROPERTIES = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


@PROPERTIES
@given(payload=charts(odd=False))
def test_a_chart_as_yahoo_sends_it_reads_the_same_by_column_as_by_row(payload):
    assert outcome(payload) == outcome_row_by_row(payload)


@PROPERTIES
@given(payload=charts(odd=True))
def test_a_chart_with_odd_values_reads_the_same_by_column_as_by_row(payload):
    assert outcome(payload) == outcome_row_by_row(payload)


@pytest.mark.parametrize("stamp", [Decimal("1e999999999"), Decimal("-1e999999999"), 10**400])
def test_a_stamp_beyond_every_date_makes_the_answer_unusable_at_once(stamp):
    """Refused before int(), which would take minutes to write out a billion digits."""
    payload = {"chart": {"result": [{"meta": {"currency": "USD", "firstTradeDate": stamp}, "timestamp": [stamp],
                                     "indicators": {"quote": [{"close": [Decimal("1")]}]}}], "error": None}}
    started = time.monotonic()
    for parse in (lambda: parse_history(payload, Asset("AAPL", "STOCK")), lambda: first_trade_date(payload)):
        with pytest.raises(UnusableAnswerError):
            parse()
    assert time.monotonic() - started < 1

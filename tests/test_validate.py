"""Validation of provider rows before loading: pure functions, plain unit tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from etl.models import Bar, Quote
from etl.validate import (ARITHMETIC, CLOSE_TOLERANCE, MAX_PRICE, MAX_VOLUME, MIN_PRICE, _plainly_good, percent_change,
                          sane_ratio, to_decimal, to_major_unit, validate_bars, validate_quotes)

START, END, TODAY = date(2024, 1, 1), date(2024, 1, 31), date(2024, 2, 15)


def bar(day: int, price: str | None = "100", **fields) -> Bar:
    values = {"open": "99", "high": "101", "low": "98", "volume": "1000", "adj_close": price}
    values.update(fields)
    return Bar(symbol="AAPL", asset_type="STOCK", date=date(2024, 1, day), source="test",
               price=None if price is None else Decimal(price),
               **{k: (None if v is None else Decimal(v)) for k, v in values.items()})


def quote(symbol: str = "AAPL", price: str | None = "100", *, day: date = TODAY, minute: int = 0,
          **fields) -> Quote:
    return Quote(symbol=symbol, asset_type="STOCK", date=day, source="test",
                 price=None if price is None else Decimal(price),
                 as_of=datetime(2024, 2, 15, 15, minute, tzinfo=timezone.utc),
                 **{k: (None if v is None else Decimal(v)) for k, v in fields.items()})


def kept_days(result) -> list[int]:
    return [row.date.day for row in result.rows]


def only_reason(result) -> str:
    assert result.dropped == 1, result.reasons
    (reason,) = result.reasons
    return reason


# to_decimal

@pytest.mark.parametrize("value, expected", [
    (Decimal("187.4400024414062"), Decimal("187.4400024414062")),
    (42, Decimal(42)),
    ("1.0956", Decimal("1.0956")),
    (" 0.00000123 ", Decimal("0.00000123")),
    ("1e-8", Decimal("1E-8")),
])
def test_to_decimal_keeps_every_digit_of_numbers_and_numeric_text(value, expected):
    result = to_decimal(value)
    assert result == expected and str(result) == str(expected)


@pytest.mark.parametrize("value", [None, "", "   ", "n/a", "12,5", True, [1], {"a": 1}])
def test_to_decimal_turns_missing_and_unreadable_values_into_none(value):
    assert to_decimal(value) is None


def test_to_decimal_refuses_a_float_because_its_digits_may_already_be_lost():
    with pytest.raises(TypeError, match="parse_float=Decimal"):
        to_decimal(185.63999938964844)


def test_to_decimal_keeps_nan_so_validation_can_count_it():
    assert to_decimal("NaN").is_nan()
    assert to_decimal(Decimal("NaN")).is_nan()


# to_major_unit

@pytest.mark.parametrize("currency, major", [("GBp", "GBP"), ("GBX", "GBP"), ("ZAc", "ZAR"), ("ZAC", "ZAR"),
                                             ("ILA", "ILS"), ("ILs", "ILS")])
def test_prices_in_minor_units_become_the_major_currency_divided_by_100(currency, major):
    assert to_major_unit(Decimal("2456.5"), currency) == (Decimal("24.565"), major)


@pytest.mark.parametrize("currency, expected", [("GBP", "GBP"), ("usd", "USD"), ("EUR", "EUR"), ("ILS", "ILS"),
                                                ("ZAR", "ZAR")])
def test_major_currencies_are_left_alone_and_upper_cased(currency, expected):
    assert to_major_unit(Decimal("2456.5"), currency) == (Decimal("2456.5"), expected)


def test_a_missing_value_or_currency_passes_through():
    assert to_major_unit(None, "GBp") == (None, "GBP")
    assert to_major_unit(Decimal("5"), None) == (Decimal("5"), None)


# validate_bars

def test_clean_bars_are_all_kept_sorted_by_date():
    result = validate_bars([bar(5), bar(3), bar(4)], START, END, TODAY)
    assert kept_days(result) == [3, 4, 5]
    assert result.dropped == 0 and not result.reasons


@pytest.mark.parametrize("bad_bar, reason", [
    (bar(3, None), "missing price"),
    (bar(3, "NaN", adj_close=None), "non-finite price"),
    (bar(3, "Infinity", adj_close=None, high=None), "non-finite price"),
    (bar(3, "0", adj_close=None, low=None), "non-positive price"),
    (bar(3, "-1", adj_close=None, low=None), "non-positive price"),
    (bar(3, high="97", low="98"), "high below low"),
    (bar(3, "110"), "close outside low-high"),
    (bar(3, "90"), "close outside low-high"),
    (bar(3, open="0"), "bad open/high/low"),
    (bar(3, low="-2"), "bad open/high/low"),
    (bar(3, high="NaN"), "bad open/high/low"),
    (bar(3, adj_close="0"), "bad adjusted close"),
    (bar(3, volume="-5"), "bad volume"),
])
def test_a_bad_bar_is_dropped_and_counted_by_reason(bad_bar, reason):
    result = validate_bars([bar(2), bad_bar, bar(4)], START, END, TODAY)
    assert kept_days(result) == [2, 4]
    assert only_reason(result) == reason


def test_a_close_just_outside_the_range_by_rounding_is_kept():
    result = validate_bars([bar(3, "101.4"), bar(4, "97.7")], START, END, TODAY)   # 0.4 % / 0.3 % out
    assert kept_days(result) == [3, 4]


def test_a_close_beyond_the_half_percent_tolerance_is_dropped():
    assert CLOSE_TOLERANCE == Decimal("0.005")
    result = validate_bars([bar(3, "101.6"), bar(4, "97.4")], START, END, TODAY)    # 0.6 % / 0.6 % out
    assert kept_days(result) == []
    assert result.reasons == {"close outside low-high": 2}


def test_bars_without_open_high_low_are_judged_on_the_close_alone():
    result = validate_bars([bar(3, "1.0956", open=None, high=None, low=None, volume=None)], START, END, TODAY)
    assert kept_days(result) == [3]


def test_bars_outside_the_requested_range_are_dropped():
    result = validate_bars([bar(1), bar(10), bar(31)], date(2024, 1, 2), date(2024, 1, 30), TODAY)
    assert kept_days(result) == [10]
    assert result.reasons == {"outside requested range": 2}


def test_bars_dated_after_today_are_dropped_even_inside_the_range():
    result = validate_bars([bar(10), bar(11), bar(12)], START, END, today=date(2024, 1, 10))
    assert kept_days(result) == [10]
    assert result.reasons == {"future date": 2}


def test_duplicate_dates_keep_the_last_row_given():
    result = validate_bars([bar(3, "100"), bar(4), bar(3, "100.5")], START, END, TODAY)
    assert kept_days(result) == [3, 4]
    assert result.rows[0].price == Decimal("100.5")
    assert result.reasons == {"duplicate date": 1}


def test_a_bad_duplicate_does_not_replace_a_good_row():
    result = validate_bars([bar(3, "100"), bar(3, None)], START, END, TODAY)
    assert [row.price for row in result.rows] == [Decimal("100")]
    assert result.reasons == {"missing price": 1}


def test_dropped_counts_every_reason():
    bars = [bar(1), bar(2, None), bar(3, "0", adj_close=None, low=None), bar(4, high="1"), bar(4)]
    result = validate_bars(bars, START, END, TODAY)
    assert result.dropped == sum(result.reasons.values()) == 3
    assert kept_days(result) == [1, 4]


# validate_quotes

def test_clean_quotes_are_kept_one_per_asset():
    result = validate_quotes([quote("AAPL"), quote("MSFT")], TODAY)
    assert sorted(q.symbol for q in result.rows) == ["AAPL", "MSFT"]
    assert result.dropped == 0


@pytest.mark.parametrize("bad_quote, reason", [
    (quote(price=None), "missing price"),
    (quote(price="NaN"), "non-finite price"),
    (quote(price="0"), "non-positive price"),
    (quote(price="-3"), "non-positive price"),
    (quote(day=TODAY + timedelta(days=2)), "future date"),
    (quote(high="1", low="2"), "high below low"),
    (quote(open="0"), "bad open/high/low"),
])
def test_a_bad_quote_is_dropped_and_counted(bad_quote, reason):
    result = validate_quotes([bad_quote, quote("MSFT")], TODAY)
    assert [q.symbol for q in result.rows] == ["MSFT"]
    assert only_reason(result) == reason


def test_a_quote_dated_tomorrow_in_its_exchanges_time_zone_is_kept():
    tokyo = quote(day=TODAY + timedelta(days=1))
    assert validate_quotes([tokyo], TODAY).rows == [tokyo]


@pytest.mark.parametrize("field, value", [
    ("change", "NaN"), ("percent_change", "Infinity"), ("volume", "NaN"), ("volume", "-5"),
])
def test_a_broken_optional_figure_is_left_out_and_the_price_kept(field, value):
    result = validate_quotes([quote(**{field: value})], TODAY)
    assert [q.price for q in result.rows] == [Decimal("100")]
    assert getattr(result.rows[0], field) is None


def test_of_two_quotes_for_one_asset_the_newest_wins_whatever_the_order():
    older, newer = quote(price="100", minute=1), quote(price="101", minute=2)
    for order in ([older, newer], [newer, older]):
        result = validate_quotes(order, TODAY)
        assert [q.price for q in result.rows] == [Decimal("101")]
        assert result.reasons == {"duplicate quote": 1}


def test_the_same_symbol_as_two_asset_types_is_two_quotes():
    stock = quote("BTC")
    crypto = Quote(**{**{f: getattr(stock, f) for f in Quote.__slots__}, "asset_type": "CRYPTO"})
    result = validate_quotes([stock, crypto], TODAY)
    assert len(result.rows) == 2


# ---- bounds: every number stored has them, and no value makes validation raise ----

def test_a_quote_outside_its_own_low_high_is_dropped_like_a_bar():
    assert only_reason(validate_quotes([quote(price="120", low="98", high="101")], TODAY)) == "close outside low-high"


def test_a_quote_just_outside_its_range_by_rounding_is_kept():
    edge = str(Decimal("101") * (1 + CLOSE_TOLERANCE))
    assert len(validate_quotes([quote(price=edge, low="98", high="101")], TODAY).rows) == 1


@pytest.mark.parametrize("price, kept", [("1e400", False), (str(MAX_PRICE), False), ("999999999999.99", True),
                                         ("0.00000001", True), (str(MIN_PRICE), True), ("1e-13", False),
                                         ("1e-400", False)])
def test_a_price_is_kept_only_inside_its_bounds(price, kept):
    bars = validate_bars([bar(5, price, open=None, high=None, low=None, adj_close=None)], START, END, TODAY)
    quotes = validate_quotes([quote(price=price)], TODAY)
    assert (len(bars.rows), len(quotes.rows)) == ((1, 1) if kept else (0, 0))


@pytest.mark.parametrize("volume, kept", [("0", True), ("999999999999999", True), (str(MAX_VOLUME), False),
                                          ("1e400", False), ("-1", False)])
def test_a_volume_is_kept_only_inside_its_bounds(volume, kept):
    assert len(validate_bars([bar(5, volume=volume)], START, END, TODAY).rows) == (1 if kept else 0)
    assert (validate_quotes([quote(volume=volume)], TODAY).rows[0].volume is not None) == kept


@pytest.mark.parametrize("field, value", [("change", "1e400"), ("change", "-1e12"), ("percent_change", "1e9"),
                                          ("percent_change", "-1e400")])
def test_an_out_of_bounds_change_is_left_out_of_a_quote(field, value):
    (kept,) = validate_quotes([quote(**{field: value})], TODAY).rows
    assert getattr(kept, field) is None


@pytest.mark.parametrize("price, previous", [("1e400", "5"), ("5", "1e-400"), ("1e999999999", "1"), ("NaN", "1"),
                                             ("sNaN", "1"), ("1", "0"), ("1", "-Infinity")])
def test_percent_change_of_any_two_numbers_never_raises(price, previous):
    assert percent_change(Decimal(price), Decimal(previous)) == (None, None)


def test_percent_change_of_good_prices_is_exact_to_six_places():
    assert percent_change(Decimal("103"), Decimal("100")) == (Decimal("3"), Decimal("3.000000"))


@pytest.mark.parametrize("numerator, denominator, ratio", [("4", "1", Decimal(4)), ("1", "10", Decimal("0.1")),
                                                           ("1e400", "1", None), ("1", "1e400", None),
                                                           ("0", "1", None), ("NaN", "1", None), ("1", "sNaN", None)])
def test_a_split_ratio_is_kept_only_inside_its_bounds(numerator, denominator, ratio):
    assert sane_ratio(Decimal(numerator), Decimal(denominator)) == ratio


def test_a_minor_unit_price_of_any_size_converts_without_raising():
    assert to_major_unit(Decimal("1e999999999"), "GBp")[1] == "GBP"


awkward_numbers = st.one_of(st.decimals(allow_nan=True, allow_infinity=True),
                            st.sampled_from([Decimal(t) for t in ("sNaN", "-sNaN", "1e999999999", "-1e999999999",
                                                                   "1e-999999999", "1e400", "-0")]),
                            st.none())


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(price=awkward_numbers, low=awkward_numbers, high=awkward_numbers, volume=awkward_numbers,
       change=awkward_numbers)
def test_no_value_makes_validation_raise_and_every_kept_number_is_in_bounds(price, low, high, volume, change):
    as_text = {k: (None if v is None else str(v)) for k, v in
               {"low": low, "high": high, "volume": volume}.items()}
    bars = validate_bars([bar(5, None if price is None else str(price), open=None, adj_close=None, **as_text)],
                         START, END, TODAY)
    quotes = validate_quotes([quote(price=None if price is None else str(price), change=None if change is None
                                    else str(change), **as_text)], TODAY)
    for row in [*bars.rows, *quotes.rows]:
        assert MIN_PRICE <= row.price < MAX_PRICE
        assert row.volume is None or 0 <= row.volume < MAX_VOLUME


# plainly good bars take a shortcut that must not change a result

def validated_row_by_row(bars, start, end, today):
    with mock.patch("etl.validate._plainly_good", lambda bars, *dates: [False] * len(bars)):
        return validate_bars(bars, start, end, today)


def as_text(result) -> tuple:
    """A result with every Decimal as written (1.0 and 1.00 differ)."""
    return ([repr(row) for row in result.rows], result.dropped, dict(result.reasons),
            [(repr(row), why) for row, why in result.rejected])


odd_values = st.sampled_from([5, 0, True, 1.5, "100", [1], Decimal("-1"), Decimal("1e12"), Decimal("1e-12"),
                              Decimal("1e15"), Decimal("100.000")])
factors = st.sampled_from([Decimal(f) for f in ("0.5", "0.994", "0.995", "0.999", "1", "1.001", "1.005", "1.006", "2")])
bar_days = st.one_of(st.dates(min_value=date(2023, 12, 30), max_value=date(2024, 2, 17)),
                     st.sampled_from([datetime(2024, 1, 5), "2024-01-05", None]))


@st.composite
def bars_of_all_kinds(draw) -> Bar:
    price = draw(st.one_of(st.decimals(min_value=Decimal("1e-13"), max_value=Decimal("2e12"), allow_nan=False),
                           awkward_numbers, odd_values))
    finite = isinstance(price, Decimal) and price.is_finite()
    near = st.builds(lambda factor: ARITHMETIC.multiply(price, factor), factors) if finite else st.none()
    value = st.one_of(near, near, near, awkward_numbers, odd_values)
    return Bar(symbol="AAPL", asset_type="STOCK", date=draw(bar_days), price=price, source="test",
               adj_close=draw(value), open=draw(value), high=draw(value), low=draw(value),
               volume=draw(st.one_of(st.decimals(min_value=-1, max_value=Decimal("2e15")), awkward_numbers,
                                     odd_values)))


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(bars=st.lists(bars_of_all_kinds(), max_size=8),
       dates=st.sampled_from([(START, END, TODAY), (START, END, date(2024, 1, 20)), (END, START, TODAY),
                              (datetime(2024, 1, 1), END, TODAY), (START, END, None)]))
def test_validation_keeps_and_drops_the_same_bars_with_or_without_its_shortcut(bars, dates):
    assert as_text(validate_bars(bars, *dates)) == as_text(validated_row_by_row(bars, *dates))


def test_a_plainly_good_bar_takes_the_shortcut():
    assert _plainly_good([bar(5), bar(6, volume=None, open=None, adj_close=None)], START, END, TODAY) == [True, True]
    assert _plainly_good([bar(5, low=None), bar(6, price="101.1")], START, END, TODAY) == [False, False]
    assert [row.date.day for row in validate_bars([bar(6, price="101.1")], START, END, TODAY).rows] == [6]


@pytest.mark.parametrize("fields", [{"adj_close": "1e12"}, {"open": "1e12"}, {"high": "1e12"}, {"volume": "1e15"},
                                    {"adj_close": "1e-12"}, {"open": "0.999e-12"}, {"low": "0.999e-12"},
                                    {"volume": "0"}, {"volume": "-0"}, {"volume": "-1e-30"}, {"low": "100"},
                                    {"high": "100"}, {"low": "100.5", "price": "100"}])
def test_a_bar_on_a_bound_is_judged_the_same_with_or_without_the_shortcut(fields):
    bars = [bar(5, **fields)]
    assert as_text(validate_bars(bars, START, END, TODAY)) == as_text(validated_row_by_row(bars, START, END, TODAY))

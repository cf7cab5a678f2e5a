"""The pure arithmetic of corporate actions: prices as traded, factors, the ranges one UPDATE applies."""

from datetime import date
from decimal import Decimal

import pytest

from etl.models import AS_TRADED, SPLIT_ADJUSTED, Bar, CorporateAction, PriceBasis
from etl.pipeline.actions import (action_factor, as_traded_actions, as_traded_bars, segments, splits_after)

SPLIT = CorporateAction("AAPL", "STOCK", date(2020, 8, 31), "split", "yahoo", ratio=Decimal(4))
REVERSE = CorporateAction("AAPL", "STOCK", date(2022, 1, 3), "split", "yahoo", ratio=Decimal("0.1"))


def bar(day: date, price: str, volume: int = 1000) -> Bar:
    value = Decimal(price)
    return Bar("AAPL", "STOCK", day, value, "yahoo", adj_close=value, open=value, high=value, low=value,
               volume=Decimal(volume))


def test_a_day_is_multiplied_by_every_later_split_and_not_by_earlier_ones():
    assert splits_after(date(2020, 1, 2), [SPLIT, REVERSE]) == Decimal("0.4")
    assert splits_after(date(2020, 8, 31), [SPLIT, REVERSE]) == Decimal("0.1")
    assert splits_after(date(2022, 1, 3), [SPLIT, REVERSE]) == 1


def test_split_adjusted_bars_become_as_traded_and_their_volume_whole_shares():
    (before, on) = as_traded_bars([bar(date(2020, 1, 2), "75.0875", 4000), bar(date(2020, 8, 31), "129.04")],
                                  SPLIT_ADJUSTED, [SPLIT])
    assert (before.price, before.open, before.volume, before.adj_close) == \
        (Decimal("300.35"), Decimal("300.35"), Decimal(1000), Decimal("75.0875"))
    assert on == bar(date(2020, 8, 31), "129.04")


def test_bars_already_as_traded_are_left_alone():
    bars = [bar(date(2020, 1, 2), "300.35")]
    assert as_traded_bars(bars, AS_TRADED, [SPLIT]) == bars


def test_a_dividend_adjusted_basis_is_refused():
    with pytest.raises(ValueError, match="dividends"):
        as_traded_bars([bar(date(2020, 1, 2), "1")], PriceBasis(splits=True, dividends=True), [SPLIT])


def test_split_adjusted_dividend_amounts_become_as_traded():
    dividend = CorporateAction("AAPL", "STOCK", date(2020, 8, 7), "dividend", "yahoo", amount=Decimal("0.205"))
    (converted,) = as_traded_actions([dividend], SPLIT_ADJUSTED, [SPLIT])
    assert converted.amount == Decimal("0.82")


def test_factors_divide_by_a_split_and_take_the_dividend_off_the_close_before():
    assert action_factor(SPLIT, None) == Decimal("0.25")
    dividend = CorporateAction("AAPL", "STOCK", date(2020, 8, 7), "dividend", "yahoo", amount=Decimal("2"))
    assert action_factor(dividend, Decimal("400")) == Decimal("0.995")
    assert action_factor(dividend, None) is None
    assert action_factor(dividend, Decimal("1")) is None


def test_segments_multiply_each_day_by_the_factors_after_it():
    factors = [(date(2020, 8, 31), Decimal("0.25")), (date(2021, 1, 5), Decimal("0.99"))]
    assert segments(factors) == [(date(2020, 8, 31), date(2021, 1, 5), Decimal("0.99")),
                                 (date.min, date(2020, 8, 31), Decimal("0.2475"))]
    assert segments(factors, complete=True)[0] == (date(2021, 1, 5), date.max, Decimal(1))
    assert segments([], complete=True) == [(date.min, date.max, Decimal(1))]

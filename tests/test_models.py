"""Asset specs on the command line: SYMBOL:TYPE, with the design's defaults."""

from __future__ import annotations

import pytest

from etl.errors import UsageError
from etl.models import Asset, parse_asset_list, parse_asset_spec


@pytest.mark.parametrize("text, expected", [
    ("AAPL:STOCK", Asset("AAPL", "STOCK")),
    ("aapl", Asset("AAPL", "STOCK")),
    ("^gspc", Asset("^GSPC", "INDEX")),
    (" voo:etf ", Asset("VOO", "ETF")),
    ("BTC:crypto", Asset("BTC", "CRYPTO")),
    ("EUR/USD:FOREX", Asset("EUR/USD", "FOREX")),
    ("USD:CASH", Asset("USD", "CASH")),
    ("brk.b", Asset("BRK.B", "STOCK")),
    ("VOD.L:STOCK", Asset("VOD.L", "STOCK")),
])
def test_spec_parses_to_the_canonical_asset(text, expected):
    assert parse_asset_spec(text) == expected


@pytest.mark.parametrize("text, complaint", [
    ("AAPL:BOND", "unknown type"),
    (":STOCK", "no symbol"),
    ("EURUSD:FOREX", "BASE/QUOTE"),
    ("GSPC:INDEX", "start with ^"),
    ("EUR/:FOREX", "BASE/QUOTE"),
    ("E$R/USD:FOREX", "BASE/QUOTE"),
    ("AA PL:STOCK", "a symbol is"),
    ("A$PL", "a symbol is"),
])
def test_bad_spec_is_a_usage_error_that_says_what_to_write(text, complaint):
    with pytest.raises(UsageError) as error:
        parse_asset_spec(text)
    assert complaint in str(error.value)
    assert error.value.exit_code == 2


def test_asset_list_keeps_order_and_drops_repeats():
    assert parse_asset_list("MSFT, aapl:stock,AAPL,BTC:CRYPTO") == [
        Asset("MSFT", "STOCK"), Asset("AAPL", "STOCK"), Asset("BTC", "CRYPTO")]


def test_empty_asset_list_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_asset_list(" , ")


def test_spec_round_trips():
    assert parse_asset_spec(Asset("EUR/USD", "FOREX").spec) == Asset("EUR/USD", "FOREX")

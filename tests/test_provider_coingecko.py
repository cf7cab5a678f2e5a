"""CoinGecko provider against a loopback server answering in CoinGecko's documented format."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from etl.errors import FatalError, NotFoundError, RateLimitedError, RetryableError
from etl.models import Asset
from etl.validate import validate_bars
from support.fake_api import Response, fixture_json
from support.providers import KEYS, build_provider, error_of

KEY = KEYS["coingecko"]
NOW = datetime(2024, 5, 13, 9, 30, tzinfo=timezone.utc)
BTC = Asset("BTC", "CRYPTO")
ETH = Asset("ETH", "CRYPTO")
USDT = Asset("USDT", "CRYPTO")
RENDER = Asset("RENDER", "CRYPTO")
CHART = re.compile(r"/coins/[^/]+/market_chart/range")


def provider(fake_api, key=KEY):
    cg = build_provider("coingecko", fake_api.base_url, key=key, paced=False, ETL_HTTP_RETRIES="1")
    cg.clock = lambda: NOW
    return cg


def serve(fake_api, path, fixture, status=200):
    fake_api.route(path, Response(status=status, body=fixture_json(f"coingecko/{fixture}")))


def by_day(bars):
    return {b.date.isoformat(): (str(b.price), str(b.volume)) for b in bars}


def test_history_is_one_bar_per_utc_day_closing_at_the_first_point_of_the_next_day(fake_api):
    serve(fake_api, CHART, "market_chart_range_bitcoin.json")
    bars = provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    assert by_day(bars) == {
        "2024-05-10": ("60801.2210449932", "31005478219.0041"),  # 05-11 00:03:52
        "2024-05-11": ("60822.4400134678", "13790214427.9912"),  # 05-12 00:02:33
        "2024-05-12": ("61463.7712998451", "11876544120.0073"),  # no later point: its last price, 23:02 is null
    }
    assert all(isinstance(b.price, Decimal) and b.currency == "USD" and b.source == "coingecko" for b in bars)
    assert all((b.open, b.high, b.low) == (None, None, None) for b in bars)
    assert bars[0].as_of == datetime(2024, 5, 11, 0, 3, 52, tzinfo=timezone.utc)


def test_history_asks_in_unix_seconds_from_the_first_day_through_the_day_after_the_last(fake_api):
    serve(fake_api, CHART, "market_chart_range_bitcoin.json")
    provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    [request] = fake_api.requests
    assert request.path == "/coins/bitcoin/market_chart/range"
    # 2024-05-10 00:00:00 through 2024-05-13 23:59:59 UTC: the last day's close is stamped 05-13 00:00
    assert request.query == {"vs_currency": "usd", "from": "1715299200", "to": "1715644799"}


def test_a_daily_point_at_midnight_utc_is_the_close_of_the_day_before(fake_api):
    # Ranges over 90 days come as one point a day at 00:00 UTC: the close of the UTC day that just ended.
    serve(fake_api, CHART, "market_chart_range_ethereum_daily.json")   # points at 05-08, 05-09, 05-10 00:00
    bars = provider(fake_api).history(ETH, date(2024, 5, 7), date(2024, 5, 9))
    assert by_day(bars) == {"2024-05-07": ("3005.6801942741", "12385627719.6013"),
                            "2024-05-08": ("2974.2178066012", "11920038514.2254"),
                            "2024-05-09": ("3036.2481301978", "12712541907.3419")}
    assert bars[-1].as_of == datetime(2024, 5, 10, tzinfo=timezone.utc)
    assert fake_api.requests[0].path == "/coins/ethereum/market_chart/range"


def test_hourly_and_daily_answers_give_a_day_the_same_close(fake_api):
    # A look-back re-check (hourly, up to 90 days) must store the close the first backfill (daily) stored:
    # both are the reading at the next day's 00:00 (hourly: its first point, 00:03), not the day's 23:03.
    hourly = {"prices": [[1715382187000, 60793.35], [1715385832000, 60801.22], [1715389400000, 60850.0]],
              "total_volumes": [[1715382187000, 31268840522.7], [1715385832000, 31005478219.0],
                                [1715389400000, 30900000000.0]]}                         # 05-10 23:03, 05-11 00:03, 01:03
    daily = {"prices": [[1715299200000, 63100.0], [1715385600000, 60801.22]],            # 05-10, 05-11 00:00
             "total_volumes": [[1715299200000, 27000000000.0], [1715385600000, 31005478219.0]]}
    answers = iter([hourly, daily])
    fake_api.route(CHART, lambda request: next(answers))
    cg = provider(fake_api)
    from_hourly = cg.history(BTC, date(2024, 5, 10), date(2024, 5, 10))
    from_daily = cg.history(BTC, date(2024, 5, 10), date(2024, 5, 10))
    assert by_day(from_hourly) == by_day(from_daily) == {"2024-05-10": ("60801.22", "31005478219.0")}


def test_a_day_with_only_null_prices_is_dropped_and_counted_by_validation(fake_api):
    payload = fixture_json("coingecko/market_chart_range_bitcoin.json")
    for point in payload["prices"][3:7]:          # every 2024-05-11 price and its close, 05-12 00:02
        point[1] = None
    payload["prices"][0][1] = -5                  # 2024-05-10's first price is broken, its last is fine
    fake_api.route(CHART, payload)
    bars = provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    checked = validate_bars(bars, date(2024, 5, 10), date(2024, 5, 12), today=NOW.date())
    assert [b.date for b in checked.rows] == [date(2024, 5, 10), date(2024, 5, 12)]
    assert (checked.dropped, checked.reasons) == (1, {"missing price": 1})


def test_history_older_than_the_free_plans_365_days_is_not_asked_for(fake_api):
    serve(fake_api, CHART, "market_chart_range_bitcoin.json")
    cg = provider(fake_api)
    cg.history(BTC, date(2020, 1, 1), date(2024, 5, 12))
    assert fake_api.requests[0].query["from"] == str(int(datetime(2023, 5, 15, tzinfo=timezone.utc).timestamp()))
    error = error_of(lambda: cg.history(BTC, date(2020, 1, 1), date(2020, 12, 31)))
    assert isinstance(error, RetryableError) and "365 days" in str(error)
    assert len(fake_api.requests) == 1


def test_quotes_for_many_coins_take_one_request_and_equal_the_served_numbers(fake_api):
    serve(fake_api, "/simple/price", "simple_price.json")
    batch = provider(fake_api).quotes([BTC, ETH, USDT])
    [request] = fake_api.requests
    assert request.query == {"ids": "bitcoin,ethereum,tether", "vs_currencies": "usd", "include_24hr_change": "true",
                             "include_24hr_vol": "true", "include_last_updated_at": "true"}
    quotes = {q.symbol: q for q in batch.quotes}
    assert batch.failures == {}
    assert (str(quotes["BTC"].price), str(quotes["BTC"].volume), str(quotes["BTC"].percent_change)) == \
           ("61463.7712998451", "12001988735.228582", "1.0817441239157013")
    assert quotes["USDT"].price == Decimal(1)
    assert quotes["ETH"].as_of == datetime(2024, 5, 12, 13, 3, 23, tzinfo=timezone.utc)
    assert quotes["ETH"].date == date(2024, 5, 12)
    assert {q.currency for q in batch.quotes} == {"USD"}


def test_a_coin_left_out_of_the_price_answer_fails_alone(fake_api):
    serve(fake_api, "/simple/price", "simple_price.json")
    sol = Asset("SOL", "CRYPTO")
    batch = provider(fake_api).quotes([BTC, sol])
    assert [q.symbol for q in batch.quotes] == ["BTC"]
    assert isinstance(batch.failures[sol], NotFoundError) and "solana" in str(batch.failures[sol])


def test_an_unmapped_ticker_is_resolved_once_through_search_by_best_rank(fake_api):
    serve(fake_api, "/search", "search_render.json")
    fake_api.route("/simple/price", {"render-token": {"usd": 10.0412, "last_updated_at": 1715519000}})
    cg = provider(fake_api)
    first, second = cg.quotes([RENDER]), cg.quotes([RENDER])
    assert cg.learned_symbols == {RENDER: "render-token"}
    assert [r.query for r in fake_api.requests_to("/search")] == [{"query": "RENDER"}]
    assert [str(q.price) for q in first.quotes + second.quotes] == ["10.0412", "10.0412"]


def test_a_coin_id_known_from_an_earlier_run_is_used_without_search(fake_api):
    serve(fake_api, "/search", "search_render.json")
    fake_api.route("/simple/price", {"render-token": {"usd": 10.0412, "last_updated_at": 1715519000}})
    cg = provider(fake_api)
    cg.known_symbols[("RENDER", "CRYPTO")] = "render-token"
    assert [str(q.price) for q in cg.quotes([RENDER]).quotes] == ["10.0412"]
    assert fake_api.requests_to("/search") == [] and cg.learned_symbols == {}


def test_the_assets_own_provider_symbol_wins_over_mapping_and_search(fake_api):
    serve(fake_api, CHART, "market_chart_range_bitcoin.json")
    provider(fake_api).history(Asset("BTC", "CRYPTO", provider_symbol="bitcoin-cash"), date(2024, 5, 10),
                               date(2024, 5, 12))
    assert [r.path for r in fake_api.requests] == ["/coins/bitcoin-cash/market_chart/range"]


def test_a_ticker_search_cannot_find_fails_alone(fake_api):
    serve(fake_api, "/search", "search_nothing.json")
    serve(fake_api, "/simple/price", "simple_price.json")
    nothing = Asset("ZZZQ", "CRYPTO")
    batch = provider(fake_api).quotes([nothing, BTC])
    assert [q.symbol for q in batch.quotes] == ["BTC"]
    assert isinstance(batch.failures[nothing], NotFoundError) and "provider_symbol" in str(batch.failures[nothing])


def test_the_demo_key_goes_in_its_header_and_never_in_the_url(fake_api):
    serve(fake_api, "/simple/price", "simple_price.json")
    serve(fake_api, CHART, "market_chart_range_bitcoin.json")
    cg = provider(fake_api)
    cg.quotes([BTC])
    cg.history(BTC, date(2024, 5, 10), date(2024, 5, 12))
    for request in fake_api.requests:
        assert {k.lower(): v for k, v in request.headers.items()}["x-cg-demo-api-key"] == KEY
        assert KEY not in str(request.query)


def test_without_a_key_no_key_header_is_sent(fake_api):
    serve(fake_api, "/simple/price", "simple_price.json")
    provider(fake_api, key=None).quotes([BTC])
    assert "x-cg-demo-api-key" not in {k.lower() for k in fake_api.requests[0].headers}


# CoinGecko's own error bodies beyond what every provider must handle (tests/test_provider_contract.py).
ERRORS = [
    ("error_429.json", 200, RateLimitedError, "rate-limited"),
    ("error_10002_key_missing.json", 200, FatalError, "check COINGECKO_API_KEY"),
    ("error_10012_range.json", 200, RetryableError, "beyond the history"),
    ("coin_not_found.json", 200, NotFoundError, "unknown coin id"),
]


@pytest.mark.parametrize("fixture, status, expected, says", ERRORS)
def test_api_errors_become_typed_errors_that_say_what_to_do(fake_api, fixture, status, expected, says):
    serve(fake_api, CHART, fixture, status)
    error = error_of(lambda: provider(fake_api).history(BTC, date(2024, 5, 10), date(2024, 5, 12)))
    assert type(error) is expected and says in str(error) and "coingecko" in str(error)


@pytest.mark.parametrize("fixture, status, expected, says", ERRORS)
def test_the_api_key_never_appears_in_an_error_message(fake_api, fixture, status, expected, says):
    body = fixture_json(f"coingecko/{fixture}")
    status_obj = body.get("status") or (body["error"]["status"] if isinstance(body.get("error"), dict) else None)
    if status_obj:
        status_obj["error_message"] += f" key={KEY} / {KEY}"
    else:
        body["error"] += f" for key {KEY}"
    fake_api.route("/simple/price", Response(status=status, body=body))
    error = error_of(lambda: provider(fake_api).quotes([BTC]))
    assert type(error) is expected and KEY not in str(error)


def test_a_rate_limit_on_the_price_request_raises(fake_api):
    serve(fake_api, "/simple/price", "error_429.json")
    assert isinstance(error_of(lambda: provider(fake_api).quotes([BTC, ETH])), RateLimitedError)


def test_limits_declare_the_free_plan():
    from etl.providers import provider_class
    limits = provider_class("coingecko").limits
    assert (limits.per_minute, limits.max_batch, limits.max_history_days) == (30, 250, 365)

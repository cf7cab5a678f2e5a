"""fetch_utils against a real loopback HTTP server: timeouts, retries, rate limits, typed errors.

The retry-and-pacing wrapper is shared by both HTTP clients (requests, and curl_cffi as a
browser for Yahoo), so its behaviour is checked through each (the `client` fixture).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from decimal import Decimal

import pytest

from etl.errors import (FatalError, NotFoundError, ProviderUnavailableError, ProviderUnreachableError,
                        QuotaExhaustedError, RateLimitedError, RetryableError)
from etl.utils import fetch_utils
from etl.utils.fetch_utils import RateLimiter, get_json, make_session
from etl.utils.http_clients import BrowserClient, RequestsClient
from support.fake_api import Response

KEY = "SecretKey-Pangolin-42"
CLIENTS = {"requests": RequestsClient, "curl_cffi": BrowserClient}


@pytest.fixture(params=list(CLIENTS))
def client(request) -> str:
    """Each HTTP client in turn, for the tests of what the wrapper gives both."""
    return request.param


def session(client_name: str = "requests", **options):
    return make_session("testapi", **{"timeout": 5, "retries": 3, "backoff": 0.01,
                                      "client": CLIENTS[client_name](), **options})


def in_turn(*answers: Response):
    """A handler giving `answers` one after the other, then the last one for ever."""
    sequence = itertools.chain(answers, itertools.repeat(answers[-1]))
    return lambda request: next(sequence)


def test_every_request_has_a_timeout(fake_api, client):
    fake_api.route("/slow", lambda request: time.sleep(1.5) or {"late": True})
    with pytest.raises(RetryableError) as error:
        get_json(session(client, timeout=0.3, retries=0), f"{fake_api.base_url}/slow")
    assert "timed out" in str(error.value) and "testapi" in str(error.value)


def test_server_errors_are_retried_until_success(fake_api, client):
    fake_api.route("/quote", in_turn(Response(500, {"error": "boom"}), Response(503, "busy"),
                                     Response(200, {"price": "1"})))
    assert get_json(session(client), f"{fake_api.base_url}/quote") == {"price": "1"}
    assert len(fake_api.requests_to("/quote")) == 3


def test_retry_after_is_honoured_on_429(fake_api, client):
    fake_api.route("/quote", in_turn(Response(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
                                     Response(200, {"ok": True})))
    started = time.monotonic()
    assert get_json(session(client), f"{fake_api.base_url}/quote") == {"ok": True}
    assert time.monotonic() - started >= 0.9
    assert len(fake_api.requests_to("/quote")) == 2


def test_exhausted_retries_on_5xx_raise_retryable_naming_provider_and_url_without_key(fake_api, client):
    fake_api.route("/quote", {"error": "down"}, status=502)
    with pytest.raises(RetryableError) as error:
        get_json(session(client), f"{fake_api.base_url}/quote", {"symbol": "AAPL", "apikey": KEY})
    message = str(error.value)
    assert type(error.value) is RetryableError
    assert "testapi" in message and "/quote?symbol=AAPL" in message and "502" in message
    assert KEY not in message
    assert len(fake_api.requests_to("/quote")) == 4


def test_exhausted_retries_on_429_raise_rate_limited(fake_api, client):
    fake_api.route("/quote", Response(429, {"error": "too many"}, headers={"Retry-After": "0"}))
    with pytest.raises(RateLimitedError) as error:
        get_json(session(client), f"{fake_api.base_url}/quote", {"apikey": KEY})
    assert "testapi" in str(error.value) and "429" in str(error.value)
    assert KEY not in str(error.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_fatal_and_names_the_key_variable(fake_api, status):
    fake_api.route("/quote", {"message": "invalid key"}, status=status)
    with pytest.raises(FatalError) as error:
        get_json(session(), f"{fake_api.base_url}/quote", {"apikey": KEY}, key_variable="TWELVE_DATA_API_KEY")
    assert "TWELVE_DATA_API_KEY" in str(error.value) and str(status) in str(error.value)
    assert KEY not in str(error.value)
    assert len(fake_api.requests_to("/quote")) == 1


def test_404_is_not_found(fake_api, client):
    fake_api.route("/quote", {"error": "symbol ZZZZ not found"}, status=404)
    with pytest.raises(NotFoundError) as error:
        get_json(session(client), f"{fake_api.base_url}/quote", {"symbol": "ZZZZ"})
    assert "ZZZZ" in str(error.value)


def test_a_status_named_as_json_returns_its_whole_body_for_the_caller_to_read(fake_api):
    body = {"error": {"code": "Bad Request", "description": "Data doesn't exist " + "x" * 300}}
    fake_api.route("/quote", body, status=400)
    assert get_json(session(), f"{fake_api.base_url}/quote", json_statuses=(400,)) == body
    with pytest.raises(FatalError, match="400"):
        get_json(session(), f"{fake_api.base_url}/quote")


def test_a_status_named_as_json_without_a_json_body_raises_as_always(fake_api):
    fake_api.route("/quote", Response(400, "<html>Bad Request</html>", content_type="text/html"))
    with pytest.raises(FatalError, match="400"):
        get_json(session(), f"{fake_api.base_url}/quote", json_statuses=(400,))


def test_html_error_page_is_retryable_with_a_short_excerpt(fake_api, client):
    page = "<html><body><h1>Service Unavailable</h1>" + "<p>padding</p>" * 200 + "</body></html>"
    fake_api.route("/quote", Response(200, page, content_type="text/html"))
    with pytest.raises(RetryableError) as error:
        get_json(session(client), f"{fake_api.base_url}/quote")
    message = str(error.value)
    assert "unreadable JSON" in message and "<h1>Service Unavailable</h1>" in message
    assert len(message) < 400


def test_truncated_json_is_retryable(fake_api):
    fake_api.route("/quote", Response(200, '{"price": 12.5, "symbol": "AA'))
    with pytest.raises(RetryableError) as error:
        get_json(session(), f"{fake_api.base_url}/quote")
    assert '{"price": 12.5' in str(error.value)


def test_json_numbers_become_exact_decimals(fake_api, client):
    fake_api.route("/quote", Response(200, '{"price": 123.456789012345678901, "volume": 100, "tiny": 1e-9}'))
    body = get_json(session(client), f"{fake_api.base_url}/quote")
    assert body["price"] == Decimal("123.456789012345678901")
    assert isinstance(body["price"], Decimal) and isinstance(body["tiny"], Decimal)
    assert body["volume"] == 100


def test_user_agent_names_the_product(fake_api):
    fake_api.route("/quote", {"ok": True})
    get_json(session(), f"{fake_api.base_url}/quote")
    [request] = fake_api.requests_to("/quote")
    assert request.headers["User-Agent"].startswith("financial-tracker-etl/")


def test_session_counts_its_requests(fake_api, client):
    fake_api.route("/quote", {"ok": True})
    client = session(client)
    for _ in range(3):
        get_json(client, f"{fake_api.base_url}/quote")
    assert client.requests_made == 3


@pytest.fixture(autouse=True)
def whole_waits(monkeypatch):
    """A FakeClock sees each wait whole: the session's limiter otherwise waits in slices, to notice a
    provider found unreachable meanwhile."""
    monkeypatch.setattr(fetch_utils, "ABORT_CHECK_SECONDS", float("inf"))


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_requests_to_the_allowed_rate(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(fetch_utils.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(fetch_utils.stopping, "sleep", clock.sleep)
    limiter = RateLimiter(per_minute=30)
    for _ in range(5):
        limiter.wait()
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0]


def test_rate_limiter_does_not_wait_when_requests_are_already_spaced(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(fetch_utils.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(fetch_utils.stopping, "sleep", clock.sleep)
    limiter = RateLimiter(per_minute=60)
    for _ in range(3):
        limiter.wait()
        clock.now += 5
    assert clock.sleeps == []


def test_session_waits_on_its_limiter_before_each_request(fake_api, monkeypatch):
    fake_api.route("/quote", {"ok": True})
    waits = []
    client = session(per_minute=6000)
    monkeypatch.setattr(client.limiter, "wait", lambda cost=1: waits.append(cost))
    for _ in range(4):
        get_json(client, f"{fake_api.base_url}/quote")
    assert len(waits) == 4 == len(fake_api.requests_to("/quote"))


def test_connection_refused_is_retryable_and_says_to_check_the_base_url(client):
    with pytest.raises(RetryableError) as error:
        get_json(session(client, retries=0), "http://127.0.0.1:9/quote", {"apikey": KEY})
    assert "cannot connect" in str(error.value) and KEY not in str(error.value)


def test_retried_requests_wait_on_the_limiter_too(fake_api, monkeypatch, client):
    fake_api.route("/quote", in_turn(Response(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
                                     Response(503, "busy"), Response(200, {"ok": True})))
    waits = []
    client = session(client, per_minute=6000)
    monkeypatch.setattr(client.limiter, "wait", lambda cost=1: waits.append(cost))
    assert get_json(client, f"{fake_api.base_url}/quote") == {"ok": True}
    assert len(waits) == 3 == len(fake_api.requests_to("/quote"))


def test_retry_after_holds_every_request_of_the_session(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(fetch_utils.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(fetch_utils.stopping, "sleep", clock.sleep)
    limiter = RateLimiter(per_minute=60)
    limiter.wait()
    limiter.hold(5)
    limiter.wait()
    assert clock.sleeps == [5.0]


def test_a_429_with_retry_after_holds_the_sessions_limiter(fake_api, monkeypatch):
    fake_api.route("/quote", in_turn(Response(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
                                     Response(200, {"ok": True})))
    client = session(per_minute=6000)
    holds = []
    monkeypatch.setattr(client.limiter, "hold", holds.append)
    get_json(client, f"{fake_api.base_url}/quote")
    assert holds == [1]


class CountingBudget:
    """A daily allowance of `allowed` requests that counts its reservations."""

    def __init__(self, allowed: int):
        self.allowed = allowed
        self.reserved = 0

    def reserve(self, units: int = 1) -> None:
        if self.reserved + units > self.allowed:
            raise QuotaExhaustedError(f"testapi: today's budget of {self.allowed} request(s) is spent")
        self.reserved += units


def test_a_retried_request_is_counted_and_reserved_from_the_daily_budget(fake_api, client):
    fake_api.route("/quote", in_turn(Response(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
                                     Response(200, {"ok": True})))
    budget = CountingBudget(allowed=25)
    client = session(client, budget=budget)
    assert get_json(client, f"{fake_api.base_url}/quote") == {"ok": True}
    assert client.requests_made == 2 == budget.reserved == len(fake_api.requests_to("/quote"))


def test_a_budget_spent_during_retries_ends_them_with_quota_exhausted(fake_api, client):
    fake_api.route("/quote", Response(503, "busy"))
    budget = CountingBudget(allowed=2)
    client = session(client, budget=budget)
    with pytest.raises(QuotaExhaustedError):
        get_json(client, f"{fake_api.base_url}/quote")
    assert len(fake_api.requests_to("/quote")) == 2 == client.requests_made


def test_the_limiter_spaces_a_costly_request_as_that_many_requests(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(fetch_utils.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(fetch_utils.stopping, "sleep", clock.sleep)
    limiter = RateLimiter(per_minute=8)
    limiter.wait(cost=8)
    limiter.wait(cost=2)
    limiter.wait()
    assert clock.sleeps == [60.0, 15.0]


def test_a_costed_request_reserves_its_cost_from_the_budget_and_waits_for_it(fake_api, monkeypatch):
    fake_api.route("/quote", {"ok": True})
    budget = CountingBudget(allowed=25)
    client = session(budget=budget, per_minute=6000)
    waits = []
    monkeypatch.setattr(client.limiter, "wait", lambda cost=1: waits.append(cost))
    get_json(client, f"{fake_api.base_url}/quote", cost=3)
    get_json(client, f"{fake_api.base_url}/quote")
    assert (budget.reserved, waits, client.requests_made) == (4, [3, 1], 2)


def test_a_retry_of_a_costed_request_costs_the_same(fake_api, monkeypatch, client):
    fake_api.route("/quote", in_turn(Response(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
                                     Response(200, {"ok": True})))
    budget = CountingBudget(allowed=25)
    client = session(client, budget=budget, per_minute=6000)
    waits = []
    monkeypatch.setattr(client.limiter, "wait", lambda cost=1: waits.append(cost))
    assert get_json(client, f"{fake_api.base_url}/quote", cost=3) == {"ok": True}
    assert (budget.reserved, waits) == (6, [3, 3])


def test_a_costed_request_that_does_not_fit_the_budget_is_not_sent(fake_api):
    fake_api.route("/quote", {"ok": True})
    budget = CountingBudget(allowed=5)
    client = session(budget=budget)
    get_json(client, f"{fake_api.base_url}/quote", cost=3)
    with pytest.raises(QuotaExhaustedError):
        get_json(client, f"{fake_api.base_url}/quote", cost=3)
    assert (budget.reserved, len(fake_api.requests_to("/quote"))) == (3, 1)


def test_a_browser_client_sends_a_browsers_headers_and_no_product_user_agent(fake_api):
    fake_api.route("/quote", {"ok": True})
    get_json(session("curl_cffi"), f"{fake_api.base_url}/quote")
    [request] = fake_api.requests_to("/quote")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert "Chrome/" in headers["user-agent"] and "financial-tracker-etl" not in headers["user-agent"]
    assert "sec-ch-ua" in headers


def test_edge_429s_in_a_row_make_the_provider_unavailable_and_later_requests_are_not_sent(fake_api, client):
    fake_api.route("/quote", Response(429, "Edge: Too Many Requests", content_type="text/plain"))
    fake_api.route("/other", {"ok": True})
    client_session = session(client, retries=10, down_after_429s=3)
    with pytest.raises(ProviderUnavailableError) as error:
        get_json(client_session, f"{fake_api.base_url}/quote")
    assert "429" in str(error.value) and "Edge: Too Many Requests" in str(error.value)
    assert "not asked again in this run" in str(error.value)
    with pytest.raises(ProviderUnavailableError):
        get_json(client_session, f"{fake_api.base_url}/other")
    assert (len(fake_api.requests_to("/quote")), fake_api.requests_to("/other")) == (3, [])


def test_edge_429s_are_retried_with_exponential_backoff(fake_api, monkeypatch):
    fake_api.route("/quote", in_turn(*[Response(429, "Edge: Too Many Requests", content_type="text/plain")] * 3,
                                     Response(200, {"ok": True})))
    sleeps = []
    monkeypatch.setattr(fetch_utils.stopping, "sleep", sleeps.append)
    assert get_json(session(backoff=1.0, down_after_429s=5), f"{fake_api.base_url}/quote") == {"ok": True}
    assert [int(s) for s in sleeps] == [1, 2, 4]


def test_a_429_between_successes_does_not_count_towards_unavailable(fake_api):
    fake_api.route("/quote", in_turn(Response(429, "Edge: Too Many Requests", content_type="text/plain"),
                                     Response(200, {"ok": True}),
                                     Response(429, "Edge: Too Many Requests", content_type="text/plain"),
                                     Response(200, {"ok": True})))
    client_session = session(down_after_429s=2)
    assert get_json(client_session, f"{fake_api.base_url}/quote") == {"ok": True}
    assert get_json(client_session, f"{fake_api.base_url}/quote") == {"ok": True}
    assert client_session.unavailable is None


@pytest.fixture
def full_listener():
    """A loopback port whose accept queue is full: a connect there times out (a host that drops packets)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = []
    while True:  # fill the queue (its length is the kernel's): until a connect times out
        try:
            queued.append(socket.create_connection(listener.getsockname(), timeout=0.2))
        except TimeoutError:
            break
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    for conn in queued:
        conn.close()
    listener.close()


def test_threads_starting_together_on_a_host_never_reached_wait_for_one_probe(full_listener):
    """The first request is the probe until the host answers once: five threads starting together on a
    host that times out cost its retries, not five first attempts beside them."""
    client = session(timeout=0.3, retries=2, backoff=0.01)
    errors: list[Exception] = []

    def ask():
        try:
            client.get(f"{full_listener}/chart")
        except Exception as exc:  # what each thread ends with is checked below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 5 and all(isinstance(error, ProviderUnreachableError) for error in errors), errors
    assert client.requests_made == 2 + 1

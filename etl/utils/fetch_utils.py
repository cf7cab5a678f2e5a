"""One HTTP session for every provider: timeouts, retries, rate limits, typed errors.

Retries (connection errors, 429 and 5xx, honouring Retry-After) are urllib3's
`Retry`; the per-provider request rate is a small thread-safe limiter so that
several worker threads can share one session. A request may carry a `cost`
(the API's credits it uses, e.g. Twelve Data's one per symbol of a batched
/quote): the limiter spaces it as that many requests, the daily budget reserves
that many units before it is sent, and each of its retries costs the same.
`get_json` turns every HTTP or
body problem into the typed errors of `etl.errors`, with the provider, the URL
(secrets removed), the status and a short excerpt of the body.

A provider that cannot be connected to is found out once per session (one
session per provider per run), not once per asset: see `Reachability`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from etl import __version__
from etl import stopping
from etl.errors import FatalError, NotFoundError, ProviderUnreachableError, RateLimitedError, RetryableError
from etl.utils.log_utils import redact

log = logging.getLogger(__name__)

USER_AGENT = f"financial-tracker-etl/{__version__} (+https://github.com/financial-tracker/financial-tracker-etl)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
ABORT_CHECK_SECONDS = 0.1


class Reachability:
    """Whether one provider's host can be connected to at all, found out once per session.

    The first request that cannot connect (DNS failure, connection refused,
    connect timeout) becomes the probe: it alone goes on retrying, neither
    paced by the rate limiter nor charged to the daily budget (nothing reached
    the provider) and without jitter (no other request of ours retries beside
    it), while every other request of the session waits for its outcome. A
    probe that connects lets them go on; one whose retries all fail makes the
    provider unreachable, and every request of the session, waiting or later,
    raises that ProviderUnreachableError without being sent.
    """

    def __init__(self) -> None:
        self.down: ProviderUnreachableError | None = None
        self._probe: int | None = None     # the thread probing, if any
        self._changed = threading.Condition()

    def admit(self) -> None:
        """Return when this thread may send: no other thread is probing; raise when the provider is down."""
        me = threading.get_ident()
        with self._changed:
            while self._probe not in (None, me) and self.down is None:
                self._changed.wait(ABORT_CHECK_SECONDS)
                stopping.check()
        self.check()

    def check(self) -> None:
        if self.down is not None:
            raise self.down

    def failed_to_connect(self) -> bool:
        """This thread's attempt could not connect; True when it is (or now becomes) the probe."""
        me = threading.get_ident()
        with self._changed:
            if self._probe is None and self.down is None:
                self._probe = me
            return self._probe == me

    def give_up(self, error: ProviderUnreachableError) -> None:
        with self._changed:
            if self.down is None:
                self.down = error
            self._probe = None
            self._changed.notify_all()

    def settled(self) -> None:
        """This thread's request ended (answered, or failed some other way): it probes no more."""
        with self._changed:
            if self._probe == threading.get_ident():
                self._probe = None
                self._changed.notify_all()


def connect_failure(exc: BaseException | None) -> str | None:
    """Why a connection could not be made, in a few words; None when `exc` is not a connect failure."""
    reason = getattr(exc.args[0], "reason", None) if isinstance(exc, requests.RequestException) and exc.args else exc
    if isinstance(reason, NameResolutionError):
        return "DNS lookup failed"
    if isinstance(reason, NewConnectionError):
        return "connection refused" if "refused" in str(reason).lower() else "no connection"
    if isinstance(reason, ConnectTimeoutError):
        return "connect timed out"
    return None


class SharedBucket(Protocol):
    """A rate limit shared with other processes (`etl.pipeline.rate_bucket`): `reserve` returns the seconds
    to wait before sending, or None when it cannot be asked (the limiter then paces locally)."""

    def reserve(self, units: int = 1) -> float | None: ...

    def hold(self, seconds: float) -> None: ...


class RateLimiter:
    """Spaces requests so that at most `per_minute` units start in any minute (thread-safe).

    A request of `cost` n takes n intervals: the next request starts n intervals after it.
    With `bucket`, the turns come from the limit every process shares, and a hold holds them all.
    """

    def __init__(self, per_minute: float | None, bucket: SharedBucket | None = None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.check: Callable[[], None] | None = None   # the session's: raises when the provider is down
        self.bucket = bucket if per_minute else None
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, cost: int = 1) -> None:
        """Wait for this request's turn; a stop request (see etl.stopping) ends the wait with `Interrupted`,
        and so does whatever `self.check` raises (called every ABORT_CHECK_SECONDS while waiting)."""
        check = self.check
        stopping.check()
        if not self.interval:
            return
        delay = self.bucket.reserve(cost) if self.bucket is not None else None
        if delay is not None:
            start = time.monotonic() + delay
        else:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next)
                self._next = start + self.interval * cost
        while (left := start - time.monotonic()) > 0:
            stopping.sleep(min(left, ABORT_CHECK_SECONDS))
            if check is not None:
                check()

    def hold(self, seconds: float) -> None:
        """Start no request for `seconds` (the provider said Retry-After)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)
        if self.bucket is not None:
            self.bucket.hold(seconds)


class _PacedRetry(Retry):
    """urllib3 Retry whose retries go through the session's rate limiter too.

    urllib3 retries inside the adapter, below `ProviderSession.request`, so
    without this a retried request would skip the limiter. A Retry-After also
    holds every other thread of the session, and is capped at
    MAX_RETRY_AFTER_SECONDS. A retry costs the provider's quota like any
    request, so it is reserved from the session's daily budget (a spent budget
    ends the retries with QuotaExhaustedError) and counted in `requests_made`.
    """

    limiter: RateLimiter | None = None
    session: "ProviderSession | None" = None

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.limiter = self.limiter
        retry.session = self.session
        return retry

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER_SECONDS)

    def sleep(self, response=None):
        if response is None and self.session is not None and self.history \
                and connect_failure(self.history[-1].error) is not None:
            reachability = self.session.reachability
            if reachability.failed_to_connect():
                stopping.sleep(self._probe_backoff())
                self.session.count_request()
                return
            reachability.admit()
        cost = self.session.current_cost() if self.session is not None else 1
        if self.session is not None and self.session.budget is not None:
            self.session.budget.reserve(cost)
        retry_after = self.get_retry_after(response) if response is not None else None
        if self.limiter is not None and retry_after:
            self.limiter.hold(retry_after)
        super().sleep(response)
        if self.limiter is not None:
            self.limiter.wait(cost)
        if self.session is not None:
            self.session.count_request()

    def _probe_backoff(self) -> float:
        """The wait before the next try to connect: 0, then the backoff base doubling (0.5, 1, 2 … s)."""
        tries = len(self.history)
        return 0.0 if tries <= 1 else min(self.backoff_max, self.backoff_factor * 2 ** (tries - 2))


class RequestBudget(Protocol):
    """A daily request allowance: `reserve` takes `units` of it at once or raises QuotaExhaustedError."""

    def reserve(self, units: int = 1) -> None: ...


class ProviderSession(requests.Session):
    """A requests.Session with a default timeout, a rate limiter, an optional daily budget and a
    request counter. The budget is reserved before waiting for the rate limiter, so a spent
    budget never waits out a rate-limit interval. `request(..., cost=n)` reserves and paces
    n units (default 1); the cost is kept per thread for the retries of that request."""

    def __init__(self, provider: str, *, timeout: float, limiter: RateLimiter, budget: RequestBudget | None = None):
        super().__init__()
        self.provider = provider
        self.timeout = timeout
        self.limiter = limiter
        self.budget = budget
        self.requests_made = 0
        self.reachability = Reachability()
        limiter.check = self.reachability.check
        self._count_lock = threading.Lock()
        self._cost = threading.local()
        self.headers["User-Agent"] = USER_AGENT
        self.headers["Accept"] = "application/json"

    def request(self, method, url, *, cost: int = 1, **kwargs):  # type: ignore[override]
        if cost < 1:
            raise ValueError(f"{self.provider}: a request costs at least 1 unit, not {cost}")
        kwargs.setdefault("timeout", self.timeout)
        self.reachability.admit()
        if self.budget is not None:
            self.budget.reserve(cost)
        self.limiter.wait(cost)
        self.reachability.admit()
        self.count_request()
        self._cost.value = cost
        try:
            return super().request(method, url, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            cause = connect_failure(exc)
            if cause is None:
                raise
            self.reachability.give_up(unreachable_error(self.provider, url, cause))
            log.debug("%s: %s for %s (%s)", self.provider, cause, redact(url), exc)
            raise self.reachability.down from exc
        finally:
            self.reachability.settled()
            self._cost.value = 1

    def current_cost(self) -> int:
        """The cost of the request this thread is sending (what each of its retries costs too)."""
        return getattr(self._cost, "value", 1)

    def count_request(self) -> None:
        with self._count_lock:
            self.requests_made += 1


def unreachable_error(provider: str, url: str, cause: str) -> ProviderUnreachableError:
    """The one line an unreachable provider gets: its host, not each URL asked for."""
    host = redact(urlsplit(url).netloc or url)
    return ProviderUnreachableError(f"{provider}: cannot connect to {host} ({cause}, retries included) — check the "
                                    "network and the provider's base URL setting; not asked again in this run")


def make_session(provider: str, *, timeout: float = 20.0, per_minute: float | None = None,
                 retries: int = 4, backoff: float = 0.5, pool_size: int = 8,
                 budget: RequestBudget | None = None, bucket: SharedBucket | None = None) -> ProviderSession:
    """A session for one provider: retries with exponential backoff and jitter on
    connection errors, 429 and 5xx (honouring Retry-After), a request-rate limit (shared
    with other processes through `bucket`) and, with `budget`, a daily allowance reserved
    before each request."""
    limiter = RateLimiter(per_minute, bucket)
    retry = _PacedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.limiter = limiter
    session = ProviderSession(provider, timeout=timeout, limiter=limiter, budget=budget)
    retry.session = session
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def describe_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """The URL as it may appear in a message: query included, secrets removed."""
    if params:
        url = f"{url}?{urlencode(params, doseq=True)}"
    return redact(url)


def excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return redact(flat if len(flat) <= limit else flat[:limit] + "…")


def _read_timed_out(exc: requests.exceptions.ConnectionError) -> bool:
    """requests reports a read timeout that exhausted urllib3's retries as a ConnectionError."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


def get_json(session: ProviderSession, url: str, params: Mapping[str, Any] | None = None, *,
             key_variable: str | None = None, not_found_statuses: tuple[int, ...] = (404,),
             json_statuses: tuple[int, ...] = (), cost: int = 1) -> Any:
    """GET `url` and return its JSON body, or raise a typed error that says what to do.

    `key_variable` names the setting to check when the API answers 401/403.
    An error status in `json_statuses` whose body is JSON returns that body,
    for the caller to read the API's own error object (a body that is not JSON
    raises as that status always does). `cost`: the units the request uses of the
    session's rate limit and daily budget.
    """
    where = describe_url(url, params)
    provider = session.provider
    try:
        response = session.get(url, params=params, cost=cost)
    except requests.exceptions.RetryError as exc:
        raise RateLimitedError(f"{provider}: still rate-limited or failing after retries for {where} — "
                               "try again later or lower the request rate") from exc
    except requests.exceptions.ConnectionError as exc:
        if isinstance(exc, requests.exceptions.Timeout) or _read_timed_out(exc):
            raise RetryableError(f"{provider}: timed out after {session.timeout:g} s for {where} — "
                                 "try again later or raise ETL_HTTP_TIMEOUT") from exc
        raise RetryableError(f"{provider}: cannot connect for {where} — check the network and the "
                             f"provider's base URL setting") from exc
    except requests.exceptions.Timeout as exc:
        raise RetryableError(f"{provider}: timed out after {session.timeout:g} s for {where} — "
                             "try again later or raise ETL_HTTP_TIMEOUT") from exc
    except requests.exceptions.RequestException as exc:
        raise RetryableError(f"{provider}: request failed for {where}: {type(exc).__name__}") from exc

    status = response.status_code
    if status in json_statuses:
        try:
            return _parse_json(response)
        except ValueError:
            pass
    if status in (401, 403):
        hint = f"check {key_variable}" if key_variable else "the provider refused access; try another provider"
        raise FatalError(f"{provider}: {status} for {where} — {hint}")
    if status in not_found_statuses:
        raise NotFoundError(f"{provider}: {status} for {where} — unknown or delisted symbol: "
                            f"{excerpt(response.text)}")
    if status == 429:
        raise RateLimitedError(f"{provider}: 429 rate-limited for {where} after retries — try again later")
    if status >= 500:
        raise RetryableError(f"{provider}: {status} for {where} — the provider is failing, try again later: "
                             f"{excerpt(response.text)}")
    if status >= 400:
        raise FatalError(f"{provider}: {status} for {where} — the request was refused: {excerpt(response.text)}")
    try:
        return _parse_json(response)
    except ValueError:
        raise RetryableError(f"{provider}: unreadable JSON from {where} (status {status}) — "
                             f"try again later: {excerpt(response.text)}") from None


def _parse_json(response: requests.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal, parse_constant=Decimal)

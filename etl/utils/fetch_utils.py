"""One HTTP session for every provider: timeouts, retries, rate limits, typed errors.

`ProviderSession` is the one wrapper both HTTP clients of `http_clients` share
(`requests`, and `curl_cffi` impersonating a browser for Yahoo): it reserves
the daily budget, waits for the per-provider rate limiter, counts, sends, and
retries connection errors, timeouts, 429 and 5xx with exponential backoff and
jitter, honouring Retry-After. The retries live here, not in the client
(urllib3's `Retry` exists only inside `requests`), so a retried request is
paced, reserved and counted like any other. A request may carry a `cost` (the
API's credits it uses, e.g. Twelve Data's one per symbol of a batched /quote):
the limiter spaces it as that many requests, the daily budget reserves that
many units before it is sent, and each of its retries costs the same.

With `down_after_429s`, that many 429 answers in a row (Yahoo's edge sends
them without Retry-After to clients it refuses) end the retries and mark the
provider unavailable for the session: `get_json` then raises
ProviderUnavailableError, and so does every later request, unsent.

A provider that cannot be connected to is found out once per session (one
session per provider per run), not once per asset: see `Reachability`.

`get_json` (`send`, then `read_json`) turns every HTTP or body problem into
the typed errors of `etl.errors`, with the provider, the URL (secrets removed), the status and a
short excerpt of the body.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlencode, urlsplit

from etl import stopping
from etl.errors import (FatalError, NotFoundError, ProviderUnavailableError, ProviderUnreachableError,
                        RateLimitedError, RetryableError)
from etl.utils.http_clients import USER_AGENT, Answer, HttpClient, RequestsClient, TransportError
from etl.utils.log_utils import redact
from etl.utils.reachability import ABORT_CHECK_SECONDS, Reachability

log = logging.getLogger(__name__)

__all__ = ["USER_AGENT", "Answer", "ProviderSession", "RateLimiter", "get_json", "make_session", "read_json", "send"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0


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


class RequestBudget(Protocol):
    """A daily request allowance: `reserve` takes `units` of it at once or raises QuotaExhaustedError."""

    def reserve(self, units: int = 1) -> None: ...


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds, capped; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class ProviderSession:
    """One provider's requests through `client`: a default timeout, the rate limiter, an optional
    daily budget, retries with backoff, and a request counter. Thread-safe.

    The budget is reserved before waiting for the rate limiter, so a spent budget never waits
    out a rate-limit interval. `headers` are sent with every request (a key header, say).
    """

    def __init__(self, provider: str, client: HttpClient, *, timeout: float, limiter: RateLimiter,
                 budget: RequestBudget | None = None, retries: int = 4, backoff: float = 0.5,
                 down_after_429s: int | None = None):
        self.provider = provider
        self.client = client
        self.timeout = timeout
        self.limiter = limiter
        self.budget = budget
        self.retries = retries
        self.backoff = backoff
        self.down_after_429s = down_after_429s
        self.headers: dict[str, str] = {}
        self.requests_made = 0
        self.unavailable: str | None = None     # why the provider is down for this session
        self.reachability = Reachability()
        limiter.check = self.reachability.check
        self._429s_in_a_row = 0
        self._lock = threading.Lock()

    def get(self, url: str, params: Mapping[str, Any] | None = None, *, cost: int = 1,
            headers: Mapping[str, str] | None = None, cookies: Mapping[str, str] | None = None,
            timeout: float | None = None, provider_host: bool = True) -> Answer:
        """GET with retries; the last answer when the retries are spent (the caller reads its
        status), TransportError when no attempt got an answer. `provider_host=False`: the URL is
        on another host (Yahoo's cookie URL), whose connect failures say nothing of the provider's."""
        if cost < 1:
            raise ValueError(f"{self.provider}: a request costs at least 1 unit, not {cost}")
        self._check_available()
        sent_headers = {**self.headers, **(headers or {})}
        attempt = 0
        paced = True   # a probe's retries (see Reachability) are neither paced nor charged
        try:
            while True:
                if paced:
                    self.reachability.admit(may_probe=provider_host)
                    if self.budget is not None:
                        self.budget.reserve(cost)
                    self.limiter.wait(cost)
                    self.reachability.admit(may_probe=provider_host)
                self._count()
                paced = True
                try:
                    answer = self.client.get(url, params=params, headers=sent_headers, cookies=cookies,
                                             timeout=timeout or self.timeout)
                except TransportError as exc:
                    unreachable = exc.cause is not None and provider_host
                    if provider_host and not unreachable:
                        self.reachability.connected()
                    if attempt >= self.retries:
                        if unreachable:
                            self.reachability.give_up(unreachable_error(self.provider, url, exc.cause))
                            log.debug("%s: %s for %s (%s)", self.provider, exc.cause, redact(url), exc)
                            raise self.reachability.down from exc
                        raise
                    if unreachable and self.reachability.failed_to_connect():
                        paced = False
                        delay = self._probe_backoff(attempt + 1)
                    else:
                        delay = self.backoff_seconds(attempt + 1)
                else:
                    if provider_host:
                        self.reachability.connected()
                    if self._note_status(answer, url, params) or answer.status not in RETRY_STATUSES \
                            or attempt >= self.retries:
                        return answer
                    retry_after = retry_after_seconds(answer.headers.get("Retry-After"))
                    if retry_after is not None:
                        self.limiter.hold(retry_after)
                    delay = self.backoff_seconds(attempt + 1) if retry_after is None else retry_after
                attempt += 1
                log.debug("%s: retry %d of %s in %.2f s", self.provider, attempt, describe_url(url, params), delay)
                stopping.sleep(delay)
        finally:
            self.reachability.settled()

    def _probe_backoff(self, retry: int) -> float:
        """A probe's wait before its `retry`-th try to connect: 0, then the backoff base doubling (0.5, 1, 2 … s),
        without jitter (no other request of ours retries beside it)."""
        return 0.0 if retry <= 1 else min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (retry - 2))

    def backoff_seconds(self, retry: int) -> float:
        """Exponential backoff with jitter before the `retry`-th retry (1, 2, …)."""
        base = self.backoff * 2 ** (retry - 1)
        return min(MAX_BACKOFF_SECONDS, base + random.uniform(0, self.backoff))

    def _count(self) -> None:
        with self._lock:
            self.requests_made += 1

    def _note_status(self, answer: Answer, url: str, params: Mapping[str, Any] | None) -> bool:
        """Count 429s in a row; True when that makes the provider unavailable (stop retrying)."""
        with self._lock:
            if answer.status != 429:
                self._429s_in_a_row = 0
                return False
            self._429s_in_a_row += 1
            if self.down_after_429s is None or self._429s_in_a_row < self.down_after_429s:
                return False
            if self.unavailable is None:
                self.unavailable = (f"{self._429s_in_a_row} answers in a row were 429 Too Many Requests "
                                    f"({excerpt(answer.text, 60)}), the last for {describe_url(url, params)}")
            return True

    def _check_available(self) -> None:
        if self.unavailable is not None:
            raise unavailable_error(self)


def unavailable_error(session: ProviderSession) -> ProviderUnavailableError:
    return ProviderUnavailableError(
        f"{session.provider}: refuses this client for now — {session.unavailable}; not asked again in this run, "
        "the next provider of each chain takes over — try again later")


def unreachable_error(provider: str, url: str, cause: str) -> ProviderUnreachableError:
    """The one line an unreachable provider gets: its host, not each URL asked for."""
    host = redact(urlsplit(url).netloc or url)
    return ProviderUnreachableError(f"{provider}: cannot connect to {host} ({cause}, retries included) — check the "
                                    "network and the provider's base URL setting; not asked again in this run")


def make_session(provider: str, *, timeout: float = 20.0, per_minute: float | None = None,
                 retries: int = 4, backoff: float = 0.5, pool_size: int = 8,
                 budget: RequestBudget | None = None, client: HttpClient | None = None,
                 down_after_429s: int | None = None, bucket: SharedBucket | None = None) -> ProviderSession:
    """A session for one provider: retries with exponential backoff and jitter on
    connection errors, timeouts, 429 and 5xx (honouring Retry-After), a request-rate limit
    (shared with other processes through `bucket`) and, with `budget`, a daily allowance
    reserved before each request. `client` defaults
    to `requests` with the product's User-Agent."""
    return ProviderSession(provider, client or RequestsClient(pool_size), timeout=timeout,
                           limiter=RateLimiter(per_minute, bucket), budget=budget, retries=retries, backoff=backoff,
                           down_after_429s=down_after_429s)


def describe_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """The URL as it may appear in a message: query included, secrets removed."""
    if params:
        url = f"{url}?{urlencode(params, doseq=True)}"
    return redact(url)


def excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return redact(flat if len(flat) <= limit else flat[:limit] + "…")


def send(session: ProviderSession, url: str, params: Mapping[str, Any] | None = None, *, cost: int = 1,
         headers: Mapping[str, str] | None = None, cookies: Mapping[str, str] | None = None) -> Answer:
    """GET `url` through the session; no answer at all (after the retries) raises a RetryableError."""
    provider = session.provider
    try:
        return session.get(url, params, cost=cost, headers=headers, cookies=cookies)
    except TransportError as exc:
        if exc.kind == "timeout":
            raise RetryableError(f"{provider}: timed out after {session.timeout:g} s for {describe_url(url, params)} "
                                 "— try again later or raise ETL_HTTP_TIMEOUT") from exc
        if exc.kind == "connect":  # about the host, not the query: the URL alone keeps the line short
            raise RetryableError(f"{provider}: cannot connect for {describe_url(url)} — check the network and "
                                 f"the provider's base URL setting") from exc
        raise RetryableError(f"{provider}: request failed for {describe_url(url, params)}: {exc}") from exc


def get_json(session: ProviderSession, url: str, params: Mapping[str, Any] | None = None, *,
             key_variable: str | None = None, not_found_statuses: tuple[int, ...] = (404,),
             json_statuses: tuple[int, ...] = (), cost: int = 1, headers: Mapping[str, str] | None = None,
             cookies: Mapping[str, str] | None = None) -> Any:
    """GET `url` and return its JSON body, or raise a typed error that says what to do (`read_json`)."""
    answer = send(session, url, params, cost=cost, headers=headers, cookies=cookies)
    return read_json(session, answer, url, params, key_variable=key_variable, not_found_statuses=not_found_statuses,
                     json_statuses=json_statuses)


def read_json(session: ProviderSession, response: Answer, url: str, params: Mapping[str, Any] | None = None, *,
              key_variable: str | None = None, not_found_statuses: tuple[int, ...] = (404,),
              json_statuses: tuple[int, ...] = ()) -> Any:
    """The JSON body of an answer to `url`, or the typed error its status or body calls for.

    `key_variable` names the setting to check when the API answers 401/403.
    An error status in `json_statuses` whose body is JSON returns that body,
    for the caller to read the API's own error object (a body that is not JSON
    raises as that status always does).
    """
    where = describe_url(url, params)
    provider = session.provider
    status = response.status
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
    if status == 429 and session.unavailable is not None:
        raise unavailable_error(session)
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


def _parse_json(response: Answer) -> Any:
    return json.loads(response.content, parse_float=Decimal, parse_constant=Decimal)

"""Yahoo's session: a cookie and the crumb that goes with it, obtained once and shared.

Yahoo asks for them from time to time: a 401 `{"finance": {"error": {"code":
"Unauthorized", "description": "Invalid Crumb"}}}` (or "Invalid Cookie"), a 403,
or an HTML page where JSON was due. ("User is unable to access this feature"
is no such request: the endpoint is closed to this client, whatever its
session.) Then a cookie comes from YAHOO_COOKIE_URL
(https://fc.yahoo.com answers 404 and sets it; the status does not matter) and
a crumb from `<YAHOO_BASE_URL>/v1/test/getcrumb` with that cookie (the crumb is
the whole plain-text body). Every later request carries the cookie and the
crumb as the `crumb` parameter.

A request is renewed at most once on refusal (getting a session when it had
none does not count), so a run fetches a crumb at most twice for it; a renewal
another thread made meanwhile is used instead of fetching again, and one that
failed is not tried again for the same refused session. The session
is kept in the database through the chain's `SavedSessions` for later runs and
other workers, and its values are registered as secrets, so no log line or
error message shows them. A refusal that survives a fresh session raises
AccessRefusedError (never fatal: the caller falls back or moves on).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from etl.errors import AccessRefusedError, ProviderUnavailableError, RetryableError
from etl.utils.fetch_utils import Answer, ProviderSession, describe_url, excerpt, read_json, send, unavailable_error
from etl.utils.http_clients import TransportError
from etl.utils.log_utils import register_secrets

log = logging.getLogger(__name__)

NAME = "yahoo"
DEFAULT_COOKIE_URL = "https://fc.yahoo.com"  # YAHOO_COOKIE_URL
CRUMB_PATH = "/v1/test/getcrumb"
FEATURE_REFUSED = "unable to access this feature"  # Yahoo closed the endpoint to this client: no session helps
# A crumb is a short token (letters, digits, '.', '/', '_' …); a refusal comes back as text or HTML instead.
_CRUMB = re.compile(r"^[A-Za-z0-9./_\-\\]{4,64}$")


@dataclass(frozen=True)
class Credentials:
    cookies: Mapping[str, str] = field(repr=False)
    crumb: str = field(repr=False)


class SessionStore(Protocol):
    """Where sessions are kept between runs (`etl.pipeline.provider_sessions.SavedSessions`)."""

    def load(self, provider: str) -> tuple[dict[str, str], str] | None: ...

    def save(self, provider: str, cookies: dict[str, str], crumb: str) -> None: ...


class YahooAuth:
    """The cookie and crumb of one provider instance, loaded from `store` once and renewed on refusal."""

    def __init__(self, session: ProviderSession, base_url: str, cookie_url: str, store: SessionStore | None = None):
        self.session = session
        self.base_url = base_url
        self.cookie_url = cookie_url
        self.store = store
        self.crumbs_fetched = 0
        self._credentials: Credentials | None = None
        self._failed: tuple[Credentials | None, RetryableError] | None = None  # the renewal that failed, and why
        self._loaded = store is None
        self._lock = threading.Lock()

    def current(self) -> Credentials | None:
        """The session to send: the one renewed in this run, else the stored one, else none."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                stored = self.store.load(NAME)
                if stored:
                    self._credentials = _remembered(Credentials(*stored))
            return self._credentials

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, **options) -> Any:
        """`read_json` of a request sent with the session, renewed once when Yahoo refuses it.

        A refusal that a session cannot cure ("unable to access this feature") raises at once.
        """
        credentials = self.current()
        renewed = False
        while True:
            sent = _with_crumb(params, credentials)
            answer = send(self.session, url, sent, cookies=credentials.cookies if credentials else None)
            reason = refusal(answer)
            if reason is None:
                return read_json(self.session, answer, url, sent, **options)
            refused = AccessRefusedError(f"{NAME}: {answer.status} for {describe_url(url, sent)} — Yahoo refused "
                                         f"it ({reason})")
            if FEATURE_REFUSED in reason.lower():
                raise refused
            if credentials is not None:
                if renewed:
                    raise AccessRefusedError(f"{refused} even with a fresh cookie and crumb")
                renewed = True
            log.info("%s; getting %s cookie and crumb", refused, "a new" if credentials else "a")
            try:
                credentials = self.renew(credentials)
            except ProviderUnavailableError:
                raise
            except RetryableError as failed:
                raise AccessRefusedError(f"{refused}; and no new session: {failed}") from failed

    def renew(self, stale: Credentials | None) -> Credentials:
        """A new session in place of `stale` (or the one another thread just got instead)."""
        with self._lock:
            if self._credentials is not None and self._credentials is not stale:
                return self._credentials
            if self._failed is not None and self._failed[0] is stale:
                raise self._failed[1]
            try:
                cookies = self._fetch_cookies()
                crumb = self._fetch_crumb(cookies)
            except RetryableError as exc:
                self._failed = (stale, exc)  # threads that were refused too do not ask again
                raise
            self.crumbs_fetched += 1
            self._credentials = _remembered(Credentials(cookies, crumb))
            if self.store is not None:
                self.store.save(NAME, cookies, crumb)
            return self._credentials

    def _fetch_cookies(self) -> dict[str, str]:
        answer = self._get(self.cookie_url, provider_host=False)
        if not answer.cookies:
            raise AccessRefusedError(f"{NAME}: {self.cookie_url} set no cookie (status {answer.status}) — Yahoo "
                                     "gives no session to this client now; try again later, or check YAHOO_COOKIE_URL")
        register_secrets(answer.cookies.values())
        return dict(answer.cookies)

    def _fetch_crumb(self, cookies: Mapping[str, str]) -> str:
        url = f"{self.base_url}{CRUMB_PATH}"
        answer = self._get(url, cookies)
        crumb = answer.text.strip()
        if answer.status != 200 or not _CRUMB.match(crumb):
            raise AccessRefusedError(f"{NAME}: no crumb from {CRUMB_PATH} (status {answer.status}: "
                                     f"{excerpt(crumb, 60)}) — Yahoo gives no session to this client now; "
                                     "try again later")
        return crumb

    def _get(self, url: str, cookies: Mapping[str, str] | None = None, *, provider_host: bool = True):
        try:
            answer = self.session.get(url, cookies=cookies, provider_host=provider_host)
        except TransportError as exc:
            raise RetryableError(f"{NAME}: cannot get a session from {url} ({exc}) — check the network and "
                                 "YAHOO_COOKIE_URL / YAHOO_BASE_URL") from exc
        if answer.status == 429 and self.session.unavailable is not None:
            raise unavailable_error(self.session)
        return answer


def refusal(answer: Answer) -> str | None:
    """Why Yahoo refused this request (401, 403, or an HTML page where JSON was due); None: not refused."""
    html = answer.text.lstrip()[:1] == "<"
    if answer.status not in (401, 403) and not (answer.status == 200 and html):
        return None
    try:
        body = json.loads(answer.content)
    except ValueError:
        return excerpt(answer.text, 80)
    for part in body.values() if isinstance(body, dict) else ():
        error = part.get("error") if isinstance(part, dict) else None
        if isinstance(error, dict) and (error.get("description") or error.get("code")):
            return str(error.get("description") or error.get("code"))
    return excerpt(answer.text, 80)


def _remembered(credentials: Credentials) -> Credentials:
    """`credentials`, their values registered as secrets first (no log line or message shows them)."""
    register_secrets([*credentials.cookies.values(), credentials.crumb])
    return credentials


def _with_crumb(params: Mapping[str, Any] | None, credentials: Credentials | None) -> dict[str, Any] | None:
    if credentials is None:
        return dict(params) if params is not None else None
    return {**(params or {}), "crumb": credentials.crumb}

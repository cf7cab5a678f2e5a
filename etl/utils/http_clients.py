"""The two HTTP clients a ProviderSession sends through: `requests`, and `curl_cffi` as a browser.

Both do one plain GET (no retries of their own) and answer with the same
`Answer`, or raise `TransportError` saying whether the request timed out or
could not connect, so the single retry-and-pacing wrapper in `fetch_utils`
serves both alike.

Why two: since May 2025 Yahoo answers clients that do not look like a browser
(their TLS and HTTP/2 fingerprint, not only their headers) with `429 Too Many
Requests` on the first request. `curl_cffi` drives curl-impersonate, which
sends a real browser's fingerprint and headers; the other APIs are fine with
`requests` and a User-Agent that names the product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from etl import __version__

USER_AGENT = f"financial-tracker-etl/{__version__} (+https://github.com/financial-tracker/financial-tracker-etl)"
DEFAULT_IMPERSONATE = "chrome"  # curl_cffi's newest Chrome target of the installed version
# curl's codes for a connection that could not be made (CURLE_COULDNT_CONNECT, CURLE_QUIC_CONNECT_ERROR).
# Its other connection errors come after connecting (an empty reply, a reset, a send or receive error):
# the host is there, so they say nothing about whether the provider can be reached.
CURL_COULDNT_CONNECT = frozenset({7, 96})


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the wrapper and the parsers need it, whichever client fetched it."""

    status: int
    headers: Mapping[str, str]          # case-insensitive, as both clients give them
    content: bytes
    cookies: dict[str, str] = field(default_factory=dict)   # those this answer set

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class TransportError(Exception):
    """No answer: `kind` is "timeout", "connect" or "other"; the message names the client's error type.
    `cause` says why no connection could be made at all (DNS, refused, connect timeout): the provider
    may be unreachable (`reachability.Reachability`); None for any other failure."""

    def __init__(self, kind: str, detail: str, cause: str | None = None):
        super().__init__(detail)
        self.kind = kind
        self.cause = cause


def requests_connect_failure(exc: BaseException) -> str | None:
    """Why `requests` could not connect, in a few words; None when `exc` is not a connect failure."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NameResolutionError):
        return "DNS lookup failed"
    if isinstance(reason, NewConnectionError):
        return "connection refused" if "refused" in str(reason).lower() else "no connection"
    if isinstance(reason, ConnectTimeoutError) or isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    return None


def curl_connect_failure(exc: BaseException) -> str | None:
    """Why curl could not connect, in a few words; None when it connected and then lost the answer."""
    if getattr(exc, "code", None) not in CURL_COULDNT_CONNECT:
        return None
    return "connection refused" if "refused" in str(exc).lower() else "no connection"


class HttpClient(Protocol):
    name: str

    def get(self, url: str, *, params: Mapping[str, Any] | None, headers: Mapping[str, str],
            cookies: Mapping[str, str] | None, timeout: float) -> Answer: ...


class RequestsClient:
    """`requests` with a connection pool for the fetch threads; sends the product's User-Agent."""

    name = "requests"

    def __init__(self, pool_size: int = 8):
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"

    def get(self, url, *, params, headers, cookies, timeout) -> Answer:
        try:
            response = self.session.get(url, params=params, headers=dict(headers), cookies=cookies,
                                        timeout=timeout)
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError("connect", type(exc).__name__, "connect timed out") from exc
        except requests.exceptions.Timeout as exc:
            raise TransportError("timeout", type(exc).__name__) from exc
        except requests.exceptions.ConnectionError as exc:
            raise TransportError("connect", type(exc).__name__, requests_connect_failure(exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError("other", type(exc).__name__) from exc
        return Answer(response.status_code, response.headers, response.content, dict(response.cookies))


class BrowserClient:
    """`curl_cffi` impersonating a browser (`impersonate`, e.g. "chrome"): its TLS fingerprint and
    its own headers only, no product User-Agent. Cookies are never kept in the client: whoever
    needs one (Yahoo's session) passes it with each request, so it can be shared through the
    database."""

    name = "curl_cffi"

    def __init__(self, impersonate: str = DEFAULT_IMPERSONATE):
        from curl_cffi import requests as curl_requests

        self.impersonate = impersonate
        self._errors = curl_requests.exceptions
        self.session = curl_requests.Session(impersonate=impersonate)

    def get(self, url, *, params, headers, cookies, timeout) -> Answer:
        errors = self._errors
        try:
            response = self.session.get(url, params=params, headers=dict(headers) or None, cookies=cookies,
                                        timeout=timeout, discard_cookies=True)
        except errors.ConnectTimeout as exc:
            raise TransportError("connect", type(exc).__name__, "connect timed out") from exc
        except errors.Timeout as exc:
            raise TransportError("timeout", type(exc).__name__) from exc
        except errors.DNSError as exc:
            raise TransportError("connect", type(exc).__name__, "DNS lookup failed") from exc
        except errors.ConnectionError as exc:
            raise TransportError("connect", type(exc).__name__, curl_connect_failure(exc)) from exc
        except (errors.SSLError, errors.ProxyError) as exc:
            raise TransportError("connect", type(exc).__name__) from exc
        except errors.RequestException as exc:
            raise TransportError("other", type(exc).__name__) from exc
        return Answer(response.status_code, response.headers, response.content, dict(response.cookies))


def browser_targets() -> frozenset[str]:
    """The impersonation targets the installed curl_cffi supports (for checking YAHOO_IMPERSONATE)."""
    from typing import get_args

    from curl_cffi.requests.impersonate import BrowserTypeLiteral

    return frozenset(get_args(BrowserTypeLiteral))

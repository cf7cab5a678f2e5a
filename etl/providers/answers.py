"""What every provider does with an API's answer besides parsing it.

APIs that take a key in the query, or that quote it back in their own messages
(Alpha Vantage's daily-limit notice does), must never leak it into an error:
`fetch_json` is `get_json` with the key scrubbed from any error it raises, and
`reported_error` builds the typed error for an error an API reports in a body
(often inside a 200), with the key scrubbed from the API's message. Which
`etl.errors` class a body error is stays each provider's call (it depends on
the API's codes and wording); `error_for_code` covers the HTTP-like codes many
APIs put in their bodies.

Whatever else goes wrong while reading an answer (a list where an object was
documented, a number no Decimal can hold) is the answer's fault, not the run's:
`reading` and `answer_parser` turn any such exception into an
UnusableAnswerError naming the provider and the asset it was about, so that
asset alone fails (or its next provider is asked) and the run goes on.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, TypeVar

from etl.errors import EtlError, FatalError, NotFoundError, RateLimitedError, RetryableError, UnusableAnswerError
from etl.models import Asset
from etl.utils.fetch_utils import ProviderSession, get_json
from etl.utils.log_utils import REDACTED, redact

UNKNOWN_SYMBOL = "unknown symbol; check it or set the asset's provider_symbol"
TRY_LATER = "try again later"


def scrub(text: str, api_key: str | None) -> str:
    """`text` with the key and anything key-shaped removed, ready for a message."""
    if api_key:
        text = text.replace(api_key, REDACTED)
    return redact(text)


def fetch_json(session: ProviderSession, url: str, params: Mapping[str, Any] | None = None, *,
               api_key: str | None = None, key_variable: str | None = None, cost: int = 1,
               json_statuses: tuple[int, ...] = ()) -> Any:
    """`get_json`, with the key taken out of any error (the body excerpt it quotes may echo the key)."""
    try:
        return get_json(session, url, params, key_variable=key_variable, cost=cost, json_statuses=json_statuses)
    except EtlError as exc:
        raise type(exc)(scrub(str(exc), api_key)) from exc.__cause__


def reported_error(error_class: type[EtlError], prefix: str, advice: str, message: str,
              api_key: str | None = None) -> EtlError:
    """The error `prefix — advice: message`, the API's own `message` scrubbed of the key (not raised,
    so callers choose)."""
    return error_class(f"{prefix} — {advice}: {scrub(message, api_key)}")


def error_for_code(code: Any, prefix: str, message: str, *, key_variable: str | None,
                   api_key: str | None = None) -> EtlError:
    """The typed error for an HTTP-like `code` an API reports in a body: 401/403 a bad key, 400/404 an
    unknown symbol, 429 a rate limit, 5xx a failing API; any other code refuses the request."""
    if code in (401, 403):
        return reported_error(FatalError, prefix, f"check {key_variable}", message, api_key)
    if code in (400, 404):
        return reported_error(NotFoundError, prefix, UNKNOWN_SYMBOL, message, api_key)
    if code == 429:
        return reported_error(RateLimitedError, prefix, "rate-limited; try again in a minute", message, api_key)
    if isinstance(code, int) and code >= 500:
        return reported_error(RetryableError, prefix, f"the API is failing, {TRY_LATER}", message, api_key)
    return reported_error(FatalError, prefix, "the request was refused", message, api_key)


def unexpected_answer(provider: str, where: str, what: str = "not a JSON object") -> RetryableError:
    """A JSON answer of the wrong shape: the API is having a bad moment."""
    return RetryableError(f"{provider}: unexpected answer from {where} ({what}) — {TRY_LATER}")


def unusable_answer(provider: str, subject: str, exc: BaseException) -> UnusableAnswerError:
    """The error for an answer about `subject` that broke the parser with `exc`."""
    detail = str(exc)
    what = type(exc).__name__ if not detail or detail.startswith("[<class") else f"{type(exc).__name__}: {detail}"
    return UnusableAnswerError(f"{provider}: unusable answer for {subject} ({scrub(what[:120], None)}) — "
                               f"{TRY_LATER} or put another provider first in its chain")


@contextmanager
def reading(provider: str, subject: str) -> Iterator[None]:
    """Read an answer about `subject`: a typed error passes, any other exception becomes its
    UnusableAnswerError."""
    try:
        yield
    except EtlError:
        raise
    except Exception as exc:
        raise unusable_answer(provider, subject, exc) from exc


Parser = TypeVar("Parser", bound=Callable[..., Any])


def answer_parser(provider: str) -> Callable[[Parser], Parser]:
    """Decorate a pure parse function of `provider`: it returns rows or raises a typed error, never
    anything else. The subject named is the first Asset among its arguments (else "its answer")."""
    def decorate(parse: Parser) -> Parser:
        @functools.wraps(parse)
        def parse_contained(*args, **kwargs):
            asset = next((a for a in (*args, *kwargs.values()) if isinstance(a, Asset)), None)
            with reading(provider, asset.spec if asset else f"its answer ({parse.__name__})"):
                return parse(*args, **kwargs)
        return parse_contained  # type: ignore[return-value]
    return decorate

"""Failed FHIR requests and answers that are not FHIR, turned into symfhir errors.

Every requests/urllib3 exception and every non-2xx answer of symfhir.fhir becomes one of these
(symfhir.errors) in ``translate``, and nowhere else:

    FhirServerError
    ├── FhirTransportError   connection refused/reset, timeout, 429/5xx (after retries)
    ├── FhirResponseError    not FHIR JSON (HTML page, malformed JSON), body over the size cap
    ├── FhirAuthError        401/403
    ├── FhirNotFoundError    404/410
    ├── FhirConflictError    409/412
    └── FhirRequestError     other 4xx and 3xx, invalid URLs
"""

from __future__ import annotations

import orjson
import requests
import urllib3.exceptions as u3

from symfhir.errors import (
    FhirAuthError,
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    FhirResponseError,
    FhirServerError,
    FhirTransportError,
)
from symfhir.fhir.config import DEFAULT_TIMEOUT
from symfhir.fhir.outcome import log_text, parse_outcome, reason_text
from symfhir.fhir.retry import RETRY_STATUSES, parse_retry_after

BODY_TEXT_MAX = 64 * 1024  # kept on the exception (``body``): never logged
_JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
_STATUS_TEXT = {
    401: "not authorized: credentials missing, expired or rejected",
    403: "forbidden: the credentials do not allow this",
    404: "not found",
    410: "deleted",
    409: "conflict",
    412: "precondition failed (version conflict)",
    429: "too many requests",
}


def translate(
    operation: str,
    *,
    error: BaseException | None = None,
    response: requests.Response | None = None,
    body: bytes = b"",
    status: int | None = None,
    outcome: object = None,
    idempotent: bool = True,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 0,
) -> FhirServerError:
    """The symfhir error for a failed request: the one place that maps them.

    Give ``error`` (a requests/urllib3/socket exception), or ``response`` with its ``body``,
    or a bare ``status`` with an ``outcome`` resource (a batch entry's answer).
    """
    if error is not None:
        return _failure_error(operation, error, idempotent, timeout, retries)

    content_type = ""
    retry_after: float | None = None
    retried = 0
    if response is not None:
        status = response.status_code
        content_type = media_type(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        retried = sum(1 for h in history if h.status is not None or h.error is not None)
        resource, problem = decode_fhir(content_type, body)
    else:
        resource, problem = (outcome, None) if isinstance(outcome, dict) else (None, None)
    status = status or 0
    issues = parse_outcome(resource)
    text = body[:BODY_TEXT_MAX].decode("utf-8", "replace")

    cls: type[FhirServerError]
    if status in (401, 403):
        cls = FhirAuthError
    elif status == 429 or status >= 500:
        cls = FhirTransportError
    elif 300 <= status < 400:
        cls = FhirRequestError
    elif problem is not None:
        # A 4xx whose body is not FHIR: a proxy's or web server's page, not a FHIR server's.
        cls = FhirResponseError
    elif status in (404, 410):
        cls = FhirNotFoundError
    elif status in (409, 412):
        cls = FhirConflictError
    else:
        cls = FhirRequestError

    if cls is FhirTransportError:
        reason = reason_text(issues) or (_STATUS_TEXT.get(status) or "server error")
        give_up_after = _give_up_after(response)
        if retry_after is not None and give_up_after is not None and retry_after > give_up_after:
            reason = (
                f"the server asked to wait {retry_after:g} s before retrying "
                f"(more than the {give_up_after:g} s we wait)"
            )
        elif retried:
            reason = f"gave up after {retried} retries: last answer HTTP {status} ({reason})"
        elif not idempotent and status in RETRY_STATUSES:
            reason += " (not retried: the request is not idempotent)"
        if problem is not None:
            reason += f"; {problem}"
    elif cls is FhirResponseError:
        reason = problem or "not a FHIR answer"
    elif 300 <= status < 400:
        reason = "redirected elsewhere: check the server's base URL"
    else:
        reason = reason_text(issues) or _STATUS_TEXT.get(status) or "request refused"
        if cls is FhirAuthError and problem is not None:
            reason += f" ({content_type or 'untyped'} answer)"
    log = log_text(operation, status, issues)
    if not issues:
        log += f"; {reason}"
    return cls(operation, reason, status=status, issues=issues, body=text, log_text=log)


def decode_fhir(content_type: str, body: bytes) -> tuple[dict | None, str | None]:
    """(resource, None) for a FHIR JSON body, (None, problem) otherwise; (None, None) if empty.

    ``problem`` names the content type but never quotes the body.
    """
    if not body.strip():
        return None, None
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        kind = "an HTML page" if content_type == "text/html" else f"a {content_type} answer"
        return None, f"{kind}, not FHIR JSON"
    try:
        resource = orjson.loads(body)
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None, f"malformed JSON ({content_type or 'no content type'})"
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None, f"JSON that is not a FHIR resource ({content_type or 'no content type'})"
    return resource, None


def media_type(response: requests.Response) -> str:
    """The response's media type, lower case, without parameters ("" if none)."""
    return _media_type(response.headers.get("Content-Type"))


def not_fhir(operation: str, reason: str) -> FhirResponseError:
    """The error for a 2xx answer that is not the FHIR the request expects."""
    return FhirResponseError(operation, reason, log_text=f"{operation}: {reason}")


def _failure_error(
    operation: str,
    error: BaseException,
    idempotent: bool,
    timeout: tuple[float, float],
    retries: int,
) -> FhirServerError:
    chain = _chain(error)
    exhausted = any(isinstance(e, u3.MaxRetryError | requests.exceptions.RetryError) for e in chain)

    def has(*kinds: type[BaseException]) -> bool:
        return any(isinstance(e, kinds) for e in chain)

    cls: type[FhirServerError] = FhirTransportError
    sent = True  # False when the request surely never reached the server
    if has(
        requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, u3.LocationValueError
    ):
        cls, reason, sent = FhirRequestError, "invalid URL", False
    elif has(requests.exceptions.InvalidSchema):
        cls, reason, sent = FhirRequestError, "not an http(s) URL", False
    elif has(requests.exceptions.ContentDecodingError, u3.DecodeError):
        cls, reason = FhirResponseError, "the answer could not be decoded"
    elif has(u3.ReadTimeoutError, requests.exceptions.ReadTimeout):
        reason = f"read timed out after {timeout[1]:g} s"
    elif has(u3.NameResolutionError):
        reason, sent = "host name not found", False
    elif has(u3.NewConnectionError):
        refused = has(ConnectionRefusedError)
        reason, sent = ("connection refused" if refused else "could not connect"), False
    elif has(u3.ConnectTimeoutError, requests.exceptions.ConnectTimeout):
        reason, sent = f"could not connect within {timeout[0]:g} s", False
    elif has(ConnectionResetError, BrokenPipeError):
        reason = "connection reset"
    elif has(requests.exceptions.ChunkedEncodingError, u3.IncompleteRead, u3.InvalidChunkLength):
        reason = "connection broken while reading the answer"
    elif has(u3.SSLError, requests.exceptions.SSLError):
        reason = "TLS error"
    elif has(u3.ProxyError, requests.exceptions.ProxyError):
        reason = "proxy error"
    elif has(requests.exceptions.TooManyRedirects):
        reason = "too many redirects"
    elif has(u3.ProtocolError):
        reason = "the server closed the connection without answering"
    elif has(TimeoutError):
        reason = "timed out"
    else:
        reason = f"request failed ({type(error).__name__})"
    if cls is FhirTransportError:
        if exhausted and retries:
            reason = f"gave up after {retries} retries: {reason}"
        elif sent and not idempotent:
            reason += " (not retried: the request is not idempotent)"
    return cls(operation, reason, log_text=f"{operation}: no answer; {reason}")


def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (args, MaxRetryError.reason, causes)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo and len(seen) < 20:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend(a for a in item.args if isinstance(a, BaseException))
        for linked in (getattr(item, "reason", None), item.__cause__, item.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return seen


def _give_up_after(response: requests.Response | None) -> float | None:
    retries = getattr(getattr(response, "raw", None), "retries", None)
    return getattr(retries, "give_up_after", None)


def _media_type(value: str | None) -> str:
    media = (value or "").split(";", 1)[0].strip().lower()
    # Named in messages: keep it short and printable.
    return media[:80] if media.isascii() and media.isprintable() else "unreadable"

"""HTTP transport to a FHIR server: a session, its retry policy, and error translation.

Every request of symfhir.fhir goes through ``send``; every requests/urllib3 exception and every
non-2xx answer becomes one of these (symfhir.errors) in ``translate``, and nowhere else:

    FhirServerError
    ├── FhirTransportError   connection refused/reset, timeout, 429/5xx (after retries)
    ├── FhirResponseError    not FHIR JSON (HTML page, malformed JSON), body over the size cap
    ├── FhirAuthError        401/403
    ├── FhirNotFoundError    404/410
    ├── FhirConflictError    409/412
    └── FhirRequestError     other 4xx and 3xx, invalid URLs

Retries are configuration (a urllib3 ``Retry`` on a mounted ``HTTPAdapter``), not loops in
callers. A request is retried only when repeating it cannot duplicate a write (FHIR R4
http.html#transactional-integrity): GET, HEAD, PUT, DELETE, and a POST that is a conditional
create (``If-None-Exist``) or a transaction/batch whose every POST entry has ``ifNoneExist``.
Other POSTs go out once; only a failure to connect (nothing was sent) is retried for them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Self

import requests
import urllib3.exceptions as u3
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.auth import AuthBase
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from symfhir import __version__
from symfhir.errors import (
    FhirAuthError,
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    FhirResponseError,
    FhirServerError,
    FhirTransportError,
)
from symfhir.fhir.config import ServerConfig
from symfhir.fhir.outcome import log_text, parse_outcome, reason_text

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"
USER_AGENT = f"symfhir/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# A POST reaches the retrying adapter only after is_idempotent() said yes.
RETRYABLE_METHODS = IDEMPOTENT_METHODS | {"POST"}
DEFAULT_TIMEOUT = (5.0, 60.0)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ERROR_BODY_MAX = 1024 * 1024  # of an error answer, read at most this much
BODY_TEXT_MAX = 64 * 1024  # kept on the exception (``body``): never logged
CHUNK = 64 * 1024
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


class FhirRetry(Retry):
    """urllib3's Retry, except that a Retry-After longer than ``give_up_after`` is not waited
    for: the last answer is returned at once and ``translate`` says how long the server asked."""

    def __init__(self, *args: Any, give_up_after: float = 120.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.give_up_after = give_up_after

    def new(self, **kw: Any) -> Self:
        kw.setdefault("give_up_after", self.give_up_after)
        return super().new(**kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None and self.respect_retry_after_header:
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > self.give_up_after:
                # With raise_on_status=False urllib3 hands back this response unretried.
                raise u3.MaxRetryError(_pool, url, u3.ResponseError("Retry-After too long"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def retry_policy(config: ServerConfig) -> FhirRetry:
    """Retries for idempotent requests: connect and read errors, 429/502/503/504."""
    n = config.retries
    return FhirRetry(
        total=n,
        connect=n,
        read=n,
        status=n,
        other=0,
        allowed_methods=RETRYABLE_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=config.backoff_factor,
        backoff_max=config.backoff_max,
        backoff_jitter=config.backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
        give_up_after=config.max_retry_after,
    )


def single_attempt_policy(config: ServerConfig) -> FhirRetry:
    """For non-idempotent requests: only a failed connect is retried (nothing was sent yet);
    a read error or a 429/5xx answer is final, since the server may have acted on the request."""
    n = config.retries
    return FhirRetry(
        total=n,
        connect=n,
        read=False,
        status=0,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        backoff_factor=config.backoff_factor,
        backoff_max=config.backoff_max,
        backoff_jitter=config.backoff_factor,
        raise_on_status=False,
        give_up_after=config.max_retry_after,
    )


# Why a context variable: requests picks the adapter (and so the Retry) from the URL alone, and
# both kinds of request go to the same URLs. ``send`` sets this flag around a non-idempotent
# request and FhirSession.get_adapter then hands out the single-attempt adapter. The flag is
# per thread/task, so threads sharing a session do not see each other's choice, and a 401
# re-send by an auth hook happens inside the same scope, through the same adapter.
_SINGLE_ATTEMPT: ContextVar[bool] = ContextVar("symfhir_single_attempt", default=False)


@contextmanager
def single_attempt() -> Iterator[None]:
    """Within this block, requests through a FhirSession are sent at most once."""
    token = _SINGLE_ATTEMPT.set(True)
    try:
        yield
    finally:
        _SINGLE_ATTEMPT.reset(token)


class FhirSession(requests.Session):
    """A requests Session with a default timeout, a size cap and two adapters: one retrying
    (mounted for http:// and https://) and one single-attempt (see ``single_attempt``)."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__()
        self.timeout = config.timeout
        self.max_response_bytes = config.max_response_bytes
        self.retries = config.retries
        self.retrying_adapter = HTTPAdapter(
            pool_maxsize=config.pool_size, max_retries=retry_policy(config)
        )
        self.single_attempt_adapter = HTTPAdapter(
            pool_maxsize=config.pool_size, max_retries=single_attempt_policy(config)
        )
        self.mount("https://", self.retrying_adapter)
        self.mount("http://", self.retrying_adapter)
        self.headers.update(
            {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON, "User-Agent": USER_AGENT}
        )

    def get_adapter(self, url: str) -> BaseAdapter:
        adapter = super().get_adapter(url)
        if adapter is self.retrying_adapter and _SINGLE_ATTEMPT.get():
            return self.single_attempt_adapter
        return adapter

    def close(self) -> None:
        super().close()
        self.single_attempt_adapter.close()


class QueryRedactingFilter(logging.Filter):
    """Drops query strings from urllib3's log records: its retry warning names the URL, and a
    search URL carries identifiers and names."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] + "?…" if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


def _redact_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, QueryRedactingFilter) for f in logger.filters):
        logger.addFilter(QueryRedactingFilter())


def make_session(config: ServerConfig, auth: AuthBase | None = None) -> FhirSession:
    """A session for ``config``'s server, signing requests with ``auth`` if given."""
    _redact_urllib3_logs()
    session = FhirSession(config)
    session.auth = auth
    return session


def is_idempotent(
    method: str, headers: Mapping[str, str] | None = None, body: object = None
) -> bool:
    """Whether repeating this request cannot duplicate a write (so it may be retried)."""
    method = method.upper()
    if method in IDEMPOTENT_METHODS:
        return True
    if method != "POST":
        return False
    if any(k.lower() == "if-none-exist" and v for k, v in (headers or {}).items()):
        return True
    return bundle_is_idempotent(body)


def bundle_is_idempotent(bundle: object) -> bool:
    """A transaction/batch Bundle whose POST entries are all conditional creates."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return False
    if bundle.get("type") not in ("transaction", "batch"):
        return False
    for entry in bundle.get("entry") or []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            return False
        method = str(request.get("method", "")).upper()
        if method == "POST" and not request.get("ifNoneExist"):
            return False
        if method not in IDEMPOTENT_METHODS | {"POST"}:
            return False  # PATCH, or no method at all
    return True


def send(
    session: requests.Session,
    method: str,
    url: str,
    operation: str,
    *,
    json_body: object = None,
    data: object = None,
    headers: Mapping[str, str] | None = None,
    params: object = None,
    idempotent: bool,
    stream: bool = False,
    max_bytes: int | None = None,
    timeout: tuple[float, float] | None = None,
) -> requests.Response:
    """Send one request and return its 2xx response, body read (unless ``stream``).

    ``operation`` names the request in errors ("read Patient/12"). A non-idempotent request
    is sent at most once. The body is read with a cap of ``max_bytes`` (the session's
    ``max_response_bytes`` by default); with ``stream`` the caller reads it and closes the
    response. Raises FhirServerError subclasses (see the module docstring), nothing else.
    """
    timeout = timeout or getattr(session, "timeout", DEFAULT_TIMEOUT)
    limit = max_bytes or getattr(session, "max_response_bytes", DEFAULT_MAX_BYTES)
    all_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        all_headers.setdefault("Content-Type", FHIR_JSON)
    response: requests.Response | None = None
    done = False
    try:
        with nullcontext() if idempotent else single_attempt():
            response = session.request(
                method,
                url,
                params=params,
                data=data,
                headers=all_headers,
                timeout=timeout,
                stream=True,
                # Following a redirect re-sends a write elsewhere: only reads may follow one.
                allow_redirects=method.upper() in ("GET", "HEAD"),
            )
        if not 200 <= response.status_code < 300:
            body = _read_some(response, ERROR_BODY_MAX)
            raise translate(
                operation, response=response, body=body, idempotent=idempotent, timeout=timeout
            )
        if not stream:
            read_body(response, limit, operation, timeout)
        done = True
        return response
    except (requests.RequestException, u3.HTTPError, OSError) as exc:
        raise translate(
            operation,
            error=exc,
            idempotent=idempotent,
            timeout=timeout,
            retries=getattr(session, "retries", 0),
        ) from None
    finally:
        if response is not None and not (done and stream):
            response.close()


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
        content_type = _media_type(response.headers.get("Content-Type"))
        retry_after = _retry_after(response.headers.get("Retry-After"))
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
        resource = json.loads(body)
    except (ValueError, RecursionError):
        return None, f"malformed JSON ({content_type or 'no content type'})"
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None, f"JSON that is not a FHIR resource ({content_type or 'no content type'})"
    return resource, None


def parse_json(response: requests.Response, operation: str) -> dict:
    """The FHIR resource in a 2xx response; {} for an empty body.

    Raises FhirResponseError when the body is not a FHIR JSON resource.
    """
    resource, problem = decode_fhir(
        _media_type(response.headers.get("Content-Type")), response.content
    )
    if problem is not None:
        text = response.content[:BODY_TEXT_MAX].decode("utf-8", "replace")
        raise FhirResponseError(
            operation,
            problem,
            status=response.status_code,
            body=text,
            log_text=f"{operation}: HTTP {response.status_code}; {problem}",
        )
    return resource or {}


def media_type(response: requests.Response) -> str:
    """The response's media type, lower case, without parameters ("" if none)."""
    return _media_type(response.headers.get("Content-Type"))


def too_large(operation: str, status: int | None, limit: int) -> FhirResponseError:
    """The error for an answer past the size cap."""
    reason = f"response larger than {limit} bytes"
    return FhirResponseError(
        operation, reason, status=status, log_text=f"{operation}: HTTP {status}; {reason}"
    )


def read_body(
    response: requests.Response,
    limit: int,
    operation: str,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> None:
    """Read the whole body into ``response.content``, aborting past ``limit`` bytes.

    Raises FhirResponseError past the cap, FhirServerError subclasses for broken connections.
    """
    check_length(response, limit, operation)
    chunks: list[bytes] = []
    size = 0
    for chunk in iter_body(response, operation, timeout):
        size += len(chunk)
        if size > limit:
            raise too_large(operation, response.status_code, limit)
        chunks.append(chunk)
    # What Response.content would do, but capped.
    response._content = b"".join(chunks)
    response._content_consumed = True


def check_length(response: requests.Response, limit: int, operation: str) -> None:
    """Raise FhirResponseError when the declared Content-Length is past ``limit``."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(operation, response.status_code, limit)


def iter_body(
    response: requests.Response, operation: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT
) -> Iterator[bytes]:
    """The body of a streamed response in chunks; read errors translated (``timeout`` is the
    one the request was sent with, for the message)."""
    try:
        yield from response.iter_content(CHUNK)
    except (requests.RequestException, u3.HTTPError, OSError) as exc:
        raise translate(operation, error=exc, timeout=timeout) from None


def _read_some(response: requests.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of an error answer (the rest is dropped with the connection)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except (requests.RequestException, u3.HTTPError, OSError):
        pass  # the status says enough; a broken error body must not hide it
    return b"".join(chunks)[:limit]


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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return Retry(retry_after_max=10**9).parse_retry_after(value)
    except u3.InvalidHeader:
        return None


def _media_type(value: str | None) -> str:
    media = (value or "").split(";", 1)[0].strip().lower()
    # Named in messages: keep it short and printable.
    return media[:80] if media.isascii() and media.isprintable() else "unreadable"

"""Which FHIR requests may be retried, and the urllib3 ``Retry`` policies that retry them.

Retries are configuration (a urllib3 ``Retry`` on a mounted ``HTTPAdapter``), not loops in
callers. A request is retried only when repeating it cannot duplicate a write (FHIR R4
http.html#transactional-integrity): GET, HEAD, PUT, DELETE, and a POST that is a conditional
create (``If-None-Exist``) or a transaction/batch whose every POST entry has ``ifNoneExist``.
Other POSTs go out once; only a failure to connect (nothing was sent) is retried for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import urllib3.exceptions as u3
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from symfhir.fhir.config import ServerConfig

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# A POST reaches the retrying adapter only after is_idempotent() said yes.
RETRYABLE_METHODS = IDEMPOTENT_METHODS | {"POST"}


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
            wait = parse_retry_after(response.headers.get("Retry-After"))
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


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header (delay or HTTP date) asks to wait; None if absent or bad."""
    if not value:
        return None
    try:
        # A Retry with no ceiling: the ceiling is FhirRetry.give_up_after's business.
        return Retry(retry_after_max=10**9).parse_retry_after(value)
    except u3.InvalidHeader:
        return None

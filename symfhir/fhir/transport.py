"""HTTP transport to a FHIR server: a session with two retry adapters, and ``send``.

Every request of symfhir.fhir goes through ``send``. Which requests are retried, and how, is
``retry``'s policy; what a failure becomes (the FhirServerError family) is ``translate``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar

import orjson
import requests
import urllib3.exceptions as u3
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.auth import AuthBase

from symfhir import __version__
from symfhir.fhir.body import ERROR_BODY_MAX, read_body, read_some
from symfhir.fhir.config import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, ServerConfig
from symfhir.fhir.retry import retry_policy, single_attempt_policy
from symfhir.fhir.translate import translate

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"
USER_AGENT = f"symfhir/{__version__}"


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
        # orjson: the same compact UTF-8 as json.dumps, ~10x faster on a 20-client transaction.
        data = orjson.dumps(json_body)
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
            body = read_some(response, ERROR_BODY_MAX)
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

"""Reading FHIR response bodies: under a size cap, streamed in chunks, or as a resource."""

from __future__ import annotations

from collections.abc import Iterator

import requests
import urllib3.exceptions as u3

from symfhir.errors import FhirResponseError
from symfhir.fhir.config import DEFAULT_TIMEOUT
from symfhir.fhir.translate import BODY_TEXT_MAX, decode_fhir, media_type, translate

ERROR_BODY_MAX = 1024 * 1024  # of an error answer, read at most this much
CHUNK = 64 * 1024


def parse_json(response: requests.Response, operation: str) -> dict:
    """The FHIR resource in a 2xx response; {} for an empty body.

    Raises FhirResponseError when the body is not a FHIR JSON resource.
    """
    resource, problem = decode_fhir(media_type(response), response.content)
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


def read_some(response: requests.Response, limit: int) -> bytes:
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

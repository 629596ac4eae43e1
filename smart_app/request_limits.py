"""Request size limits, enforced before anything reads a request body.

Every request may carry at most SYMFHIR_MAX_REQUEST_BYTES (forms, a drawn signature); an
endpoint that takes uploads raises its own ``request.max_content_length`` (the photo upload,
in ``smart_app.photos``). Flask's MAX_CONTENT_LENGTH (SYMFHIR_MAX_UPLOAD_BYTES, by default
the photo upload's limit) is the ceiling of any request. A body without Content-Length
(chunked) is cut off at the same limit while it is read.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from smart_app.errors import AppError, render_error


def _default_limit(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # An app-level URL value preprocessor runs before the blueprints' (the photo upload sets
    # its larger limit in one) and before every before_request.
    request.max_content_length = current_app.config["SYMFHIR_MAX_REQUEST_BYTES"]


def refuse_oversized() -> None:
    """Answer 413 from the Content-Length alone, before the CSRF check reads the form: the
    body of a refused request is never spooled to memory or disk."""
    ceiling = current_app.config["MAX_CONTENT_LENGTH"]
    limit = (
        ceiling if request.max_content_length is None else min(request.max_content_length, ceiling)
    )
    # Also what a chunked body is cut off at when read (werkzeug's LimitedStream).
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _too_large(_: RequestEntityTooLarge) -> tuple[str, int]:
    limit = request.max_content_length or current_app.config["SYMFHIR_MAX_REQUEST_BYTES"]
    return render_error(
        AppError(
            413,
            "request_too_large",
            "The request is too large",
            f"symfhir accepts at most {max(1, limit // 1024)} KB here, so nothing was saved. "
            "Go back and try again with less.",
        )
    )


def init_app(app: Flask, ceiling: int) -> None:
    """Register the limits; call before anything else registers a before_request.
    ``ceiling`` is the largest legitimate request (the photo upload) unless
    SYMFHIR_MAX_UPLOAD_BYTES says otherwise."""
    app.config["MAX_CONTENT_LENGTH"] = app.config["SYMFHIR_MAX_UPLOAD_BYTES"] or ceiling
    app.url_value_preprocessor(_default_limit)
    app.before_request(refuse_oversized)
    app.register_error_handler(RequestEntityTooLarge, _too_large)

"""Error pages: AppError (what went wrong, in words for the practitioner) and the one place
that turns errors into HTML pages. No stack trace, no token, no PHI reaches a page or a log."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from symfhir.errors import FhirAuthError, FhirServerError

log = logging.getLogger(__name__)


class AppError(Exception):
    """A failure shown as a page: HTTP ``status``, a stable ``code`` (the page's
    ``data-error-code``, for tests), a ``title`` and a ``message`` (no PHI, no tokens)."""

    def __init__(self, status: int, code: str, title: str, message: str) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.message = message
        super().__init__(f"{code}: {message}")


def session_expired() -> AppError:
    return AppError(
        401,
        "session_expired",
        "Your session has ended",
        "Please open symfhir again from the client's chart in the EHR.",
    )


def render_error(error: AppError) -> tuple[str, int]:
    page = render_template("error.html", code=error.code, title=error.title, message=error.message)
    return page, error.status


def init_app(app: Flask) -> None:
    """Register the handlers that turn errors into pages."""

    @app.errorhandler(AppError)
    def app_error(error: AppError) -> tuple[str, int]:
        log.info("error page %s (HTTP %s)", error.code, error.status)
        return render_error(error)

    @app.errorhandler(FhirServerError)
    def fhir_error(error: FhirServerError) -> tuple[str, int]:
        log.warning("FHIR server error: %s", error.log_text)  # log_text is PHI-free
        if isinstance(error, FhirAuthError):
            return render_error(
                AppError(
                    401 if error.status in (None, 401) else 403,
                    "fhir_refused",
                    "The FHIR server refused the request",
                    "The EHR did not allow this. Your sign-in may have ended or lack access.",
                )
            )
        return render_error(
            AppError(
                502,
                "fhir_unavailable",
                "The FHIR server could not answer",
                "The client's record could not be read or written just now. Try again.",
            )
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        status = error.code or 500
        return render_error(AppError(status, f"http_{status}", error.name, error.description or ""))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        # The type only: a message or traceback could hold PHI or tokens.
        log.error("unexpected error: %s", type(error).__name__)
        return render_error(
            AppError(500, "internal_error", "Something went wrong", "Please try again.")
        )

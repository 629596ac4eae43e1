"""CSRF tokens on every form and the security headers of every response.

The CSP allows only this app's own scripts, styles and images (no inline script, no third
party: no analytics), and ``frame-ancestors`` only the EHR origins that may embed the app.
Served over https, every response carries HSTS (never on a loopback host: browsers would
then refuse a developer's plain http://localhost on every port).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session

from smart_app.errors import AppError
from symfhir.urls import is_loopback

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HSTS = "max-age=31536000; includeSubDomains"
View = TypeVar("View", bound=Callable[..., Any])


def csrf_token() -> str:
    """The session's CSRF token (made on first use); templates call it in every form."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def csrf_exempt(view: View) -> View:
    """Mark a view that checks its requests itself: a webhook that verifies its provider's
    signature, an RFC 8058 one-click unsubscribe POST (mail clients send no token)."""
    setattr(view, "csrf_exempt", True)  # noqa: B010 - an attribute on a function
    return view


def check_csrf() -> None:
    """Refuse (400) an unsafe request without the session's CSRF token, unless its view is
    ``csrf_exempt`` (it then calls ``require_csrf`` where it needs it)."""
    if request.method in SAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "csrf_exempt", False):
        return
    require_csrf()


def require_csrf() -> None:
    """Refuse (400) a request without the session's CSRF token."""
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), given):
        raise AppError(
            400,
            "csrf_failed",
            "The form could not be accepted",
            "The form had expired or did not come from symfhir. Reload the page and try again.",
        )


def served_over_https(base_url: str) -> bool:
    """Whether this request reached the app over https: directly, or (behind a proxy that
    ends TLS and forwards plain http) because SYMFHIR_BASE_URL, how browsers reach the app,
    is https. False for a loopback host."""
    if is_loopback(urlsplit(f"//{request.host}").hostname):
        return False
    return request.is_secure or base_url.startswith("https://")


def content_security_policy(ehr_origins: list[str]) -> str:
    ancestors = " ".join(["'self'", *ehr_origins])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


def init_app(app: Flask) -> None:
    policy = content_security_policy(app.config["SYMFHIR_EHR_ORIGINS"])
    base_url = app.config["SYMFHIR_BASE_URL"]
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["csrf_field"] = CSRF_FIELD

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if served_over_https(base_url):
            response.headers["Strict-Transport-Security"] = HSTS
        if not request.path.startswith("/static/"):
            # Pages may show PHI: never kept by the browser or a proxy.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response

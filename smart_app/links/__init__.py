"""The public SMART Health Link service: a web app of its own (not the SMART app, which runs
inside the EHR), deployable apart from it, that physicians reach without an account.

``create_app(config)`` builds it with the SMART app's security headers and request limits
(``smart_app.security``, ``request_limits``) and JSON errors, and the blueprints: ``manifest``
(``POST /shl/m/<id>`` the manifest, ``GET /shl/f/<ticket>`` a file, CORS open as the spec
asks) and ``viewer`` (``GET /view``, the page that opens a link in the
browser). It reads links from the app's store (``symfhir.sharing.links``) and writes each
disclosure's AuditEvent, and re-reads the Consent, with its own FHIR client. No session
cookie: the API is stateless.

Settings (the mapping given to ``create_app`` wins over the environment):
    SYMFHIR_LINKS_BASE_URL    the service's public URL (https in production): manifest and
                              file URLs point there (default http://localhost:5300)
    SYMFHIR_LINKS_CLIENT      (tests) a callable returning the FhirClient to use; else
                              symfhir's configured server (SYMFHIR_CONFIG, FHIR_BASE_URL)
    SYMFHIR_STORE             (tests) the Store; else SYMFHIR_STORE_URL/SYMFHIR_STORE_KEYS,
                              the same as the app's (no key is made at start)
    SYMFHIR_LINKS_SETTINGS    (tests) LinkServiceSettings; else mappings/links.yaml
    SYMFHIR_LINKS_CLOCK       (tests) a callable giving the aware current time
    SYMFHIR_LINKS_CONSENT_CHECK  (tests) a callable(LinkContext) -> bool replacing the
                              consent re-check against the FHIR server
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from smart_app import request_limits, security
from smart_app.links.fhir_client import close_client
from smart_app.links.manifest import bp as manifest_bp
from smart_app.links.rate_limits import SlidingWindow
from smart_app.links.viewer import bp as viewer_bp
from symfhir.cardnumbers import mask_log_records
from symfhir.errors import ConfigError
from symfhir.sharing.link_settings import LinkServiceSettings, load_link_settings
from symfhir.store import Store

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SYMFHIR_LINKS_BASE_URL": "http://localhost:5300",
    "SYMFHIR_LINKS_CLIENT": None,
    "SYMFHIR_STORE": None,
    "SYMFHIR_LINKS_SETTINGS": None,
    "SYMFHIR_LINKS_CLOCK": None,
    "SYMFHIR_LINKS_CONSENT_CHECK": None,
    "SYMFHIR_MAX_UPLOAD_BYTES": None,
}
_ENV = ("SYMFHIR_LINKS_BASE_URL",)


def _settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(DEFAULTS)
    for key in _ENV:
        if os.environ.get(key):
            values[key] = os.environ[key]
    values.update(config or {})
    base = str(values["SYMFHIR_LINKS_BASE_URL"]).strip().rstrip("/")
    if not base.startswith(("https://", "http://")) or "#" in base or "?" in base:
        raise ConfigError("SYMFHIR_LINKS_BASE_URL: must be an http(s) URL without query")
    values["SYMFHIR_LINKS_BASE_URL"] = base
    if values["SYMFHIR_LINKS_SETTINGS"] is None:
        values["SYMFHIR_LINKS_SETTINGS"] = load_link_settings()
    if values["SYMFHIR_LINKS_CLOCK"] is None:
        values["SYMFHIR_LINKS_CLOCK"] = lambda: datetime.now(UTC)
    if values["SYMFHIR_STORE"] is None:
        values["SYMFHIR_STORE"] = Store.from_env()  # ConfigError without SYMFHIR_STORE_KEYS
    links: LinkServiceSettings = values["SYMFHIR_LINKS_SETTINGS"]
    values["SYMFHIR_MAX_REQUEST_BYTES"] = links.request_bytes
    # Nothing signs a cookie here, but Flask wants a key for its (unused) session.
    values.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    # What smart_app.security reads: no one frames the service but itself.
    values["SYMFHIR_BASE_URL"] = base
    values["SYMFHIR_EHR_ORIGINS"] = []
    return values


def content_security_policy() -> str:
    """The viewer's needs: its own script and style, fetches to this service only, the
    decrypted photos as data: or blob: images."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _error(status: int, code: str) -> tuple[Response, int]:
    return jsonify(error=code), status


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The link service. Raises symfhir.errors.ConfigError for unusable settings (a base URL
    that is not http(s), no store keys)."""
    mask_log_records()
    app = Flask(__name__)
    settings = _settings(config)
    app.config.update(settings)
    links: LinkServiceSettings = settings["SYMFHIR_LINKS_SETTINGS"]
    app.extensions["symfhir_links_limits"] = {
        "link": SlidingWindow(links.per_link),
        "client": SlidingWindow(links.per_client),
        "files": SlidingWindow(links.files_per_client),
    }
    policy = content_security_policy()

    # Registered before smart_app.security's: after_request runs last-registered first, so
    # this one runs after it and its CSP (blob: images, connect-src) wins.
    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        if request.path.startswith("/shl/"):
            # The spec: any origin's SHL viewer may fetch manifests and files.
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Content-Type"
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    request_limits.init_app(app, ceiling=links.request_bytes)
    security.init_app(app)

    # JSON errors everywhere (the API's clients are programs); an oversized body is a bad
    # request like a malformed one.
    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        return _error(400, "request_too_large")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return _error(status, "not_found" if status == 404 else f"http_{status}")

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        # The type only: a message could hold PHI or a link's id.
        log.error("unexpected error: %s", type(error).__name__)
        return _error(500, "internal_error")

    app.teardown_appcontext(close_client)
    app.register_blueprint(manifest_bp)
    app.register_blueprint(viewer_bp)
    return app

"""The client privacy portal: a public web app of its own (not the SMART app, which runs
inside the EHR) that a spa links from its website and its marketing messages.

``create_app(config)`` builds it with the SMART app's CSRF tokens, security headers, request
limits and error pages (``smart_app.security``, ``request_limits``, ``errors``), a signed
session cookie that holds nothing but the CSRF token (and, while codes are being entered, the
id of the request's Task), and the blueprints (``optout``: the
unsubscribe link and the SMS webhook; ``requests``: the privacy-request form and its codes;
``request_status``: the status page and the package download). The portal talks to the FHIR
server configured for symfhir (``symfhir.fhir.load_config``: FHIR_BASE_URL, the ``[server]``
table; SMART Backend Services with least system scopes in production).

Settings (the mapping given to ``create_app`` wins over the environment):
    SYMFHIR_PORTAL_BASE_URL   the portal's public URL (https in production): what links
                              point to, and the URL an SMS provider signs
    SYMFHIR_MARKETING_KEY     the unsubscribe links' HMAC key (>= 32 characters); made at
                              start when unset (links then stop working on a restart)
    SYMFHIR_SMS_AUTH_TOKEN    the SMS provider's auth token; unset: every webhook is refused
    SECRET_KEY                signs the session cookie; made at start when unset
    SYMFHIR_PORTAL_CLIENT     (tests) a callable returning the FhirClient to use
    SYMFHIR_PORTAL_SERVICES   (tests) the request flow's PortalServices; else the store of
                              SYMFHIR_STORE_* and the senders of SYMFHIR_SMTP_* / SYMFHIR_SMS_*
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from smart_app import errors, request_limits, security
from smart_app.portal.fhir_client import close_client
from smart_app.portal.optout import bp as optout_bp
from smart_app.portal.request_status import bp as status_bp
from smart_app.portal.requests import bp as requests_bp
from smart_app.session_store import cookie_flags
from symfhir.cardnumbers import mask_log_records
from symfhir.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SYMFHIR_PORTAL_BASE_URL": "http://localhost:5200",
    "SYMFHIR_MARKETING_KEY": None,
    "SYMFHIR_SMS_AUTH_TOKEN": None,
    "SECRET_KEY": None,
    "SYMFHIR_PORTAL_CLIENT": None,
    # Forms and webhooks are small: a provider's form post is a few KB.
    "SYMFHIR_MAX_REQUEST_BYTES": 64 * 1024,
    "SYMFHIR_MAX_UPLOAD_BYTES": None,
}
COOKIE_NAME = "symfhir_portal"


def _settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(DEFAULTS)
    for key in DEFAULTS:
        if os.environ.get(key):
            values[key] = os.environ[key]
    values.update(config or {})
    base = str(values["SYMFHIR_PORTAL_BASE_URL"]).rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ConfigError("SYMFHIR_PORTAL_BASE_URL: must be an http(s) URL")
    values["SYMFHIR_PORTAL_BASE_URL"] = base
    if not values["SECRET_KEY"]:
        values["SECRET_KEY"] = secrets.token_urlsafe(32)
    if not values["SYMFHIR_MARKETING_KEY"]:
        log.warning(
            "SYMFHIR_MARKETING_KEY not set: using a key made at start; unsubscribe links "
            "stop working on a restart (set it in production, the same as symfhir marketing's)"
        )
        values["SYMFHIR_MARKETING_KEY"] = secrets.token_urlsafe(48)
    if len(str(values["SYMFHIR_MARKETING_KEY"])) < 32:
        raise ConfigError("SYMFHIR_MARKETING_KEY: must be at least 32 characters")
    if not values["SYMFHIR_SMS_AUTH_TOKEN"]:
        log.warning("SYMFHIR_SMS_AUTH_TOKEN not set: the SMS webhook refuses every request")
    # What smart_app.security reads: no EHR embeds the portal, so only itself may frame it.
    values["SYMFHIR_BASE_URL"] = base
    values["SYMFHIR_EHR_ORIGINS"] = []
    return values


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The portal app. Raises symfhir.errors.ConfigError for unusable settings."""
    mask_log_records()
    app = Flask(__name__)
    settings = _settings(config)
    app.config.update(settings)
    app.config.update(cookie_flags(settings["SYMFHIR_PORTAL_BASE_URL"].startswith("https://")))
    # Not inside an EHR's iframe: the cookie need not cross sites.
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_SAMESITE="Lax")
    errors.init_app(app)
    request_limits.init_app(app, ceiling=settings["SYMFHIR_MAX_REQUEST_BYTES"])
    security.init_app(app)
    app.teardown_appcontext(close_client)
    app.register_blueprint(optout_bp)
    app.register_blueprint(requests_bp)
    app.register_blueprint(status_bp)
    return app

"""``create_app``: settings, keys, encrypted server-side sessions, security headers, error
pages and the blueprints (launch, summary, intake, consents, photos, privacy, sharing)."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask, session

from smart_app import ehr_style, errors, request_limits, security, timing
from smart_app.config import load_settings
from smart_app.consents import bp as consents_bp
from smart_app.fhir_access import CONTEXT, close_access
from smart_app.intake import bp as intake_bp
from smart_app.launch.views import bp as launch_bp
from smart_app.photos import MAX_UPLOAD_BYTES
from smart_app.photos import bp as photos_bp
from smart_app.privacy import bp as privacy_bp
from smart_app.privacy_corrections import bp as privacy_corrections_bp
from smart_app.privacy_dashboard import bp as privacy_dashboard_bp
from smart_app.session_store import EncryptedSessionInterface, FileSessionStore, cookie_flags
from smart_app.sharing import bp as sharing_bp
from smart_app.summary import bp as summary_bp
from symfhir.cardnumbers import mask_log_records
from symfhir.smart.assertion import ClientKey

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app. ``config`` overrides the environment and SYMFHIR_APP_CONFIG's file.

    Raises symfhir.errors.ConfigError for unusable settings.
    """
    mask_log_records()  # the privacy policy: no card number in any log line either
    app = Flask(__name__)
    settings = load_settings(config)
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = secrets.token_urlsafe(32)
    if not settings["SYMFHIR_TOKEN_KEYS"]:
        log.warning(
            "SYMFHIR_TOKEN_KEYS not set: using a key made at start; sessions will not survive "
            "a restart (set SYMFHIR_TOKEN_KEYS in production)"
        )
        settings["SYMFHIR_TOKEN_KEYS"] = [Fernet.generate_key().decode()]
    if not settings["SYMFHIR_SESSION_DIR"]:
        settings["SYMFHIR_SESSION_DIR"] = tempfile.mkdtemp(prefix="symfhir-sessions-")
        log.warning("SYMFHIR_SESSION_DIR not set: sessions are kept in a new temporary folder")
    app.config.update(settings)
    app.config.update(cookie_flags(settings["SYMFHIR_COOKIE_SECURE"]))

    key_file = settings["SYMFHIR_PRIVATE_KEY_FILE"]
    if not key_file:
        log.warning("SYMFHIR_PRIVATE_KEY_FILE not set: using an ES384 key made at start")
    app.extensions["symfhir_key"] = ClientKey.load(
        Path(key_file) if key_file else None, settings["SYMFHIR_KEY_ID"]
    )
    store = FileSessionStore(
        Path(settings["SYMFHIR_SESSION_DIR"]),
        settings["SYMFHIR_TOKEN_KEYS"],
        idle=settings["SYMFHIR_SESSION_IDLE_SECONDS"],
        max_age=settings["SYMFHIR_SESSION_MAX_SECONDS"],
        max_pending=settings["SYMFHIR_MAX_PENDING_SESSIONS"],
    )
    app.extensions["symfhir_sessions"] = store
    app.session_interface = EncryptedSessionInterface(store, signed_in=CONTEXT)

    errors.init_app(app)
    # First: its before_request refuses an oversized body before the CSRF check reads it.
    request_limits.init_app(app, ceiling=MAX_UPLOAD_BYTES)
    security.init_app(app)
    timing.init_app(app)
    app.teardown_appcontext(close_access)
    app.register_blueprint(launch_bp)
    app.register_blueprint(summary_bp)
    app.register_blueprint(intake_bp)
    app.register_blueprint(consents_bp)
    app.register_blueprint(photos_bp)
    app.register_blueprint(privacy_bp)
    app.register_blueprint(privacy_corrections_bp)
    app.register_blueprint(privacy_dashboard_bp)
    app.register_blueprint(sharing_bp)
    app.register_blueprint(ehr_style.bp)
    app.jinja_env.globals["workspace_links"] = lambda: _workspace_links(app)
    return app


# The workspace's pages, in nav order: (endpoint, label, element id).
WORKSPACE_PAGES = (
    ("summary.index", "Summary", "nav-summary-page"),
    ("intake.form", "Intake", "nav-intake"),
    ("consents.index", "Consents", "nav-consents"),
    ("photos.gallery", "Photos", "nav-photos"),
    ("privacy.index", "Privacy", "nav-privacy"),
    ("sharing.index", "Sharing", "nav-sharing"),
)


#: A user-level launch (no patient) opens only the privacy officer's dashboard.
USER_LEVEL_PAGES = (("privacy_dashboard.index", "Privacy requests", "nav-privacy-dashboard"),)


def _workspace_links(app: Flask) -> list[tuple[str, str, str]]:
    user_level = bool((session.get(CONTEXT) or {}).get("user_level"))
    pages = USER_LEVEL_PAGES if user_level else WORKSPACE_PAGES
    return [page for page in pages if page[0] in app.view_functions]

"""The SMART Health Link endpoints (hl7.org/fhir/uv/smart-health-cards-and-links):
``POST /shl/m/<id>`` the manifest, ``GET /shl/m/<id>?recipient=`` a single-file (U) link's
file, ``GET /shl/f/<ticket>`` a file behind a short-lived location URL. A file leaves as a compact
JWE (``application/jose``) streamed from the parts the store keeps, base64url a chunk at a
time, with its Content-Length (known from the parts' sizes).

Answers: 200 with the manifest; 400 for a malformed or oversized request; 401
``{"remainingAttempts": n}`` for a wrong or missing passcode; 404 ``{"error": "not_found"}``
alike for an unknown, truncated, revoked, expired, locked or used-up link (never which); 429
with Retry-After past a rate limit (per link, per client address); 503 when the disclosure
cannot be recorded. The views parse, call one workflow of ``symfhir.sharing.link_service``
(the consent re-check, the disclosure AuditEvent with the service's own FHIR client) and
render.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from smart_app.links.fhir_client import fhir_client
from smart_app.security import csrf_exempt
from symfhir.errors import DisclosureNotRecorded, LinkInactive, PasscodeRejected
from symfhir.sharing.link_records import StillAllowed
from symfhir.sharing.link_service import serve_manifest, serve_single
from symfhir.sharing.link_settings import LinkServiceSettings
from symfhir.sharing.links import read_file
from symfhir.sharing.shl import EncryptedFile

log = logging.getLogger(__name__)

bp = Blueprint("shl", __name__)

JOSE = "application/jose"


class BadRequest(Exception):
    """A manifest request that is not what the spec says; ``field`` names what is wrong."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(field)


def _settings() -> LinkServiceSettings:
    return current_app.config["SYMFHIR_LINKS_SETTINGS"]


def _now() -> datetime:
    return current_app.config["SYMFHIR_LINKS_CLOCK"]()


def _json(status: int, **body: Any) -> tuple[Response, int]:
    return jsonify(body), status


def _not_found() -> tuple[Response, int]:
    return _json(404, error="not_found")


def _limited(*keys: tuple[str, str]) -> tuple[Response, int] | None:
    """429 with Retry-After when any of (limiter, key) is past its window."""
    limits = current_app.extensions["symfhir_links_limits"]
    for name, key in keys:
        wait = limits[name].hit(key)
        if wait is not None:
            response, status = _json(429, error="too_many_requests")
            response.headers["Retry-After"] = str(wait)
            return response, status
    return None


def _client_key() -> str:
    return "client:" + (request.remote_addr or "unknown")


def _link_key(manifest_id: str) -> str:
    # The id is a secret: the limiter keeps only its hash.
    return "link:" + hashlib.sha256(manifest_id.encode("utf-8", "replace")).hexdigest()


def _text(value: Any, field: str, *, maximum: int, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > maximum:
        raise BadRequest(field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise BadRequest(field)
    return value


def parse_manifest_request(body: Any, settings: LinkServiceSettings) -> dict[str, Any]:
    """``{recipient, passcode?, embeddedLengthMax?}`` checked. Raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("body")
    recipient = _text(
        body.get("recipient"), "recipient", maximum=settings.recipient_max, required=True
    )
    passcode = body.get("passcode")
    if passcode is not None and (not isinstance(passcode, str) or len(passcode) > 1024):
        raise BadRequest("passcode")
    embed = body.get("embeddedLengthMax")
    if embed is not None and (isinstance(embed, bool) or not isinstance(embed, int) or embed < 0):
        raise BadRequest("embeddedLengthMax")
    return {"recipient": recipient, "passcode": passcode or None, "embedded_length_max": embed}


def _consent_check() -> StillAllowed | None:
    return current_app.config["SYMFHIR_LINKS_CONSENT_CHECK"]  # tests only; else on the server


def _jose(parts: EncryptedFile) -> tuple[Response, int]:
    """The compact JWE of ``parts``, streamed: a photo's base64url is never whole in
    memory, and the first bytes leave before the last are encoded."""
    response = Response(parts.compact_chunks(), mimetype=JOSE)
    response.content_length = parts.compact_length
    return response, 200


def _unavailable() -> tuple[Response, int]:
    response, status = _json(503, error="unavailable")
    response.headers["Retry-After"] = "30"
    return response, status


@bp.post("/shl/m/<manifest_id>")
@csrf_exempt
def manifest(manifest_id: str) -> tuple[Response, int]:
    """The manifest of a link (the spec's manifest request)."""
    refused = _limited(("client", _client_key()), ("link", _link_key(manifest_id)))
    if refused:
        return refused
    settings = _settings()
    try:
        asked = parse_manifest_request(request.get_json(force=True, silent=True), settings)
    except BadRequest as exc:
        return _json(400, error="bad_request", field=exc.field)
    try:
        found = serve_manifest(
            current_app.config["SYMFHIR_STORE"],
            fhir_client(),
            manifest_id,
            recipient=asked["recipient"],
            passcode=asked["passcode"],
            embedded_length_max=asked["embedded_length_max"],
            files_base=current_app.config["SYMFHIR_LINKS_BASE_URL"],
            now=_now(),
            settings=settings,
            consent_check=_consent_check(),
        )
    except PasscodeRejected as exc:
        return _json(401, remainingAttempts=exc.remaining)
    except LinkInactive:
        return _not_found()
    except DisclosureNotRecorded:
        return _unavailable()
    return jsonify(found), 200


@bp.get("/shl/m/<manifest_id>")
def direct_file(manifest_id: str) -> tuple[Response, int]:
    """A single-file (U) link's file, fetched with ``?recipient=`` (the spec's direct
    retrieval). Any other link answers 404, as an unknown one."""
    refused = _limited(("client", _client_key()), ("link", _link_key(manifest_id)))
    if refused:
        return refused
    try:
        recipient = _text(
            request.args.get("recipient"),
            "recipient",
            maximum=_settings().recipient_max,
            required=True,
        )
    except BadRequest as exc:
        return _json(400, error="bad_request", field=exc.field)
    try:
        parts = serve_single(
            current_app.config["SYMFHIR_STORE"],
            fhir_client(),
            manifest_id,
            recipient=recipient or "",
            now=_now(),
            settings=_settings(),
            consent_check=_consent_check(),
        )
    except (LinkInactive, PasscodeRejected):  # a passcode link is never a direct one
        return _not_found()
    except DisclosureNotRecorded:
        return _unavailable()
    return _jose(parts)


@bp.get("/shl/f/<ticket>")
def file(ticket: str) -> tuple[Response, int]:
    """A file behind a location URL, while its ticket lives."""
    refused = _limited(("files", _client_key()))
    if refused:
        return refused
    try:
        parts = read_file(current_app.config["SYMFHIR_STORE"], ticket, now=_now())
    except LinkInactive:
        return _not_found()
    return _jose(parts)

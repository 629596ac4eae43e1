"""The launcher (like smart-launcher-v2): pick practitioner, patient and app, build a launch URL.

A launch code is a short-lived JWT signed by the sandbox key carrying the client it was made
for, practitioner, patient, encounter, optional scope limit and a simulated error; /authorize
accepts it once, from that client only. Launches go only to a registered client's launch
URLs, and `/ehr` (a fake EHR chrome with the app in an iframe) frames only those, so neither
is an open redirect or a frame for any site. `POST /api/launch` builds launch URLs without
the UI.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request

from .config import ClientRegistration
from .state import sandbox
from .upstream import UpstreamError, display_name, practitioners, search

LAUNCH_CODE_LIFETIME_S = 600
DEFAULT_LAUNCH_SCOPE = (
    "openid fhirUser launch offline_access patient/*.rs patient/*.cu user/Practitioner.rs"
)
SIMULATED_ERRORS = (
    "none",
    "invalid_client",
    "invalid_redirect_uri",
    "invalid_scope",
    "invalid_secret",
    "token_expired",
    "token_invalid",
)

bp = Blueprint("sandbox_launcher", __name__)


class LaunchError(ValueError):
    """The launch request is incomplete or names an unknown simulated error."""


def _without_query(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), parts.path or "/"


def launchable_clients() -> list[ClientRegistration]:
    """The registered clients that have a launch URL, in registration order."""
    return [c for c in sandbox().clients.values() if c.launch_urls]


def resolve_app(client_id: str | None, launch_url: str | None) -> tuple[str, str]:
    """(client_id, launch URL) of a launch: the named client (default: the one registered
    with ``launch_url``, else the first that can be launched) and one of its registered
    launch URLs (default: its first). Raises LaunchError for anything not registered."""
    clients = launchable_clients()
    if client_id:
        clients = [c for c in clients if c.client_id == client_id]
        if not clients:
            raise LaunchError(f"no registered app {client_id!r} with a launch URL")
    if launch_url:
        clients = [c for c in clients if launch_url in c.launch_urls]
        if not clients:
            raise LaunchError("launch_url is not a launch URL of a registered app")
    if not clients:
        raise LaunchError("no registered app has a launch URL")
    return clients[0].client_id, launch_url or clients[0].launch_urls[0]


def registered_launch_target(url: str) -> bool:
    """Whether ``url`` is a registered launch URL (its query, e.g. iss and launch, aside)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return False
    target = _without_query(url)
    return any(
        _without_query(registered) == target
        for client in launchable_clients()
        for registered in client.launch_urls
    )


def create_launch_code(
    client_id: str,
    practitioner: str,
    patient: str | None,
    encounter: str | None = None,
    scope: str | None = None,
    error: str | None = None,
    mfa: bool = False,
) -> str:
    """Sign a launch code for ``client_id``; ``mfa``: the practitioner signed in with a second
    factor (the id_token says so in ``amr``). Raises LaunchError for an unknown simulated
    error."""
    error = None if error in (None, "", "none") else error
    if error is not None and error not in SIMULATED_ERRORS:
        raise LaunchError(f"unknown simulated error {error!r}; one of {SIMULATED_ERRORS}")
    now = int(time.time())
    claims: dict[str, Any] = {
        "token_use": "launch",
        "client_id": client_id,
        "practitioner": practitioner,
        "patient": patient,
        "encounter": encounter,
        "scope": scope,
        "error": error,
        "mfa": True if mfa else None,
        "iat": now,
        "exp": now + LAUNCH_CODE_LIFETIME_S,
        "jti": uuid.uuid4().hex,
    }
    return sandbox().key.sign({k: v for k, v in claims.items() if v is not None})


def default_practitioner() -> str:
    """The first Practitioner upstream (created if there is none). Raises UpstreamError."""
    return str(practitioners(sandbox().upstream)[0]["id"])


def build_launch_url(data: dict[str, Any]) -> str:
    """`{launch_url}?iss=…&launch=…` for a launch request. Raises LaunchError, UpstreamError."""
    client_id, launch_url = resolve_app(
        str(data["client_id"]) if data.get("client_id") else None,
        str(data["launch_url"]) if data.get("launch_url") else None,
    )
    practitioner = data.get("practitioner") or default_practitioner()
    code = create_launch_code(
        client_id=client_id,
        practitioner=str(practitioner),
        patient=str(data["patient"]) if data.get("patient") else None,
        encounter=str(data["encounter"]) if data.get("encounter") else None,
        scope=str(data["scope"]) if data.get("scope") else None,
        error=data.get("error"),
        mfa=str(data.get("mfa", "")).lower() in ("1", "true", "on", "yes"),
    )
    separator = "&" if urlsplit(launch_url).query else "?"
    return f"{launch_url}{separator}{urlencode({'iss': sandbox().fhir_base, 'launch': code})}"


#: A registered launch URL ending so is a privacy officer's dashboard: launched with no patient.
DASHBOARD_LAUNCH_PATH = "/privacy-dashboard/launch"


@bp.get("/")
def launcher() -> str:
    state = sandbox()
    problem = None
    doctors: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    try:
        doctors = practitioners(state.upstream)
        patients = search(state.upstream, "Patient")
    except UpstreamError as error:
        problem = str(error)
    return render_template(
        "sandbox/launcher.html",
        practitioners=[(d["id"], display_name(d)) for d in doctors],
        patients=[(p["id"], display_name(p)) for p in patients],
        apps=[(c.client_id, c.launch_urls[0]) for c in launchable_clients()],
        dashboards=[
            (c.client_id, url)
            for c in launchable_clients()
            for url in c.launch_urls
            if url.rstrip("/").endswith(DASHBOARD_LAUNCH_PATH)
        ],
        scope=DEFAULT_LAUNCH_SCOPE,
        errors=SIMULATED_ERRORS,
        problem=problem,
        fhir_base=state.fhir_base,
    )


@bp.get("/launcher/open")
def open_launch() -> Response:
    """The launcher form's target: EHR frame (`/ehr`) or the app itself."""
    try:
        url = build_launch_url(request.args.to_dict())
    except (LaunchError, UpstreamError) as error:
        abort(400, str(error))
    if request.args.get("launch_type", "iframe") == "iframe":
        return redirect(f"/ehr?{urlencode({'app': url})}")
    return redirect(url)


@bp.get("/ehr")
def ehr() -> str:
    app_url = request.args.get("app", "")
    if not registered_launch_target(app_url):
        abort(400, "app must be a registered app's launch URL")
    return render_template("sandbox/ehr.html", app_url=app_url)


@bp.post("/api/launch")
def api_launch() -> tuple[Response, int] | Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"error": "send a JSON object"}), 400
    try:
        return jsonify({"url": build_launch_url(data)})
    except LaunchError as error:
        return jsonify({"error": str(error)}), 400
    except UpstreamError as error:
        return jsonify({"error": str(error)}), 502

"""Routes of the SMART launch: /launch (EHR and standalone), /callback, the app's JWKS, and
signing out. Thin: the protocol work is in ``smart_app.launch.smart``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from smart_app import ehr_style
from smart_app.errors import AppError
from smart_app.fhir_access import CONTEXT, with_expiry
from smart_app.launch import smart
from smart_app.launch.keys import ClientKey

log = logging.getLogger(__name__)
bp = Blueprint("launch", __name__)

PENDING = "launches"
MAX_PENDING = 5  # launches started in other tabs and not finished yet
MAX_PARAM = 2048
TOKEN_KEYS_KEPT = (
    "access_token", "token_type", "expires_in", "expires_at", "refresh_token", "scope",
    "patient", "encounter", "need_patient_banner", "smart_style_url", "intent", "tenant",
)  # fmt: skip


def _client_key() -> ClientKey:
    return current_app.extensions["symfhir_key"]


@bp.get("/.well-known/jwks.json")
def jwks() -> Any:
    response = current_app.response_class(
        current_app.json.dumps(_client_key().jwks()), mimetype="application/json"
    )
    return response


@bp.get("/launch")
def launch() -> Any:
    config = current_app.config
    iss = request.args.get("iss", "").strip().rstrip("/")
    launch_code = request.args.get("launch")
    if not iss:
        return render_template("launch_start.html", servers=config["SYMFHIR_TRUSTED_ISS"])
    if iss not in config["SYMFHIR_TRUSTED_ISS"] or len(iss) > MAX_PARAM:
        log.warning("launch refused: untrusted iss")
        raise AppError(
            400,
            "untrusted_iss",
            "This EHR is not trusted",
            "symfhir was opened by a server it is not configured to trust, so it did not "
            "contact it. Ask your administrator to add the EHR to SYMFHIR_TRUSTED_ISS.",
        )
    if launch_code is not None and (not launch_code or len(launch_code) > MAX_PARAM):
        raise AppError(400, "bad_launch", "The launch was not valid", "The launch code is empty.")
    discovered = smart.discover(iss, config["SYMFHIR_HTTP_TIMEOUT"])
    pending = smart.start_launch(iss, discovered)
    launches = dict(session.get(PENDING) or {})
    while len(launches) >= MAX_PENDING:
        launches.pop(next(iter(launches)))
    launches[pending.state] = pending.to_dict()
    session[PENDING] = launches
    url = smart.authorize_url(
        pending,
        config["SYMFHIR_CLIENT_ID"],
        config["SYMFHIR_REDIRECT_URI"],
        config["SYMFHIR_SCOPES"],
        launch_code,
    )
    return redirect(url, code=302)


@bp.get("/callback")
def callback() -> Response:
    config = current_app.config
    state = request.args.get("state", "")
    launches = dict(session.get(PENDING) or {})
    raw = launches.pop(state, None) if state else None
    session[PENDING] = launches
    error = request.args.get("error")
    if error:
        raise _authorization_error(error)
    if raw is None:
        raise AppError(
            400,
            "state_mismatch",
            "The sign-in could not be matched to this browser",
            "The answer from the EHR does not belong to a launch started here (it may be old, "
            "or from another browser). Open symfhir again from the EHR.",
        )
    code = request.args.get("code", "")
    if not code or len(code) > MAX_PARAM:
        raise AppError(400, "missing_code", "The sign-in was incomplete", "No code was returned.")
    pending = smart.PendingLaunch.from_dict(raw)
    client_id = config["SYMFHIR_CLIENT_ID"]
    timeout = config["SYMFHIR_HTTP_TIMEOUT"]
    token = smart.exchange_code(
        pending, code, client_id, config["SYMFHIR_REDIRECT_URI"], _client_key(), timeout
    )
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise AppError(
            401, "invalid_id_token", "The EHR's identity token was not valid", "None was sent."
        )
    claims = smart.validate_id_token(id_token, pending, client_id, timeout)
    fhir_user = claims.get("fhirUser") or claims.get("profile")
    patient = token.get("patient")
    if not isinstance(patient, str) or not patient:
        raise AppError(
            400,
            "no_patient",
            "No client was selected",
            "The EHR did not say which client's record to open. Launch from a client's chart.",
        )
    scopes = smart.granted_scopes(token)
    kept = {k: token[k] for k in TOKEN_KEYS_KEPT if k in token}
    # A fresh session id at sign-in (against session fixation); pending launches stay.
    session.regenerate()  # type: ignore[attr-defined]
    session.pop("csrf", None)
    session[CONTEXT] = {
        "iss": pending.iss,
        "token_url": pending.config.token_endpoint,
        "patient": patient,
        "fhir_user": fhir_user if isinstance(fhir_user, str) else None,
        "scopes": scopes,
        "writable": smart.can_write(scopes),
        "need_patient_banner": bool(token.get("need_patient_banner", True)),
        "smart_style_url": token.get("smart_style_url"),
        "style": ehr_style.fetch_style(token.get("smart_style_url"), pending.iss, timeout),
        "token": with_expiry(kept),
    }
    log.info("launch complete (writable=%s)", smart.can_write(scopes))
    return redirect(url_for("summary.index"), code=303)


@bp.post("/logout")
def logout() -> str:
    session.clear()
    return render_template("signed_out.html")


def _authorization_error(error: str) -> AppError:
    if error == "access_denied":
        return AppError(
            403,
            "access_denied",
            "Access was not granted",
            "The sign-in was cancelled or access to the client's record was refused in the EHR.",
        )
    if error == "invalid_scope":
        return AppError(
            400,
            "invalid_scope",
            "The EHR refused the access symfhir asks for",
            "symfhir asked for permissions this EHR does not allow. Ask your administrator "
            "to check the app's registration.",
        )
    known = error if error.replace("_", "").isalpha() and len(error) < 40 else "unknown"
    return AppError(
        400,
        "authorization_error",
        "The EHR could not sign you in",
        f"The EHR answered with an error ({known}). Open symfhir again from the EHR.",
    )

"""Routes of the SMART launch: /launch (EHR and standalone), /callback, the app's JWKS, and
signing out. Thin: the protocol is ``symfhir.smart``; ``smart_error`` turns its errors into
pages, in one place."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from smart_app import ehr_style
from smart_app.errors import AppError, render_error
from smart_app.fhir_access import CONTEXT, with_expiry
from symfhir.errors import (
    AuthorizationError,
    DiscoveryError,
    IdTokenError,
    MfaRequiredError,
    SmartError,
)
from symfhir.smart import launch as smart_launch
from symfhir.smart.assertion import ClientKey
from symfhir.smart.discovery import discover
from symfhir.smart.id_token import MfaPolicy
from symfhir.smart.launch import PendingLaunch, SmartClient
from symfhir.smart.scopes import can_write

log = logging.getLogger(__name__)
bp = Blueprint("launch", __name__)

PENDING = "launches"
MAX_PENDING = 5  # launches started in other tabs and not finished yet
MAX_PARAM = smart_launch.MAX_PARAM
TOKEN_KEYS_KEPT = (
    "access_token", "token_type", "expires_in", "expires_at", "refresh_token", "scope",
    "patient", "encounter", "need_patient_banner", "smart_style_url", "intent", "tenant",
)  # fmt: skip


def _client_key() -> ClientKey:
    return current_app.extensions["symfhir_key"]


def _smart_client(scope: str | None = None) -> SmartClient:
    config = current_app.config
    return SmartClient(
        client_id=config["SYMFHIR_CLIENT_ID"],
        redirect_uri=config["SYMFHIR_REDIRECT_URI"],
        client_key=_client_key(),
        scope=scope or config["SYMFHIR_SCOPES"],
        timeout=config["SYMFHIR_HTTP_TIMEOUT"],
        mfa=MfaPolicy(config["SYMFHIR_REQUIRE_MFA"], config["SYMFHIR_REQUIRED_ACR"]),
    )


@bp.get("/.well-known/jwks.json")
def jwks() -> Any:
    response = current_app.response_class(
        current_app.json.dumps(_client_key().jwks()), mimetype="application/json"
    )
    return response


@bp.get("/launch")
def launch() -> Any:
    return begin_launch(current_app.config["SYMFHIR_SCOPES"])


def begin_launch(scopes: str, *, user_level: str | None = None) -> Any:
    """Start a launch asking for ``scopes``: the practitioner app's (a patient in context), or
    with ``user_level`` naming the endpoint to open after a launch without a patient (the
    privacy officer's dashboard)."""
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
    timeout = config["SYMFHIR_HTTP_TIMEOUT"]
    pending = smart_launch.start_launch(iss, discover(iss, timeout))
    scope = scopes
    if user_level is None:
        scope = smart_launch.launch_scope(scopes, smart_launch.server_can_create(iss, timeout))
    launches = dict(session.get(PENDING) or {})
    while len(launches) >= MAX_PENDING:
        launches.pop(next(iter(launches)))
    launches[pending.state] = pending.to_dict() | ({"user_level": user_level} if user_level else {})
    session[PENDING] = launches
    url = smart_launch.authorize_url(
        pending, _smart_client(scope), launch_code, patient=user_level is None
    )
    return redirect(url, 302)


@bp.get("/callback")
def callback() -> Response:
    state = request.args.get("state", "")
    launches = dict(session.get(PENDING) or {})
    raw = launches.pop(state, None) if state else None
    session[PENDING] = launches
    pending, code = smart_launch.check_callback(
        request.args, PendingLaunch.from_dict(raw) if raw is not None else None
    )
    user_level = raw.get("user_level") if isinstance(raw, dict) else None
    done = smart_launch.complete_launch(
        pending, code, _smart_client(), need_patient=user_level is None
    )
    kept = {k: done.token[k] for k in TOKEN_KEYS_KEPT if k in done.token}
    # A fresh session id at sign-in (against session fixation); pending launches stay.
    session.regenerate()  # type: ignore[attr-defined]
    session.pop("csrf", None)
    writable = can_write(done.scopes)
    style_url = done.token.get("smart_style_url")
    session[CONTEXT] = {
        "iss": done.iss,
        "token_url": done.token_url,
        "patient": done.patient,
        "fhir_user": done.fhir_user,
        "scopes": done.scopes,
        "writable": writable,
        "need_patient_banner": bool(done.token.get("need_patient_banner", True)),
        "smart_style_url": style_url,
        "style": ehr_style.fetch_style(
            style_url, done.iss, current_app.config["SYMFHIR_HTTP_TIMEOUT"]
        ),
        "token": with_expiry(kept),
        # A user-level launch (no patient): only the privacy officer's dashboard opens.
        "user_level": user_level is not None,
    }
    log.info("launch complete (writable=%s)", writable)
    return redirect(url_for(user_level or "summary.index"), code=303)


@bp.post("/logout")
def logout() -> str:
    session.clear()
    return render_template("signed_out.html")


@bp.errorhandler(SmartError)
def smart_error(error: SmartError) -> tuple[str, int]:
    """The one place a SMART protocol error becomes a page (never quoting a token)."""
    log.info("launch failed: %s", error.error)
    if request.endpoint == "launch.callback":
        # A failed sign-in in this browser ends any earlier one: the page must not go on
        # showing another practitioner's (or a weaker sign-in's) session.
        session.pop(CONTEXT, None)
    if isinstance(error, MfaRequiredError):
        log.warning("launch refused: the EHR sign-in was not multi-factor")
        return render_template("mfa_required.html"), 403
    return render_error(_page(error))


def _page(error: SmartError) -> AppError:
    if isinstance(error, DiscoveryError):
        return AppError(
            502, "discovery_failed", "The EHR could not be contacted", error.description
        )
    if isinstance(error, IdTokenError):
        return AppError(
            401, "invalid_id_token", "The EHR's identity token was not valid", error.description
        )
    if isinstance(error, AuthorizationError):
        return _authorization_page(error)
    if error.error == "no_patient_context":
        return AppError(
            400,
            "no_patient",
            "No client was selected",
            "The EHR did not say which client's record to open. Launch from a client's chart.",
        )
    if error.error == "temporarily_unavailable":
        detail = "the EHR's token endpoint could not be reached"
    else:
        detail = f"the EHR refused to issue a token ({error.error})"
    return AppError(502, "token_error", "Sign-in with the EHR failed", detail)


def _authorization_page(error: AuthorizationError) -> AppError:
    if error.error == "mismatching_state":
        return AppError(
            400,
            "state_mismatch",
            "The sign-in could not be matched to this browser",
            "The answer from the EHR does not belong to a launch started here (it may be old, "
            "or from another browser). Open symfhir again from the EHR.",
        )
    if error.error == "invalid_request":
        return AppError(
            400, "missing_code", "The sign-in was incomplete", error.description.capitalize() + "."
        )
    if error.error == "access_denied":
        return AppError(
            403,
            "access_denied",
            "Access was not granted",
            "The sign-in was cancelled or access to the client's record was refused in the EHR.",
        )
    if error.error == "invalid_scope":
        return AppError(
            400,
            "invalid_scope",
            "The EHR refused the access symfhir asks for",
            "symfhir asked for permissions this EHR does not allow. Ask your administrator "
            "to check the app's registration.",
        )
    return AppError(
        400,
        "authorization_error",
        "The EHR could not sign you in",
        f"The EHR answered with an error ({error.error}). Open symfhir again from the EHR.",
    )

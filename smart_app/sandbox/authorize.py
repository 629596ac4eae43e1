"""Discovery, `/authorize` and `/token`: SMART App Launch on top of authlib's server.

Errors about the client or its redirect URI are shown as a page (never redirected);
every later error is redirected to the app with `error`, `error_description` and `state`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError
from flask import Blueprint, Response, jsonify, render_template, request

from .auth_server import ASSERTION_ALGORITHMS, LaunchContext
from .config import AUTH_METHODS
from .keys import TokenError
from .launcher import default_practitioner
from .proxy import outcome, rewrite_text
from .scopes import (
    NON_RESOURCE_SCOPES,
    disallowed_scopes,
    narrow_scopes,
    parse_resource_scope,
    split_scope,
)
from .state import auth_server, sandbox
from .upstream import FHIR_JSON, UpstreamError, display_name, practitioners, search

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-confidential-asymmetric",
    "client-confidential-symmetric",
    "client-public",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-v2",
    "permission-v1",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
]

bp = Blueprint("sandbox_auth", __name__)

log = logging.getLogger(__name__)


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    state = sandbox()
    return jsonify(
        {
            "issuer": state.issuer,
            "jwks_uri": f"{state.base_url}/.well-known/jwks.json",
            "authorization_endpoint": f"{state.base_url}/authorize",
            "token_endpoint": state.token_url,
            # client_credentials: SMART Backend Services (system/ scopes, private_key_jwt only).
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": [
                *sorted(NON_RESOURCE_SCOPES),
                "patient/*.cruds",
                "user/*.cruds",
                "patient/*.read",
                "patient/*.write",
                "user/*.read",
                "user/*.write",
                "system/*.cruds",
                "system/*.read",
                "system/*.write",
            ],
            "capabilities": CAPABILITIES,
        }
    )


@bp.get("/.well-known/openid-configuration")
@bp.get("/fhir/.well-known/openid-configuration")
def openid_configuration() -> Response:
    """Enough OpenID Connect discovery for clients that look here for the id_token keys."""
    state = sandbox()
    return jsonify(
        {
            "issuer": state.issuer,
            "jwks_uri": f"{state.base_url}/.well-known/jwks.json",
            "authorization_endpoint": f"{state.base_url}/authorize",
            "token_endpoint": state.token_url,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": ["openid", "fhirUser", "profile"],
        }
    )


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    return jsonify(sandbox().key.jwks())


#: The sandbox EHR's look, sent to apps as smart_style_url.
SMART_STYLE = {
    "color_background": "#f6f4f1",
    "color_error": "#b3261e",
    "color_highlight": "#6b4c9a",
    "color_modal_backdrop": "",
    "color_success": "#2e7d32",
    "color_text": "#1f1f1f",
    "dim_border_radius": "6px",
    "dim_font_size": "14px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif",
    "font_family_heading": "system-ui, sans-serif",
}


@bp.get("/smart-style.json")
def smart_style() -> Response:
    return jsonify(SMART_STYLE)


@bp.get("/fhir/metadata")
def metadata() -> Response:
    """The upstream CapabilityStatement with the SMART `oauth-uris` extension added."""
    state = sandbox()
    try:
        response = requests.get(
            f"{state.upstream}/metadata", headers={"Accept": FHIR_JSON}, timeout=30
        )
        response.raise_for_status()
        capability = response.json()
    except (requests.RequestException, ValueError) as error:
        # The error's text names the upstream URL; the log gets its kind only.
        log.warning("sandbox upstream: metadata failed: %s", type(error).__name__)
        return outcome(502, "exception", "the FHIR server behind the sandbox is unavailable")
    rests = capability.setdefault("rest", [{"mode": "server"}])
    security = rests[0].setdefault("security", {})
    security.setdefault("service", []).append(
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                }
            ]
        }
    )
    security.setdefault("extension", []).append(
        {
            "url": OAUTH_URIS,
            "extension": [
                {"url": "authorize", "valueUri": f"{state.base_url}/authorize"},
                {"url": "token", "valueUri": state.token_url},
            ],
        }
    )
    body = rewrite_text(json.dumps(capability), state.upstream, state.fhir_base)
    return Response(body, mimetype=FHIR_JSON)


def _error_page(error: str, description: str) -> tuple[str, int]:
    return render_template("sandbox/error.html", error=error, description=description), 400


def _redirect_error(error: OAuth2Error) -> Response:
    return auth_server().handle_error_response(None, error)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """SMART authorize, by GET or (capability authorize-post) a form POST."""
    state = sandbox()
    args = request.values
    launch: dict[str, Any] | None = None
    launch_problem = None
    if args.get("launch"):
        try:
            launch = state.key.verify(args["launch"], kind="launch")
        except TokenError as problem:
            launch_problem = str(problem)
    simulated = (launch or {}).get("error")

    client_id = args.get("client_id", "")
    registration = state.clients.get(client_id)
    if simulated == "invalid_client":
        return _error_page("invalid_client", "Simulated error: invalid client_id.")
    if registration is None:
        return _error_page("invalid_client", f"Unknown client_id {client_id!r}.")
    redirect_uri = args.get("redirect_uri", "")
    if simulated == "invalid_redirect_uri":
        return _error_page("invalid_request", "Simulated error: invalid redirect_uri.")
    if redirect_uri not in registration.redirect_uris:
        return _error_page(
            "invalid_request", f"redirect_uri {redirect_uri!r} is not registered for {client_id}."
        )

    def fail(kind: type[OAuth2Error], description: str) -> Response:
        return _redirect_error(
            kind(description=description, redirect_uri=redirect_uri, state=args.get("state"))
        )

    requested = split_scope(args.get("scope"))
    if args.get("response_type") != "code":
        return _redirect_error(
            OAuth2Error(
                error="unsupported_response_type",
                description="response_type must be 'code'",
                redirect_uri=redirect_uri,
                state=args.get("state"),
            )
        )
    if not args.get("state"):
        return fail(InvalidRequestError, "'state' is required")
    if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
        return fail(InvalidRequestError, "PKCE with code_challenge_method=S256 is required")
    if args.get("aud", "").rstrip("/") != state.fhir_base:
        return fail(InvalidRequestError, f"aud must be the FHIR base URL {state.fhir_base}")
    if launch is not None and not launch_problem:
        launch_problem = _launch_misuse(launch, client_id)
    if launch_problem:
        return fail(InvalidRequestError, f"bad launch code: {launch_problem}")
    if simulated == "invalid_scope":
        return fail(InvalidScopeError, "Simulated error: invalid scope")
    if not requested:
        return fail(InvalidScopeError, "'scope' is required")
    refused = disallowed_scopes(requested, split_scope(registration.scope))
    narrowed = False
    if launch and launch.get("scope") and not refused:
        narrowed = True
        # The launch (the EHR user's rights) may allow less than the app asks for: grant
        # the overlap, as EHRs do, rather than refusing the launch.
        requested = narrow_scopes(requested, split_scope(launch["scope"]))
        if not any(parse_resource_scope(item) for item in requested):
            refused = ["(no resource access left under the launch's scopes)"]
    if refused:
        return fail(InvalidScopeError, f"scopes not allowed: {' '.join(sorted(set(refused)))}")

    try:
        context = _launch_context(launch, requested)
    except UpstreamError as problem:
        return fail(InvalidRequestError, f"the EHR cannot read its FHIR server: {problem}")
    if context is None:
        return _patient_picker()
    context.nonce = args.get("nonce")
    if narrowed:
        context.granted_scope = " ".join(requested)
    try:
        grant = auth_server().get_consent_grant(end_user=context)
    except OAuth2Error as error:
        return _redirect_error(error)
    return auth_server().create_authorization_response(grant_user=context, grant=grant)


def _launch_misuse(launch: dict[str, Any], client_id: str) -> str | None:
    """Why a validly signed launch code may not be used here: made for another client, or
    presented before (a launch is single-use, as an EHR's is). None when it may."""
    if launch.get("client_id") != client_id:
        return "it was issued for another app"
    jti = launch.get("jti")
    if not isinstance(jti, str) or not sandbox().store.use_launch_code(jti, float(launch["exp"])):
        return "it has already been used"
    return None


def _launch_context(launch: dict[str, Any] | None, requested: list[str]) -> LaunchContext | None:
    """The context to grant, or None when a standalone launch still needs a patient."""
    wants_patient = "launch/patient" in requested or "launch" in requested
    wants_encounter = "launch/encounter" in requested or "launch" in requested
    if launch is not None:
        return LaunchContext(
            practitioner=str(launch.get("practitioner") or default_practitioner()),
            patient=launch.get("patient") if wants_patient else None,
            encounter=launch.get("encounter") if wants_encounter else None,
            sim_error=launch.get("error"),
            mfa=launch.get("mfa") is True,
        )
    # A standalone launch starts at the EHR's sign-in: who the user is (a practitioner), and
    # the patient when the app asks for one, as the SMART reference launcher's login does.
    practitioner = request.values.get("sandbox_practitioner")
    patient = request.values.get("sandbox_patient")
    if not practitioner or ("launch/patient" in requested and not patient):
        return None
    return LaunchContext(practitioner=practitioner, patient=patient)


def _patient_picker() -> tuple[str, int]:
    """The standalone sign-in: pick a practitioner and, when asked for, a patient. Its form
    comes back to /authorize with the app's parameters unchanged."""
    state = sandbox()
    try:
        doctors = practitioners(state.upstream)
        patients = search(
            state.upstream, "Patient", name=request.values.get("sandbox_patient_name", "")
        )
    except UpstreamError as problem:
        return _error_page("server_error", str(problem))
    requested = split_scope(request.values.get("scope"))
    hidden = {
        k: v
        for k, v in request.values.to_dict().items()
        if k not in ("sandbox_practitioner", "sandbox_patient", "sandbox_patient_name")
    }
    return render_template(
        "sandbox/picker.html",
        hidden=sorted(hidden.items()),
        practitioners=[(str(d["id"]), display_name(d)) for d in doctors],
        patients=[(str(p["id"]), display_name(p)) for p in patients],
        needs_patient="launch/patient" in requested,
        chosen_practitioner=request.values.get("sandbox_practitioner", ""),
        chosen_patient=request.values.get("sandbox_patient", ""),
        patient_name=request.values.get("sandbox_patient_name", ""),
    ), 200


@bp.post("/token")
def token() -> Response:
    return auth_server().create_token_response()

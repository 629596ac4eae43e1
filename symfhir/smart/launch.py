"""SMART App Launch (EHR and standalone): state and nonce, the authorize URL with PKCE S256,
the checks of the authorization response, and the code exchange ending in a ``Launch``.

https://hl7.org/fhir/smart-app-launch/app-launch.html

The caller keeps the ``PendingLaunch`` between the redirect and the callback (server-side:
it holds the PKCE verifier) and passes it back by its ``state``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from symfhir.errors import AuthorizationError, FhirCapabilityError, TokenError
from symfhir.fhir.capabilities import Capabilities
from symfhir.smart import pkce
from symfhir.smart.assertion import ClientKey
from symfhir.smart.discovery import SmartConfiguration
from symfhir.smart.id_token import MfaPolicy, check_mfa, validate_id_token
from symfhir.smart.scopes import granted_scopes, with_fallback
from symfhir.smart.token import request_token, require_bearer, token_session

MAX_PARAM = 2048


@dataclass(frozen=True)
class SmartClient:
    """The app as registered with the EHR: its id, redirect URI, signing key and the scopes it
    asks for, and how it judges the sign-in (``mfa``)."""

    client_id: str
    redirect_uri: str
    client_key: ClientKey
    scope: str
    timeout: float = 10.0
    mfa: MfaPolicy = field(default_factory=MfaPolicy)


@dataclass(frozen=True)
class PendingLaunch:
    """What the callback needs to finish one launch (kept server-side, keyed by state)."""

    iss: str
    state: str
    nonce: str
    code_verifier: str
    config: SmartConfiguration

    def to_dict(self) -> dict[str, Any]:
        return {
            "iss": self.iss,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingLaunch:
        return cls(
            iss=data["iss"],
            state=data["state"],
            nonce=data["nonce"],
            code_verifier=data["code_verifier"],
            config=SmartConfiguration.from_dict(data["config"]),
        )


@dataclass(frozen=True)
class Launch:
    """A finished launch: the token response, the id_token's claims, the patient in context
    (None for a user-level launch, e.g. the privacy officer's dashboard), the practitioner
    (``fhirUser``) and the scopes actually granted."""

    iss: str
    token_url: str
    token: dict[str, Any]
    claims: dict[str, Any]
    patient: str | None
    fhir_user: str | None
    scopes: list[str]


def start_launch(iss: str, config: SmartConfiguration) -> PendingLaunch:
    """Fresh, unpredictable state, nonce and PKCE verifier for one launch."""
    return PendingLaunch(
        iss=iss,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=pkce.create_verifier(),
        config=config,
    )


def server_can_create(iss: str, timeout: float) -> Callable[[str], bool] | None:
    """Whether the FHIR server ``iss`` can create a type, from its CapabilityStatement read
    without a token (before the launch has one); None when it cannot be read that way (some
    EHRs, the sandbox among them, answer /metadata only with a token)."""
    try:
        response = requests.get(
            f"{iss}/metadata",
            timeout=timeout,
            allow_redirects=False,
            headers={"Accept": "application/fhir+json"},
        )
        if response.status_code != 200:
            return None
        capabilities = Capabilities.from_statement(response.json())
    except (requests.RequestException, ValueError, FhirCapabilityError):
        return None
    return lambda resource_type: capabilities.can(resource_type, "create")


def launch_scope(scope: str, can_create: Callable[[str], bool] | None) -> str:
    """The scopes to ask ``iss`` for: ``scope``, plus DocumentReference for the Consent or
    Media the server cannot create (``can_create`` from its CapabilityStatement; None when
    that could not be read, and then nothing is added)."""
    return scope if can_create is None else with_fallback(scope, can_create)


def authorize_url(
    pending: PendingLaunch, client: SmartClient, launch: str | None, *, patient: bool = True
) -> str:
    """The authorize redirect: EHR launch with ``launch``, standalone with launch/patient
    (without it when ``patient`` is False: a user-level launch picks no client)."""
    scopes = client.scope.split()
    if launch is None:
        scopes = [s for s in scopes if s != "launch"]
        if patient and "launch/patient" not in scopes:
            scopes.append("launch/patient")
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": " ".join(scopes),
        "state": pending.state,
        "aud": pending.iss,
        "code_challenge": pkce.s256_challenge(pending.code_verifier),
        "code_challenge_method": pkce.METHOD,
        "nonce": pending.nonce,
    }
    if launch is not None:
        params["launch"] = launch
    endpoint = pending.config.authorization_endpoint
    separator = "&" if urlsplit(endpoint).query else "?"
    return endpoint + separator + urlencode(params)


def check_callback(
    params: Mapping[str, str], pending: PendingLaunch | None
) -> tuple[PendingLaunch, str]:
    """The launch and authorization code of the callback ``params``; ``pending`` is the
    launch its ``state`` named (None when none did).

    Raises AuthorizationError: the EHR's ``error`` (access_denied, invalid_scope...),
    ``mismatching_state`` when no launch started here matches, ``invalid_request`` when the
    code is missing.
    """
    error = params.get("error")
    if error:
        safe = error if error.replace("_", "").isalpha() and len(error) < 40 else "unknown"
        raise AuthorizationError(f"the EHR answered with an error ({safe})", safe)
    if pending is None:
        raise AuthorizationError(
            "the answer does not belong to a launch started in this browser", "mismatching_state"
        )
    code = params.get("code", "")
    if not code or len(code) > MAX_PARAM:
        raise AuthorizationError("no code was returned")
    return pending, code


def exchange_code(pending: PendingLaunch, code: str, client: SmartClient) -> dict[str, Any]:
    """The token response for ``code`` (private_key_jwt client authentication, the PKCE
    verifier). Raises TokenError (``temporarily_unavailable`` when unreachable)."""
    token_url = pending.config.token_endpoint
    session = token_session(
        client.client_id, token_url, client_key=client.client_key, timeout=client.timeout
    )
    try:
        with session:
            answer = request_token(
                lambda: session.fetch_token(
                    token_url,
                    grant_type="authorization_code",
                    code=code,
                    redirect_uri=client.redirect_uri,
                    code_verifier=pending.code_verifier,
                    allow_redirects=False,
                    headers={"Accept": "application/json"},
                )
            )
    except requests.RequestException:
        raise TokenError(
            "the EHR's token endpoint could not be reached", "temporarily_unavailable"
        ) from None
    require_bearer(answer)
    return answer


def complete_launch(
    pending: PendingLaunch, code: str, client: SmartClient, *, need_patient: bool = True
) -> Launch:
    """Exchange ``code``, check the id_token (and multi-factor sign-in when required) and the
    patient context (``need_patient`` False: a user-level launch, any patient is ignored).

    Raises TokenError (refused, or ``no_patient_context``), IdTokenError, MfaRequiredError.
    """
    token = exchange_code(pending, code, client)
    claims = validate_id_token(
        token.get("id_token"), pending.config, client.client_id, pending.nonce, client.timeout
    )
    check_mfa(claims, client.mfa)
    patient = token.get("patient") if need_patient else None
    if need_patient and (not isinstance(patient, str) or not patient):
        raise TokenError("the EHR did not say which client's record to open", "no_patient_context")
    fhir_user = claims.get("fhirUser") or claims.get("profile")
    return Launch(
        iss=pending.iss,
        token_url=pending.config.token_endpoint,
        token=token,
        claims=claims,
        patient=patient,
        fhir_user=fhir_user if isinstance(fhir_user, str) else None,
        scopes=granted_scopes(token),
    )

"""The SMART App Launch 2 protocol steps the app takes, without Flask: discovery, the
authorize URL (PKCE S256), the code exchange with private_key_jwt, id_token validation and
reading the granted scopes. https://hl7.org/fhir/smart-app-launch/app-launch.html

Every failure is an AppError naming a stable ``code`` (the error page shows it); messages
never quote tokens.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from smart_app.errors import AppError
from smart_app.launch.keys import CLIENT_ASSERTION_TYPE, ClientKey

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
RESOURCE_SCOPE = re.compile(
    r"^(patient|user)/([A-Za-z]+|\*)\.(?:([cruds]+)|(read|write|\*))(\?.*)?$"
)


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of ``.well-known/smart-configuration`` the launch needs."""

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None


def discover(iss: str, timeout: float) -> SmartConfiguration:
    """Read ``{iss}/.well-known/smart-configuration``. Raises AppError("discovery_failed")."""
    url = f"{iss}/.well-known/smart-configuration"
    try:
        response = requests.get(
            url, timeout=timeout, allow_redirects=False, headers={"Accept": "application/json"}
        )
    except requests.RequestException:
        raise _discovery("the EHR's SMART configuration could not be reached") from None
    if response.status_code != 200:
        raise _discovery(f"the EHR's SMART configuration answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise _discovery("the EHR's SMART configuration is not JSON") from None
    if not isinstance(document, dict):
        raise _discovery("the EHR's SMART configuration is not a JSON object")
    methods = document.get("code_challenge_methods_supported") or []
    if not isinstance(methods, list) or "S256" not in methods:
        raise _discovery("the EHR does not support PKCE S256 (code_challenge_methods_supported)")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint"):
        endpoints[name] = _http_url(document.get(name))
        if endpoints[name] is None:
            raise _discovery(f"the EHR's SMART configuration has no usable {name}")
    issuer = document.get("issuer")
    jwks_uri = _http_url(document.get("jwks_uri"))
    if not isinstance(issuer, str) or jwks_uri is None:
        # SMART requires issuer and jwks_uri only with sso-openid-connect; OpenID Connect
        # discovery under the FHIR base may still have them.
        oidc = _openid_configuration(iss, timeout)
        issuer = issuer if isinstance(issuer, str) else oidc.get("issuer")
        jwks_uri = jwks_uri or _http_url(oidc.get("jwks_uri"))
    return SmartConfiguration(
        issuer=issuer if isinstance(issuer, str) else None,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        jwks_uri=jwks_uri,
    )


def _openid_configuration(iss: str, timeout: float) -> dict[str, Any]:
    """``{iss}/.well-known/openid-configuration``, or {} when absent or unusable."""
    try:
        response = requests.get(
            f"{iss}/.well-known/openid-configuration", timeout=timeout, allow_redirects=False
        )
        document = response.json() if response.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


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
            "config": self.config.__dict__,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingLaunch:
        return cls(
            iss=data["iss"],
            state=data["state"],
            nonce=data["nonce"],
            code_verifier=data["code_verifier"],
            config=SmartConfiguration(**data["config"]),
        )


def start_launch(iss: str, config: SmartConfiguration) -> PendingLaunch:
    """Fresh, unpredictable state, nonce and PKCE verifier for one launch."""
    return PendingLaunch(
        iss=iss,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters: within RFC 7636's 43..128
        config=config,
    )


def authorize_url(
    pending: PendingLaunch, client_id: str, redirect_uri: str, scope: str, launch: str | None
) -> str:
    """The authorize redirect: EHR launch with ``launch``, standalone with launch/patient."""
    scopes = scope.split()
    if launch is None:
        scopes = [s for s in scopes if s != "launch"]
        if "launch/patient" not in scopes:
            scopes.append("launch/patient")
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": pending.state,
        "aud": pending.iss,
        "code_challenge": create_s256_code_challenge(pending.code_verifier),
        "code_challenge_method": "S256",
        "nonce": pending.nonce,
    }
    if launch is not None:
        params["launch"] = launch
    endpoint = pending.config.authorization_endpoint
    separator = "&" if urlsplit(endpoint).query else "?"
    return endpoint + separator + urlencode(params)


def exchange_code(
    pending: PendingLaunch,
    code: str,
    client_id: str,
    redirect_uri: str,
    client_key: ClientKey,
    timeout: float,
) -> dict[str, Any]:
    """The token response for ``code``. Raises AppError("token_error")."""
    token_url = pending.config.token_endpoint
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pending.code_verifier,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_key.client_assertion(client_id, token_url),
    }
    try:
        response = requests.post(
            token_url,
            data=data,
            timeout=timeout,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException:
        raise _token("the EHR's token endpoint could not be reached", 502) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        detail = f" ({error})" if isinstance(error, str) and len(error) < 80 else ""
        raise _token(f"the EHR refused to issue a token{detail}", 502)
    if not answer.get("access_token") or str(answer.get("token_type", "")).lower() != "bearer":
        raise _token("the EHR's token response has no bearer access_token", 502)
    return answer


def validate_id_token(
    id_token: str, pending: PendingLaunch, client_id: str, timeout: float
) -> dict[str, Any]:
    """The id_token's claims after checking signature (the server's jwks_uri), iss, aud, exp
    and nonce. Raises AppError("invalid_id_token")."""
    config = pending.config
    if not config.jwks_uri or not config.issuer:
        raise _id_token("the EHR publishes no jwks_uri or issuer to check the id_token with")
    try:
        response = requests.get(config.jwks_uri, timeout=timeout, allow_redirects=False)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (requests.RequestException, ValueError, JoseError, TypeError, KeyError):
        raise _id_token("the EHR's signing keys (jwks_uri) could not be read") from None
    try:
        token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        registry = JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError):
        raise _id_token("the id_token's signature or claims did not check out") from None
    return dict(token.claims)


def granted_scopes(token: dict[str, Any]) -> list[str]:
    scope = token.get("scope")
    return scope.split() if isinstance(scope, str) else []


def can_write(scopes: list[str]) -> bool:
    """Whether any patient/user scope allows create or update (v2 c/u, v1 write or *)."""
    return any(allows_any(scopes, "cu"))


def allows_any(scopes: list[str], interactions: str) -> list[str]:
    """The resource types (or "*") for which ``scopes`` allow one of ``interactions``."""
    types = []
    for scope in scopes:
        match = RESOURCE_SCOPE.match(scope)
        if match and set(_interactions(match)) & set(interactions):
            types.append(match.group(2))
    return types


def allows(scopes: list[str], resource_type: str, interaction: str) -> bool:
    """Whether ``scopes`` allow ``interaction`` (one of c r u d s) on ``resource_type``."""
    for scope in scopes:
        match = RESOURCE_SCOPE.match(scope)
        if match and match.group(2) in (resource_type, "*") and interaction in _interactions(match):
            return True
    return False


def _interactions(match: re.Match[str]) -> str:
    """v2 letters as given; v1 read → rs, write → cud, * → cruds."""
    v1 = {"read": "rs", "write": "cud", "*": "cruds"}
    return match.group(3) or v1[match.group(4)]


def _http_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname else None


def _discovery(message: str) -> AppError:
    return AppError(502, "discovery_failed", "The EHR could not be contacted", message)


def _token(message: str, status: int) -> AppError:
    return AppError(status, "token_error", "Sign-in with the EHR failed", message)


def _id_token(message: str) -> AppError:
    return AppError(401, "invalid_id_token", "The EHR's identity token was not valid", message)

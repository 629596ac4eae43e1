"""The id_token of a SMART launch with ``openid fhirUser`` (OpenID Connect Core §3.1.3.7):
signature by the EHR's JWKS, iss, aud, exp and nonce; and, where staff sign-in must be
multi-factor, its ``amr`` (RFC 8176) or ``acr``.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from symfhir.errors import IdTokenError, MfaRequiredError
from symfhir.smart.discovery import SmartConfiguration

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
LEEWAY_S = 60
MFA = "mfa"  # RFC 8176: multiple-factor authentication


@dataclass(frozen=True)
class MfaPolicy:
    """Whether staff sign-in must be multi-factor, and an ``acr`` value that also counts
    (an EHR may say "mfa" through its own authentication context class instead of ``amr``)."""

    required: bool = False
    acr: str | None = None


def fetch_keys(jwks_uri: str, timeout: float) -> KeySet:
    """The EHR's public signing keys. Raises IdTokenError when they cannot be read."""
    try:
        response = requests.get(jwks_uri, timeout=timeout, allow_redirects=False)
        response.raise_for_status()
        return KeySet.import_key_set(response.json())
    except (requests.RequestException, ValueError, JoseError, TypeError, KeyError):
        raise IdTokenError("the EHR's signing keys (jwks_uri) could not be read") from None


def validate_id_token(
    id_token: object, config: SmartConfiguration, client_id: str, nonce: str, timeout: float
) -> dict[str, Any]:
    """The id_token's claims after checking signature (``config.jwks_uri``), iss, aud, exp
    and nonce. Raises IdTokenError (none sent, no keys or issuer to check with, a bad
    signature or claim)."""
    if not isinstance(id_token, str) or not id_token:
        raise IdTokenError("the EHR sent no id_token")
    if not config.jwks_uri or not config.issuer:
        raise IdTokenError("the EHR publishes no jwks_uri or issuer to check the id_token with")
    return check_claims(
        id_token, fetch_keys(config.jwks_uri, timeout), config.issuer, client_id, nonce
    )


def check_claims(
    id_token: str, keys: KeySet, issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """The claims of ``id_token`` signed by one of ``keys``, with iss = ``issuer``,
    aud = ``client_id``, an exp not past and the launch's ``nonce``. Raises IdTokenError."""
    try:
        token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        registry = JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError):
        raise IdTokenError("the id_token's signature or claims did not check out") from None
    return dict(token.claims)


def shows_mfa(claims: dict[str, Any], acr: str | None = None) -> bool:
    """Whether the sign-in was multi-factor: ``amr`` lists ``mfa``, or ``acr`` equals the
    configured value."""
    amr = claims.get("amr")
    if isinstance(amr, list) and MFA in amr:
        return True
    return acr is not None and claims.get("acr") == acr


def check_mfa(claims: dict[str, Any], policy: MfaPolicy) -> None:
    """Raise MfaRequiredError when ``policy`` requires multi-factor sign-in and the id_token
    does not show it."""
    if policy.required and not shows_mfa(claims, policy.acr):
        raise MfaRequiredError(
            "the EHR's sign-in was not multi-factor, and this clinic requires it for staff"
        )

"""SMART Backend Services in the sandbox: the client_credentials grant for `system/` scopes.

https://hl7.org/fhir/smart-app-launch/backend-services.html — a confidential client
authenticates with private_key_jwt only (the same RS384/ES384 assertion checks as the code
grant: aud = token URL, exp ≤ 5 min, jti never reused), asks for `system/` scopes only and
gets at most the `system_scopes` its registration lists (none by default). The answer is a
5-minute access token: no refresh token, no id_token, no launch context. The token carries
`grant_type` so the proxy applies its system scopes — and only those — without a patient.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from authlib.oauth2.rfc6749 import InvalidScopeError, grants

from .scopes import disallowed_scopes, parse_resource_scope, split_scope

GRANT_TYPE = "client_credentials"
SYSTEM_TOKEN_LIFETIME_S = 300


def non_system_scopes(scopes: list[str]) -> list[str]:
    """The scopes that are not `system/` resource scopes (openid, launch, patient/…, …)."""
    return [s for s in scopes if (p := parse_resource_scope(s)) is None or p.context != "system"]


class BackendServicesGrant(grants.ClientCredentialsGrant):
    """client_credentials per SMART Backend Services (the client must be registered for it:
    `SandboxClient.check_grant_type` allows it only with `system_scopes`)."""

    # Backend Services allows asymmetric client authentication only: no secret, no public client.
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]  # noqa: RUF012 (authlib's class attribute)

    def validate_token_request(self) -> None:
        """Client auth and grant type (authlib), then the scope rules; raises OAuth2Error."""
        super().validate_token_request()
        requested = split_scope(self.request.payload.scope)
        if not requested:
            raise InvalidScopeError(description="'scope' is required: ask for system/ scopes")
        others = non_system_scopes(requested)
        if others:
            raise InvalidScopeError(
                description=f"client_credentials grants system/ scopes only: {' '.join(others)}"
            )
        allowed = split_scope(self.request.client.registration.system_scopes)
        refused = disallowed_scopes(requested, allowed)
        if refused:
            raise InvalidScopeError(
                description=f"scopes not allowed for this client: {' '.join(sorted(set(refused)))}"
            )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """A short-lived system access token; nothing to store (no refresh token, no context)."""
        sandbox = self.server.sandbox
        client_id = self.request.client.get_client_id()
        scope = " ".join(split_scope(self.request.payload.scope))
        now = int(time.time())
        claims = {
            "iss": sandbox.issuer,
            "sub": client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + SYSTEM_TOKEN_LIFETIME_S,
            "jti": uuid.uuid4().hex,
            "token_use": "access",
            "grant_type": GRANT_TYPE,
        }
        token = {
            "access_token": sandbox.key.sign(claims, typ="at+jwt"),
            "token_type": "Bearer",
            "expires_in": SYSTEM_TOKEN_LIFETIME_S,
            "scope": scope,
        }
        return 200, token, self.TOKEN_RESPONSE_HEADER

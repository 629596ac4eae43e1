"""The SMART authorization server, on authlib: clients, grants, PKCE, private_key_jwt, tokens.

authlib's Flask `AuthorizationServer` runs the authorization_code (with rfc7636 PKCE, S256
only), refresh_token and client_credentials (SMART Backend Services, `backend_services.py`)
grants and the client authentication (rfc7523 private_key_jwt, client_secret_basic, none).
This module adds what SMART needs on top: launch context and an id_token in the token
response, JWT access tokens (60 min), and simulated errors.
State (codes, refresh tokens, assertion jti) is in memory: one sandbox process.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .backend_services import BackendServicesGrant
from .config import ClientRegistration
from .keys import SigningKey
from .scopes import disallowed_scopes, split_scope

ACCESS_TOKEN_LIFETIME_S = 3600
CODE_LIFETIME_S = 300
REFRESH_LIFETIME_S = 24 * 3600
ASSERTION_MAX_LIFETIME_S = 300
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
CLOCK_SKEW_S = 5
JWKS_TIMEOUT_S = 10


@dataclass
class LaunchContext:
    """Who launched the app, for which patient, and any simulated error (the "user")."""

    practitioner: str
    patient: str | None = None
    encounter: str | None = None
    sim_error: str | None = None
    nonce: str | None = None
    #: The practitioner signed in with a second factor (the launcher's "mfa" option)
    mfa: bool = False
    #: What is granted when the launch allowed less than was asked for (else the request's)
    granted_scope: str | None = None

    def get_user_id(self) -> str:
        return self.practitioner


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    context: LaunchContext
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshToken:
    token: str
    client_id: str
    scope: str
    context: LaunchContext
    expires_at: float
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Store:
    """In-memory state, guarded by one lock (werkzeug's threaded server)."""

    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    assertion_jtis: dict[str, float] = field(default_factory=dict)
    #: launch codes (jti) already presented at /authorize, until they expire
    launch_jtis: dict[str, float] = field(default_factory=dict)
    #: upstream paging ids (`_getpages`) -> (jti of the token whose search made them,
    #: whether that search was patient-scoped)
    search_pages: dict[str, tuple[str, bool]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pop_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Return a code once: it is removed on first use, so a replay finds nothing."""
        with self.lock:
            item = self.codes.pop(code, None)
        if item is None or item.client_id != client_id or item.expires_at < time.time():
            return None
        return item

    def remember_jti(self, key: str, expires_at: float) -> bool:
        """False if `key` was seen (and has not expired) before."""
        return self._first_use(self.assertion_jtis, key, expires_at)

    def use_launch_code(self, jti: str, expires_at: float) -> bool:
        """False if the launch code `jti` was presented before: a launch code works once."""
        return self._first_use(self.launch_jtis, jti, expires_at)

    def _first_use(self, seen: dict[str, float], key: str, expires_at: float) -> bool:
        now = time.time()
        with self.lock:
            for old in [k for k, exp in seen.items() if exp < now]:
                del seen[old]
            if key in seen:
                return False
            # Kept a minute past expiry: the signature check's clock may lag ours.
            seen[key] = max(expires_at, now) + 60
            return True


class SandboxClient(ClientMixin):
    """authlib's view of a registration."""

    def __init__(self, registration: ClientRegistration) -> None:
        self.registration = registration

    def get_client_id(self) -> str:
        return self.registration.client_id

    def get_default_redirect_uri(self) -> str:
        return self.registration.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str | None:
        requested = split_scope(scope)
        if not requested or disallowed_scopes(requested, split_scope(self.registration.scope)):
            return None
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.registration.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.registration.client_secret or ""
        return bool(expected) and secrets.compare_digest(expected, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == self.registration.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            # Backend Services only for a client registered for it (authlib: unauthorized_client).
            return bool(self.registration.system_scopes)
        return grant_type in ("authorization_code", "refresh_token")


class S256Only(CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's class attribute)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt per SMART: RS384/ES384, aud = token URL, exp ≤ 5 min, unique jti."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url: str, store: Store) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW_S)
        self._token_url = token_url
        self._store = store

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description=f"client assertion rejected: {error}") from error
        self.verify_claims(token.claims)
        exp = token.claims["exp"]
        if exp > time.time() + ASSERTION_MAX_LIFETIME_S + CLOCK_SKEW_S:
            raise InvalidClientError(description="client assertion exp is more than 5 min ahead")
        return token.claims

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        return self._store.remember_jti(f"{claims['sub']}:{jti}", float(claims["exp"]))

    def resolve_client_public_key(self, client: SandboxClient) -> KeySet:
        registration = client.registration
        if registration.jwks:
            return KeySet.import_key_set(dict(registration.jwks))
        try:
            response = requests.get(str(registration.jwks_uri), timeout=JWKS_TIMEOUT_S)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (requests.RequestException, ValueError, JoseError) as error:
            raise InvalidClientError(
                description=f"cannot fetch the client's JWKS ({registration.jwks_uri})"
            ) from error


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "none"]  # noqa: RUF012

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        sandbox = self.server.sandbox
        with sandbox.store.lock:
            sandbox.store.codes[code] = AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.user.granted_scope or request.scope,
                context=request.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=time.time() + CODE_LIFETIME_S,
            )

    def query_authorization_code(self, code: str, client: SandboxClient) -> Any:
        return self.server.sandbox.store.pop_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already removed by `query_authorization_code` (a code is usable once)."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> LaunchContext:
        return authorization_code.context

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if self.request.authorization_code.context.sim_error == "invalid_secret":
            raise InvalidClientError(
                status_code=401, description="simulated error: client authentication failed"
            )


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "none"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        item = self.server.sandbox.store.refresh_tokens.get(refresh_token)
        if item is None or item.revoked or item.expires_at < time.time():
            return None
        return item

    def authenticate_user(self, refresh_token: RefreshToken) -> LaunchContext:
        context = refresh_token.context
        return LaunchContext(context.practitioner, context.patient, context.encounter)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        refresh_token.revoked = True


class SandboxAuthServer(AuthorizationServer):
    """authlib's server wired to the sandbox's clients, key and store."""

    def __init__(self, sandbox: SandboxState) -> None:
        super().__init__()
        self.sandbox = sandbox

    def query_client(self, client_id: str) -> SandboxClient | None:
        registration = self.sandbox.clients.get(client_id)
        return SandboxClient(registration) if registration else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Remember the refresh token and add SMART launch context and the id_token."""
        self.sandbox.complete_token(token, request.client, request.user)


@dataclass
class SandboxState:
    """Everything the sandbox's views share: settings, clients, key, store, auth server."""

    base_url: str
    upstream: str
    clients: dict[str, ClientRegistration]
    key: SigningKey = field(default_factory=SigningKey)
    store: Store = field(default_factory=Store)

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def issuer(self) -> str:
        return self.fhir_base

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def create_server(self, app: Flask) -> SandboxAuthServer:
        server = SandboxAuthServer(self)
        server.init_app(app)
        server.register_token_generator("default", self.generate_token)
        server.register_client_auth_method(
            "private_key_jwt", PrivateKeyJWT(self.token_url, self.store)
        )
        server.register_grant(CodeGrant, [S256Only(required=True)])
        server.register_grant(RefreshGrant)
        server.register_grant(BackendServicesGrant)
        return server

    def generate_token(
        self,
        grant_type: str,
        client: SandboxClient,
        user: LaunchContext | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        now = int(time.time())
        context = user or LaunchContext(practitioner="")
        lifetime = expires_in or ACCESS_TOKEN_LIFETIME_S
        # token_expired: the token looks normal (expires_in as usual) but is already dead.
        exp = now - 60 if context.sim_error == "token_expired" else now + lifetime
        claims = {
            "iss": self.issuer,
            "sub": context.practitioner,
            "client_id": client.get_client_id(),
            "scope": scope or "",
            "patient": context.patient,
            "iat": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "token_use": "access",
        }
        if context.sim_error == "token_invalid":
            claims["sim_error"] = "token_invalid"
        token: dict[str, Any] = {
            "access_token": self.key.sign(claims, typ="at+jwt"),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": scope or "",
        }
        granted = split_scope(scope)
        if include_refresh_token and ({"offline_access", "online_access"} & set(granted)):
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def complete_token(
        self, token: dict[str, Any], client: SandboxClient, context: LaunchContext
    ) -> None:
        granted = split_scope(token.get("scope"))
        if "refresh_token" in token:
            with self.store.lock:
                self.store.refresh_tokens[token["refresh_token"]] = RefreshToken(
                    token=token["refresh_token"],
                    client_id=client.get_client_id(),
                    scope=token["scope"],
                    context=LaunchContext(context.practitioner, context.patient, context.encounter),
                    expires_at=time.time() + REFRESH_LIFETIME_S,
                )
        if context.patient:
            token["patient"] = context.patient
        if context.encounter:
            token["encounter"] = context.encounter
        token["need_patient_banner"] = True
        token["smart_style_url"] = f"{self.base_url}/smart-style.json"
        if "openid" in granted:
            now = int(time.time())
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "aud": client.get_client_id(),
                "sub": context.practitioner,
                "iat": now,
                "exp": now + ACCESS_TOKEN_LIFETIME_S,
                "fhirUser": f"Practitioner/{context.practitioner}",
                # RFC 8176 methods: a password, and a second factor when the launch says so.
                "amr": ["pwd", "mfa"] if context.mfa else ["pwd"],
            }
            if context.nonce:
                claims["nonce"] = context.nonce
            token["id_token"] = self.key.sign(claims)

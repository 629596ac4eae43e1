"""Signing FHIR requests: a fixed bearer token, SMART tokens that refresh themselves, and
SMART Backend Services (client_credentials with a private_key_jwt client assertion).

https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html (refresh)
https://hl7.org/fhir/smart-app-launch/STU2/backend-services.html (client assertion)

The OAuth protocol work is ``symfhir.smart``'s: token sessions and answers
(``smart.token``), the client assertion (``smart.assertion``, the one private_key_jwt
signer) and client_credentials (``smart.backend_services``). Here a token endpoint's refusal
(SmartError's TokenError) becomes FhirAuthError carrying the ``error`` and
``error_description``, and a token endpoint that cannot be reached becomes what
``symfhir.fhir.translate`` says (FhirTransportError...), like any other FHIR request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import urllib3.exceptions as u3
from authlib.integrations.requests_client import OAuth2Session
from requests.auth import AuthBase
from requests.utils import rewind_body
from urllib3.util.retry import Retry

from symfhir.errors import ConfigError, FhirAuthError, TokenError
from symfhir.fhir.config import DEFAULT_TIMEOUT, ServerConfig
from symfhir.fhir.retry import retry_policy, single_attempt_policy
from symfhir.fhir.translate import translate
from symfhir.smart.assertion import ASSERTION_LIFETIME_S, ClientKey, load_private_key
from symfhir.smart.backend_services import backend_session, fetch_system_token
from symfhir.smart.token import request_token, token_session

__all__ = [
    "ASSERTION_LIFETIME_S",
    "BackendServicesAuth",
    "BearerAuth",
    "SmartTokenAuth",
    "TokenCallback",
    "load_private_key",
    "make_auth",
]

LEEWAY_S = 60
_RETRIED = "_symfhir_auth_retried"

TokenCallback = Callable[[dict[str, Any]], None]


class BearerAuth(AuthBase):
    """A fixed bearer token (e.g. from ``FHIR_TOKEN``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"


class _OAuthTokenAuth(AuthBase):
    """Shared by the OAuth kinds: the cached token, renewal before expiry, and one renewal and
    re-send when the server still answers 401."""

    operation = "get access token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        leeway: float = LEEWAY_S,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.leeway = leeway
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self._renew_at = 0.0
        self._oauth = self._make_oauth(timeout, retry)

    def _make_oauth(self, timeout: tuple[float, float], retry: Retry | None) -> OAuth2Session:
        raise NotImplementedError

    def _can_renew(self) -> bool:
        return True

    def _renew(self) -> None:
        """Get and store a new token (called under the lock)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the token endpoint's connections."""
        self._oauth.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if (self._token is None or time.time() >= self._renew_at) and self._can_renew():
                self._renew()
            token = self._access_token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", self._on_401)
        return request

    def _on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        """Renew once and re-send once when the server rejects the token (it may have been
        revoked or have expired early); a second 401 goes back to the caller."""
        if response.status_code != 401 or getattr(response.request, _RETRIED, False):
            return response
        used = response.request.headers.get("Authorization", "")
        with self._lock:
            # Another thread may have renewed already; only renew if this token is current.
            current = used == f"Bearer {self._access_token()}"
            if current and not self._can_renew():
                return response  # nothing to renew with: the caller gets the 401
            response.close()
            if current:
                self._renew()
            token = self._access_token()
        request = response.request.copy()
        if request.body is not None and getattr(request, "_body_position", None) is not None:
            rewind_body(request)
        request.headers["Authorization"] = f"Bearer {token}"
        setattr(request, _RETRIED, True)
        # Re-sent through the adapter that sent the first one: same retry policy.
        retried = response.connection.send(request, **kwargs)
        retried.history.append(response)
        retried.request = request
        return retried

    def _access_token(self) -> str:
        return str((self._token or {}).get("access_token") or "")

    def _store(self, token: dict[str, Any]) -> None:
        if not token.get("access_token"):
            raise _auth_error(self.operation, "the token response has no access_token")
        self._token = dict(token)
        now = time.time()
        expires_in = _number(token.get("expires_in"))
        expires_at = _number(token.get("expires_at")) or (now + expires_in if expires_in else 0)
        if not expires_at:
            self._renew_at = float("inf")  # no lifetime given: renew only on a 401
            return
        # Renew a little before expiry; for short-lived tokens, at half their life.
        leeway = min(self.leeway, expires_in / 2) if expires_in else self.leeway
        self._renew_at = expires_at - leeway

    def _call_token_endpoint(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return call()
        except TokenError as exc:
            raise _auth_error(self.operation, f"{exc.error}: {exc.description}") from None
        except requests.HTTPError as exc:
            answer = exc.response
            if answer is None:
                raise translate(self.operation, error=exc) from None
            raise translate(self.operation, response=answer, body=answer.content) from None
        except (requests.RequestException, u3.HTTPError, OSError) as exc:
            raise translate(self.operation, error=exc, timeout=self.timeout) from None


class SmartTokenAuth(_OAuthTokenAuth):
    """The access token of a SMART app launch, refreshed with its refresh_token shortly before
    it expires (and once on a 401). ``on_refresh`` gets every new token response, so the app
    can store it (encrypted). The refresh authenticates with a private_key_jwt assertion of
    ``client_key`` (a confidential asymmetric client), else ``client_secret``, else as a
    public client."""

    operation = "refresh SMART access token"

    def __init__(
        self,
        token_response: dict[str, Any],
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        on_refresh: TokenCallback | None = None,
        *,
        leeway: float = LEEWAY_S,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        client_key: ClientKey | None = None,
    ) -> None:
        self._client_secret = client_secret
        self._client_key = client_key
        self.on_refresh = on_refresh
        super().__init__(token_url, client_id, leeway=leeway, timeout=timeout, retry=retry)
        self._store(token_response)
        self._oauth.token = dict(token_response)

    def _make_oauth(self, timeout: tuple[float, float], retry: Retry | None) -> OAuth2Session:
        return token_session(
            self.client_id,
            self.token_url,
            client_key=self._client_key,
            client_secret=self._client_secret,
            timeout=timeout,
            retry=retry,
        )

    def _can_renew(self) -> bool:
        return bool((self._token or {}).get("refresh_token"))

    def _renew(self) -> None:
        refresh_token = (self._token or {}).get("refresh_token")
        token = self._call_token_endpoint(
            lambda: request_token(
                lambda: self._oauth.refresh_token(self.token_url, refresh_token=refresh_token)
            )
        )
        token.setdefault("refresh_token", refresh_token)
        self._store(token)
        if self.on_refresh is not None:
            self.on_refresh(dict(token))


class BackendServicesAuth(_OAuthTokenAuth):
    """SMART Backend Services: a client_credentials token got with a signed client assertion
    (RS384 or ES384), cached until shortly before it expires. ``private_key`` is a PEM
    (with ``key_id`` and ``algorithm``) or a ClientKey."""

    operation = "get backend services access token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key: bytes | str | ClientKey,
        key_id: str = "",
        algorithm: str = "RS384",
        scope: str = "system/*.rs",
        *,
        leeway: float = LEEWAY_S,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
    ) -> None:
        if isinstance(private_key, ClientKey):
            self._client_key = private_key
        else:
            key = load_private_key(private_key, algorithm)
            self._client_key = ClientKey(key, algorithm, key_id or key.thumbprint())
        self.scope = scope
        super().__init__(token_url, client_id, leeway=leeway, timeout=timeout, retry=retry)

    def _make_oauth(self, timeout: tuple[float, float], retry: Retry | None) -> OAuth2Session:
        return backend_session(
            self.client_id,
            self.token_url,
            self._client_key,
            self.scope,
            timeout=timeout,
            retry=retry,
        )

    def _renew(self) -> None:
        token = self._call_token_endpoint(lambda: fetch_system_token(self._oauth, self.token_url))
        self._store(token)


def make_auth(
    config: ServerConfig,
    *,
    token_response: dict[str, Any] | None = None,
    on_refresh: TokenCallback | None = None,
) -> AuthBase | None:
    """The request signer ``config.auth`` asks for; None for "none".

    "smart" needs the ``token_response`` of a SMART launch. Raises ConfigError when a
    setting or the private key file is missing or unusable.
    """
    if config.auth == "none":
        return None
    if config.auth == "bearer":
        return BearerAuth(config.token or "")
    if config.auth == "smart":
        if token_response is None:
            raise ConfigError("server.auth: 'smart' needs the token response of a SMART launch")
        if not config.token_url or not config.client_id:
            raise ConfigError("server.token_url and server.client_id: required for 'smart'")
        return SmartTokenAuth(
            token_response,
            config.token_url,
            config.client_id,
            config.client_secret,
            on_refresh,
            timeout=config.timeout,
            # A refresh token may be single-use: a refresh is never sent twice.
            retry=single_attempt_policy(config),
        )
    path = Path(config.private_key_path or "")
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"server.private_key_path: cannot read {path} ({exc.strerror})") from None
    return BackendServicesAuth(
        config.token_url or "",
        config.client_id or "",
        pem,
        config.key_id or "",
        config.algorithm,
        config.scope or "",
        timeout=config.timeout,
        retry=retry_policy(config),
    )


def _auth_error(operation: str, reason: str) -> FhirAuthError:
    return FhirAuthError(operation, reason, log_text=f"{operation}: {reason}")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        return float(value)
    except ValueError:
        return 0.0

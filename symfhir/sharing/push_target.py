"""Where a push goes and how it signs in: ``PushTarget`` (a FHIR base URL with a bearer
token, SMART Backend Services credentials, or neither) and ``open_target``, the target's
``FhirClient`` built with the one client layer (its retries, timeouts and error mapping).

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from symfhir.errors import ConfigError, PushError, SharingError
from symfhir.fhir import BackendServicesAuth, BearerAuth, FhirClient, ServerConfig
from symfhir.fhir.retry import retry_policy
from symfhir.smart.assertion import ClientKey
from symfhir.urls import secure_url


@dataclass(frozen=True)
class PushTarget:
    """Where to push and how to sign in: a FHIR base URL with a bearer token, or SMART
    Backend Services credentials (``client_id`` and a private key file; the token URL is read
    from the target's ``.well-known/smart-configuration`` when not given; ``scope`` defaults to
    exactly the creates the push needs), or neither (an open server). ``tuning`` holds
    ``ServerConfig`` settings (timeouts, retries). Raises SharingError when the URL is not
    http(s) or the credentials are half given or mixed."""

    base_url: str
    bearer_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    private_key_path: Path | None = None
    token_url: str | None = None
    scope: str | None = None
    key_id: str | None = None
    tuning: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url or "")
        if not secure_url(self.base_url or ""):
            raise SharingError(
                "base_url: the FHIR base URL must be https (plain http only on this machine)"
            )
        if self.token_url is not None and not secure_url(self.token_url):
            raise SharingError("token_url: must be https (plain http only on this machine)")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise SharingError("base_url: must not carry credentials, a query or a fragment")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.bearer_token is not None and not self.bearer_token.strip():
            raise SharingError("token: the bearer token is empty")
        if self.bearer_token and self.client_id:
            raise SharingError("token: a bearer token or Backend Services credentials, not both")
        if bool(self.client_id) != bool(self.private_key_path):
            raise SharingError("client_id: Backend Services needs a client id and a key file")

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url


def open_target(target: PushTarget, scope: str) -> FhirClient:
    """The FHIR client for ``target``, signed as it says (see ``PushTarget``). Raises
    SharingError for unusable settings or a key file that cannot be read, PushError when the
    token URL cannot be discovered."""
    try:
        config = ServerConfig(base_url=target.base_url, **dict(target.tuning))
    except (ConfigError, TypeError) as exc:
        raise SharingError(f"target: {exc}") from None
    auth: Any = None
    if target.bearer_token:
        auth = BearerAuth(target.bearer_token)
    elif target.client_id and target.private_key_path:
        try:
            pem = Path(target.private_key_path).read_bytes()
        except OSError as exc:
            raise SharingError(f"target: cannot read the key file ({exc.strerror})") from None
        token_url = target.token_url or discover_token_url(target.base_url, config.timeout)
        try:
            key = ClientKey.from_pem(pem, target.key_id)
        except ConfigError as exc:
            raise SharingError(f"target: the key file: {exc}") from None
        auth = BackendServicesAuth(
            token_url,
            target.client_id,
            key,
            scope=scope,
            timeout=config.timeout,
            retry=retry_policy(config),
        )
    return FhirClient(config, auth)


def discover_token_url(base_url: str, timeout: tuple[float, float]) -> str:
    """The ``token_endpoint`` of the target's ``.well-known/smart-configuration``. Raises
    PushError when it cannot be read or names none."""
    url = f"{base_url}/.well-known/smart-configuration"
    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
        document = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        document = None
    token_url = document.get("token_endpoint") if isinstance(document, dict) else None
    parts = urlsplit(token_url) if isinstance(token_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError("the target's SMART configuration names no token endpoint: give one")
    if not secure_url(str(token_url)):
        raise PushError("the target's token endpoint is not https: its tokens would go in clear")
    return str(token_url)

"""Sandbox configuration: defaults, environment variables and client registrations."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .scopes import parse_resource_scope

DEFAULT_SCOPE = (
    "openid fhirUser profile launch launch/patient launch/encounter offline_access "
    "online_access patient/*.cruds user/*.cruds"
)
DEFAULTS: dict[str, Any] = {
    "SANDBOX_BASE_URL": "http://localhost:5100",
    "SANDBOX_FHIR_UPSTREAM": "http://localhost:8080/fhir",
    "SANDBOX_CLIENTS": None,
    "SANDBOX_CLIENTS_FILE": None,
    # The /mail page: the mail catcher's Maildir and the SMS outbox file (unset: none).
    "SANDBOX_MAIL_DIR": None,
    "SANDBOX_SMS_OUTBOX": None,
}
DEFAULT_CLIENT: dict[str, Any] = {
    "client_id": "symfhir",
    "redirect_uris": ["http://localhost:5000/callback"],
    # The app's EHR launch, and the privacy officer's dashboard (a launch without a patient).
    "launch_urls": [
        "http://localhost:5000/launch",
        "http://localhost:5000/privacy-dashboard/launch",
    ],
    "scope": DEFAULT_SCOPE,
    "token_endpoint_auth_method": "private_key_jwt",
    "jwks_uri": "http://localhost:5000/.well-known/jwks.json",
    # Backend Services for the app's audit channel (AuditEvents of read-only launches).
    "system_scopes": "system/AuditEvent.c",
}
AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "none")


class ConfigError(ValueError):
    """A client registration or setting is invalid."""


@dataclass(frozen=True)
class ClientRegistration:
    """One registered SMART app (authlib's ClientMixin methods are in auth_server.SandboxClient)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    scope: str = DEFAULT_SCOPE
    token_endpoint_auth_method: str = "private_key_jwt"  # noqa: S105 (a method name)
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | None = None
    client_secret: str | None = None
    #: The most a client_credentials (Backend Services) token may grant; "" = no such grant.
    system_scopes: str = ""
    #: Where the launcher may send a user to launch this app (and what /ehr may frame).
    launch_urls: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClientRegistration:
        """Build a registration; raises ConfigError if it is incomplete or inconsistent."""
        client_id = data.get("client_id")
        uris = data.get("redirect_uris") or []
        method = data.get("token_endpoint_auth_method", "private_key_jwt")
        system_scopes = _system_scopes(client_id, data.get("system_scopes"))
        # A backend-only client (system_scopes, no launch) needs no redirect URI.
        if not client_id or not (uris or system_scopes):
            raise ConfigError("a client needs client_id and redirect_uris")
        if isinstance(uris, str):
            uris = [uris]
        if method not in AUTH_METHODS:
            raise ConfigError(f"client {client_id}: unsupported auth method {method!r}")
        if method == "private_key_jwt" and not (data.get("jwks_uri") or data.get("jwks")):
            raise ConfigError(f"client {client_id}: private_key_jwt needs jwks_uri or jwks")
        if method == "client_secret_basic" and not data.get("client_secret"):
            raise ConfigError(f"client {client_id}: client_secret_basic needs client_secret")
        if system_scopes and method != "private_key_jwt":
            # SMART Backend Services authenticates with a signed assertion only.
            raise ConfigError(f"client {client_id}: system_scopes need private_key_jwt")
        launch_urls = _launch_urls(client_id, data.get("launch_urls"), uris)
        return cls(
            client_id=str(client_id),
            redirect_uris=tuple(str(u) for u in uris),
            scope=str(data.get("scope") or DEFAULT_SCOPE),
            token_endpoint_auth_method=method,
            jwks_uri=data.get("jwks_uri"),
            jwks=data.get("jwks"),
            client_secret=data.get("client_secret"),
            system_scopes=system_scopes,
            launch_urls=launch_urls,
        )


def _system_scopes(client_id: object, value: object) -> str:
    """`system_scopes` as one string (given as a string or a list); each must be a `system/`
    resource scope (v1 or v2). Raises ConfigError."""
    if value is None:
        return ""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"client {client_id}: system_scopes must be a string or a list")
    for item in items:
        parsed = parse_resource_scope(item)
        if parsed is None or parsed.context != "system":
            raise ConfigError(f"client {client_id}: {item!r} is not a system/ scope")
    return " ".join(items)


def _launch_urls(client_id: object, value: object, redirect_uris: list[str]) -> tuple[str, ...]:
    """The registered launch URLs (a string or a list); by default `/launch` on the origin of
    each redirect URI. Raises ConfigError for one that is not an absolute http(s) URL."""
    if value is None:
        origins = dict.fromkeys(_origin(str(uri)) for uri in redirect_uris)
        return tuple(f"{origin}/launch" for origin in origins if origin)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"client {client_id}: launch_urls must be a string or a list")
    for item in items:
        if not _origin(item) or urlsplit(item).fragment:
            raise ConfigError(f"client {client_id}: launch URL {item!r} is not an http(s) URL")
    return tuple(items)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def load_settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge defaults, environment variables (same names) and `config` (highest)."""
    settings = dict(DEFAULTS)
    for key in DEFAULTS:
        if os.environ.get(key):
            settings[key] = os.environ[key]
    settings.update(config or {})
    settings["SANDBOX_BASE_URL"] = str(settings["SANDBOX_BASE_URL"]).rstrip("/")
    settings["SANDBOX_FHIR_UPSTREAM"] = str(settings["SANDBOX_FHIR_UPSTREAM"]).rstrip("/")
    return settings


def load_clients(settings: Mapping[str, Any]) -> dict[str, ClientRegistration]:
    """Registrations from SANDBOX_CLIENTS, else SANDBOX_CLIENTS_FILE (TOML), else the default.

    The TOML file holds `[[clients]]` tables with the same keys; SANDBOX_CLIENTS from the
    environment is a JSON list. Raises ConfigError.
    """
    raw = settings.get("SANDBOX_CLIENTS")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise ConfigError(f"SANDBOX_CLIENTS is not a JSON list: {error}") from error
    if raw is not None and not isinstance(raw, list):
        raise ConfigError("SANDBOX_CLIENTS must be a list of client registrations")
    if raw is None and settings.get("SANDBOX_CLIENTS_FILE"):
        path = Path(str(settings["SANDBOX_CLIENTS_FILE"]))
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")).get("clients", [])
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read {path}: {error}") from error
    if raw is None:
        raw = [DEFAULT_CLIENT]
    clients = [ClientRegistration.from_mapping(item) for item in raw]
    return {c.client_id: c for c in clients}

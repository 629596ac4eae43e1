"""SMART discovery: ``{iss}/.well-known/smart-configuration``, with OpenID Connect discovery
under the same base for the issuer and signing keys when SMART's document lacks them.

https://hl7.org/fhir/smart-app-launch/conformance.html
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from symfhir.errors import DiscoveryError
from symfhir.smart.pkce import server_supports_s256


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of ``.well-known/smart-configuration`` a launch needs."""

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmartConfiguration:
        return cls(**data)


def discover(iss: str, timeout: float) -> SmartConfiguration:
    """Read the SMART configuration of the FHIR server ``iss``.

    Raises DiscoveryError when it cannot be read, is not a JSON object, lacks an http(s)
    authorization or token endpoint, or does not offer PKCE S256.
    """
    document = _get_json(f"{iss}/.well-known/smart-configuration", timeout)
    if not server_supports_s256(document.get("code_challenge_methods_supported")):
        raise DiscoveryError(
            "the EHR does not support PKCE S256 (code_challenge_methods_supported)"
        )
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint"):
        endpoints[name] = http_url(document.get(name))
        if endpoints[name] is None:
            raise DiscoveryError(f"the EHR's SMART configuration has no usable {name}")
    issuer = document.get("issuer")
    jwks_uri = http_url(document.get("jwks_uri"))
    if not isinstance(issuer, str) or jwks_uri is None:
        # SMART requires issuer and jwks_uri only with sso-openid-connect; OpenID Connect
        # discovery under the FHIR base may still have them.
        oidc = _openid_configuration(iss, timeout)
        issuer = issuer if isinstance(issuer, str) else oidc.get("issuer")
        jwks_uri = jwks_uri or http_url(oidc.get("jwks_uri"))
    return SmartConfiguration(
        issuer=issuer if isinstance(issuer, str) else None,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        jwks_uri=jwks_uri,
    )


def http_url(value: object) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname else None


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    try:
        response = requests.get(
            url, timeout=timeout, allow_redirects=False, headers={"Accept": "application/json"}
        )
    except requests.RequestException:
        raise DiscoveryError("the EHR's SMART configuration could not be reached") from None
    if response.status_code != 200:
        raise DiscoveryError(f"the EHR's SMART configuration answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise DiscoveryError("the EHR's SMART configuration is not JSON") from None
    if not isinstance(document, dict):
        raise DiscoveryError("the EHR's SMART configuration is not a JSON object")
    return document


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

"""PKCE (RFC 7636) as SMART requires it: S256 only, never ``plain``.

https://hl7.org/fhir/smart-app-launch/app-launch.html#considerations-for-pkce-support
"""

from __future__ import annotations

import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

METHOD = "S256"
VERIFIER_BYTES = 64  # 86 base64url characters: within RFC 7636's 43..128


def create_verifier() -> str:
    """A fresh, unpredictable code verifier."""
    return secrets.token_urlsafe(VERIFIER_BYTES)


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA-256(verifier)) without padding. Raises ValueError for a verifier RFC 7636
    does not allow (43..128 unreserved characters)."""
    if not 43 <= len(verifier) <= 128 or not verifier.isascii():
        raise ValueError("a PKCE verifier is 43 to 128 ASCII characters")
    return create_s256_code_challenge(verifier)


def server_supports_s256(methods: object) -> bool:
    """Whether ``code_challenge_methods_supported`` (from discovery) lists S256."""
    return isinstance(methods, list) and METHOD in methods

"""PKCE S256 (RFC 7636)."""

import base64
import hashlib

import pytest

from symfhir.smart import pkce

pytestmark = pytest.mark.unit


def test_s256_challenge_is_the_unpadded_base64url_sha256():
    verifier = pkce.create_verifier()
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce.s256_challenge(verifier) == expected
    assert len(expected) == 43


def test_verifiers_are_fresh_and_within_the_rfc_lengths():
    verifiers = {pkce.create_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    assert all(43 <= len(v) <= 128 for v in verifiers)


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "é" * 50])
def test_verifiers_the_rfc_does_not_allow_are_refused(verifier):
    with pytest.raises(ValueError):
        pkce.s256_challenge(verifier)


@pytest.mark.parametrize(
    ("methods", "supported"),
    [
        (["S256"], True),
        (["plain", "S256"], True),
        (["plain"], False),
        (None, False),
        ("S256", False),
    ],
)
def test_server_supports_s256(methods, supported):
    assert pkce.server_supports_s256(methods) is supported

"""id_token checks (signature, iss, aud, exp, nonce) and the multi-factor sign-in rule."""

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from symfhir.errors import IdTokenError, MfaRequiredError
from symfhir.smart.discovery import SmartConfiguration
from symfhir.smart.id_token import MfaPolicy, check_claims, check_mfa, shows_mfa, validate_id_token

pytestmark = pytest.mark.unit

ISSUER = "https://ehr.example.org"
CLIENT = "symfhir"
NONCE = "n-123"


@pytest.fixture(scope="module")
def ehr_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)


def id_token(key: RSAKey, **changes: object) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "dr1", "iat": now, "exp": now + 300}
    claims |= {"nonce": NONCE, "fhirUser": "Practitioner/dr1"}
    claims.update(changes)
    return jwt.encode({"alg": "RS256", "kid": "ehr-1"}, claims, key)


def public(key: RSAKey) -> KeySet:
    return KeySet.import_key_set(KeySet([key]).as_dict(private=False))


def test_good_token(ehr_key):
    claims = check_claims(id_token(ehr_key), public(ehr_key), ISSUER, CLIENT, NONCE)
    assert claims["fhirUser"] == "Practitioner/dr1"


@pytest.mark.parametrize(
    "changes",
    [{"nonce": "other"}, {"aud": "someone-else"}, {"iss": "https://evil.example.org"}, {"exp": 1}],
)
def test_bad_claims(ehr_key, changes):
    with pytest.raises(IdTokenError) as caught:
        check_claims(id_token(ehr_key, **changes), public(ehr_key), ISSUER, CLIENT, NONCE)
    assert caught.value.error == "invalid_id_token"


def test_missing_nonce(ehr_key):
    token = id_token(ehr_key, nonce=None)
    with pytest.raises(IdTokenError):
        check_claims(token, public(ehr_key), ISSUER, CLIENT, NONCE)


def test_bad_signature(ehr_key):
    other = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)
    with pytest.raises(IdTokenError, match="signature"):
        check_claims(id_token(other), public(ehr_key), ISSUER, CLIENT, NONCE)


def test_unsigned_token_is_refused(ehr_key):
    signed = id_token(ehr_key)
    body = signed.split(".")[1]
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    with pytest.raises(IdTokenError):
        check_claims(f"{header.decode()}.{body}.", public(ehr_key), ISSUER, CLIENT, NONCE)


@pytest.mark.parametrize("token", [None, "", 42])
def test_no_id_token(token):
    config = SmartConfiguration(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", None)
    with pytest.raises(IdTokenError, match="no id_token"):
        validate_id_token(token, config, CLIENT, NONCE, 2)


def test_no_keys_to_check_with(ehr_key):
    config = SmartConfiguration(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", None)
    with pytest.raises(IdTokenError, match="jwks_uri"):
        validate_id_token(id_token(ehr_key), config, CLIENT, NONCE, 2)


def test_unreachable_keys(ehr_key):
    config = SmartConfiguration(ISSUER, "x", "y", "http://127.0.0.1:9/jwks")
    with pytest.raises(IdTokenError, match="could not be read"):
        validate_id_token(id_token(ehr_key), config, CLIENT, NONCE, 2)


@pytest.mark.parametrize(
    ("claims", "acr", "mfa"),
    [
        ({"amr": ["pwd", "mfa"]}, None, True),
        ({"amr": ["mfa"]}, "urn:clinic:mfa", True),
        ({"amr": ["pwd"]}, None, False),
        ({"amr": "mfa"}, None, False),  # amr is a JSON array (RFC 8176), not a string
        ({}, None, False),
        ({"acr": "urn:clinic:mfa"}, "urn:clinic:mfa", True),
        ({"acr": "urn:clinic:mfa"}, None, False),
        ({"acr": "urn:clinic:pwd", "amr": ["pwd"]}, "urn:clinic:mfa", False),
    ],
)
def test_shows_mfa(claims, acr, mfa):
    assert shows_mfa(claims, acr) is mfa


def test_mfa_is_checked_only_when_required():
    check_mfa({"amr": ["pwd"]}, MfaPolicy())
    check_mfa({"amr": ["pwd", "mfa"]}, MfaPolicy(required=True))
    check_mfa({"acr": "gold"}, MfaPolicy(required=True, acr="gold"))
    with pytest.raises(MfaRequiredError) as caught:
        check_mfa({"amr": ["pwd"]}, MfaPolicy(required=True))
    assert caught.value.error == "insufficient_user_authentication"
    assert isinstance(caught.value, IdTokenError)

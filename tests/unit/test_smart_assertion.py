"""The client's key and its private_key_jwt assertions (RFC 7523), the one signer."""

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import KeySet

from symfhir.errors import ConfigError
from symfhir.smart.assertion import ASSERTION_LIFETIME_S, AssertionAuth, ClientKey

pytestmark = pytest.mark.unit

TOKEN_URL = "https://ehr.example.org/auth/token"


def pem(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def verify(assertion: str, key: ClientKey):
    return jwt.decode(assertion, KeySet.import_key_set(key.jwks()), algorithms=[key.alg])


def test_algorithm_follows_the_key(rsa_pem):
    assert ClientKey.from_pem(rsa_pem).alg == "RS384"
    assert ClientKey.from_pem(pem(ec.generate_private_key(ec.SECP384R1()))).alg == "ES384"
    assert ClientKey.generate().alg == "ES384"


def test_assertion_claims_and_header(rsa_pem):
    key = ClientKey.from_pem(rsa_pem, kid="k1")
    token = verify(key.assertion("symfhir", TOKEN_URL), key)
    assert token.header == {"alg": "RS384", "kid": "k1", "typ": "JWT"}
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "symfhir"
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME_S <= 300
    assert abs(claims["iat"] - time.time()) < 5


def test_every_assertion_has_a_fresh_jti():
    key = ClientKey.generate()
    jtis = {verify(key.assertion("a", TOKEN_URL), key).claims["jti"] for _ in range(10)}
    assert len(jtis) == 10


def test_authlib_client_auth_signs_a_fresh_assertion_each_time():
    key = ClientKey.generate()
    auth = AssertionAuth(TOKEN_URL, key)

    class Client:
        client_id = "symfhir"

    first, second = (auth.sign(Client(), TOKEN_URL) for _ in range(2))
    assert verify(first, key).claims["jti"] != verify(second, key).claims["jti"]
    assert auth.alg == "ES384"


def test_jwks_is_public_only():
    key = ClientKey.generate(kid="k2")
    (jwk,) = key.jwks()["keys"]
    assert "d" not in jwk
    assert jwk["kid"] == "k2" and jwk["alg"] == "ES384" and jwk["use"] == "sig"
    assert repr(key) == "ClientKey(alg='ES384', kid='k2')"


def test_kid_defaults_to_the_thumbprint(rsa_pem):
    key = ClientKey.from_pem(rsa_pem)
    assert key.kid == key.key.thumbprint()


def test_load_names_the_file(tmp_path, rsa_pem):
    path = tmp_path / "key.pem"
    with pytest.raises(ConfigError, match="cannot read"):
        ClientKey.load(path, None)
    path.write_bytes(b"not a key")
    with pytest.raises(ConfigError, match=str(path)):
        ClientKey.load(path, None)
    path.write_bytes(rsa_pem)
    assert ClientKey.load(path, "k3").kid == "k3"
    assert ClientKey.load(None, None).alg == "ES384"


def test_an_ec_key_on_another_curve_is_refused():
    with pytest.raises(ConfigError, match="P-384"):
        ClientKey.from_pem(pem(ec.generate_private_key(ec.SECP256R1())))

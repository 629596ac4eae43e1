"""Request signing. The token endpoint is pytest-httpserver on loopback; keys are made here."""

import json
import time
import types
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug import Request, Response

import symfhir.fhir.auth as auth_module
from symfhir.errors import ConfigError, FhirAuthError, FhirTransportError
from symfhir.fhir import (
    BackendServicesAuth,
    BearerAuth,
    FhirClient,
    ServerConfig,
    SmartTokenAuth,
    make_auth,
)
from symfhir.fhir.auth import ASSERTION_LIFETIME_S, load_private_key

pytestmark = pytest.mark.unit

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PATIENT = {"resourceType": "Patient", "id": "1"}


def pem(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


KEYS = {
    "RS384": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
}


class Endpoint:
    """Records what a handler saw and answers from a list (the last answer repeats)."""

    def __init__(self, *answers: Response) -> None:
        self.answers = answers
        self.forms: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, request: Request) -> Response:
        self.forms.append(parse_qs(request.get_data(as_text=True)))
        self.headers.append(dict(request.headers))
        return self.answers[min(len(self.forms), len(self.answers)) - 1]


def token_answer(access_token: str, expires_in: int = 300, **extra: str) -> Response:
    body = {"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}
    return Response(json.dumps({**body, **extra}), content_type="application/json")


def fhir_requiring(token: str):
    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return Response("{}", status=401, content_type="application/fhir+json")
        return Response(json.dumps(PATIENT), content_type="application/fhir+json")

    return handler


@pytest.fixture
def clock(monkeypatch):
    """The auth module's clock, moved by hand."""
    now = [time.time()]
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


@pytest.fixture
def fhir_config(httpserver) -> ServerConfig:
    return ServerConfig(base_url=httpserver.url_for("/fhir"), retries=0)


def test_bearer_auth_sets_the_header_and_hides_the_token(httpserver, fhir_config):
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("s3cret"))
    auth = BearerAuth("s3cret")
    with FhirClient(fhir_config, auth) as client:
        assert client.read("Patient", "1") == PATIENT
    assert "s3cret" not in repr(auth)


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_backend_services_signs_a_valid_assertion_and_caches_the_token(
    httpserver, fhir_config, algorithm
):
    token_url = httpserver.url_for("/token")
    tokens = Endpoint(token_answer("tok-1"))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("tok-1"))
    auth = BackendServicesAuth(
        token_url, "symfhir-app", pem(KEYS[algorithm]), "key-1", algorithm, "system/*.rs"
    )
    with FhirClient(fhir_config, auth) as client:
        client.read("Patient", "1")
        client.read("Patient", "1")
    assert len(tokens.forms) == 1  # cached

    form = tokens.forms[0]
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["system/*.rs"]
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    public = (RSAKey if algorithm == "RS384" else ECKey).import_key(
        KEYS[algorithm]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = jwt.decode(form["client_assertion"][0], public, algorithms=[algorithm])
    assert token.header == {"alg": algorithm, "kid": "key-1", "typ": "JWT"}
    claims = token.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "symfhir-app"},
        sub={"essential": True, "value": "symfhir-app"},
        aud={"essential": True, "value": token_url},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(claims)
    assert claims["exp"] - time.time() <= 300
    assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME_S


def test_backend_services_renews_before_expiry_with_a_fresh_jti(httpserver, fhir_config, clock):
    tokens = Endpoint(token_answer("tok-1", 300), token_answer("tok-2", 300))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    seen: list[str] = []

    def fhir_any(request: Request) -> Response:
        seen.append(request.headers["Authorization"])
        return Response(json.dumps(PATIENT), content_type="application/fhir+json")

    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_any)
    key = pem(KEYS["RS384"])
    auth = BackendServicesAuth(
        httpserver.url_for("/token"), "app", key, "key-1", "RS384", "system/*.rs"
    )
    with FhirClient(fhir_config, auth) as client:
        client.read("Patient", "1")
        clock[0] += 200  # not yet within a minute of expiry
        client.read("Patient", "1")
        clock[0] += 50  # now it is
        client.read("Patient", "1")
    assert seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    verify = load_private_key(key, "RS384")
    jtis = {
        jwt.decode(form["client_assertion"][0], verify, algorithms=["RS384"]).claims["jti"]
        for form in tokens.forms
    }
    assert len(jtis) == 2


def test_token_endpoint_error_is_an_auth_error_with_its_description(httpserver, fhir_config):
    refusal = Response(
        json.dumps({"error": "invalid_client", "error_description": "unknown key id"}),
        status=401,
        content_type="application/json",
    )
    httpserver.expect_request("/token", method="POST").respond_with_response(refusal)
    auth = BackendServicesAuth(
        httpserver.url_for("/token"), "app", pem(KEYS["ES384"]), "key-9", "ES384", "system/*.rs"
    )
    with FhirClient(fhir_config, auth) as client, pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "1")
    assert str(caught.value) == (
        "get backend services access token: invalid_client: unknown key id"
    )


def test_token_endpoint_answering_html_is_an_auth_error(httpserver, fhir_config):
    page = Response("<html>login</html>", content_type="text/html")
    httpserver.expect_request("/token", method="POST").respond_with_response(page)
    auth = BackendServicesAuth(
        httpserver.url_for("/token"), "app", pem(KEYS["RS384"]), "k", "RS384", "system/*.rs"
    )
    with FhirClient(fhir_config, auth) as client, pytest.raises(FhirAuthError, match="JSON"):
        client.read("Patient", "1")


def test_token_endpoint_down_is_a_transport_error(httpserver, fhir_config):
    down = Response("busy", status=503, content_type="text/plain")
    httpserver.expect_request("/token", method="POST").respond_with_response(down)
    auth = BackendServicesAuth(
        httpserver.url_for("/token"), "app", pem(KEYS["RS384"]), "k", "RS384", "system/*.rs"
    )
    with FhirClient(fhir_config, auth) as client, pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert caught.value.status == 503


def test_smart_token_is_refreshed_shortly_before_it_expires(httpserver, fhir_config, clock):
    tokens = Endpoint(token_answer("new", 3600, refresh_token="r2", scope="patient/*.rs"))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("new"))
    stored: list[dict] = []
    auth = SmartTokenAuth(
        {"access_token": "old", "refresh_token": "r1", "expires_in": 3600},
        httpserver.url_for("/token"),
        "app",
        client_secret="app-secret",
        on_refresh=stored.append,
    )
    clock[0] += 3600 - 30
    with FhirClient(fhir_config, auth) as client:
        assert client.read("Patient", "1") == PATIENT
    assert tokens.forms == [{"grant_type": ["refresh_token"], "refresh_token": ["r1"]}]
    assert tokens.headers[0]["Authorization"].startswith("Basic ")  # confidential client
    assert [(t["access_token"], t["refresh_token"]) for t in stored] == [("new", "r2")]


def test_smart_refresh_refused_is_an_auth_error(httpserver, fhir_config, clock):
    refusal = Response(
        json.dumps({"error": "invalid_grant", "error_description": "refresh token expired"}),
        status=400,
        content_type="application/json",
    )
    httpserver.expect_request("/token", method="POST").respond_with_response(refusal)
    stored: list[dict] = []
    auth = SmartTokenAuth(
        {"access_token": "old", "refresh_token": "r1", "expires_in": 60},
        httpserver.url_for("/token"),
        "app",
        on_refresh=stored.append,
    )
    clock[0] += 60
    with FhirClient(fhir_config, auth) as client, pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "1")
    assert str(caught.value) == ("refresh SMART access token: invalid_grant: refresh token expired")
    assert stored == []


def test_smart_token_without_refresh_token_is_used_as_is(httpserver, fhir_config, clock):
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("old"))
    auth = SmartTokenAuth({"access_token": "old", "expires_in": 60}, "http://unused/token", "app")
    clock[0] += 3600
    with FhirClient(fhir_config, auth) as client:
        assert client.read("Patient", "1") == PATIENT


def test_make_auth_kinds(tmp_path):
    assert make_auth(ServerConfig()) is None
    assert isinstance(make_auth(ServerConfig(auth="bearer", token="t")), BearerAuth)
    smart = ServerConfig(auth="smart", token_url="https://a.example/token", client_id="app")
    with pytest.raises(ConfigError, match="token response of a SMART launch"):
        make_auth(smart)
    made = make_auth(smart, token_response={"access_token": "a"})
    assert isinstance(made, SmartTokenAuth)
    made.close()

    key = tmp_path / "key.pem"
    backend = ServerConfig(
        auth="backend-services",
        token_url="https://a.example/token",
        client_id="app",
        private_key_path=key,
        key_id="k1",
        algorithm="ES384",
        scope="system/*.rs",
    )
    with pytest.raises(ConfigError, match="cannot read"):
        make_auth(backend)
    key.write_bytes(pem(KEYS["ES384"]))
    made = make_auth(backend)
    assert isinstance(made, BackendServicesAuth)
    made.close()


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        (pem(KEYS["RS384"]), "ES384", "not a PEM EC key"),
        (pem(KEYS["ES384"]), "RS384", "not a PEM RSA key"),
        (pem(ec.generate_private_key(ec.SECP256R1())), "ES384", "curve P-384"),
        (b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", "RS384", "not a PEM"),
        (
            KEYS["RS384"]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "RS384",
            "public key, not a private key",
        ),
    ],
)
def test_unusable_private_keys(key, algorithm, message):
    with pytest.raises(ConfigError, match=message):
        load_private_key(key, algorithm)


def test_smart_refresh_with_the_apps_key_sends_a_client_assertion(httpserver, fhir_config, clock):
    from symfhir.smart.assertion import ClientKey

    tokens = Endpoint(token_answer("new", 3600, refresh_token="r2"))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("new"))
    key = ClientKey.generate(kid="app-1")
    auth = SmartTokenAuth(
        {"access_token": "old", "refresh_token": "r1", "expires_in": 60},
        httpserver.url_for("/token"),
        "app",
        client_key=key,
    )
    clock[0] += 60
    with FhirClient(fhir_config, auth) as client:
        assert client.read("Patient", "1") == PATIENT
    (form,) = tokens.forms
    assert form["grant_type"] == ["refresh_token"]
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert "Authorization" not in tokens.headers[0]
    verified = jwt.decode(form["client_assertion"][0], key.key, algorithms=["ES384"])
    assert verified.header["kid"] == "app-1"
    assert verified.claims["aud"] == httpserver.url_for("/token")


def test_backend_services_takes_the_apps_client_key(httpserver, fhir_config):
    from symfhir.smart.assertion import ClientKey

    tokens = Endpoint(token_answer("tok-1"))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(fhir_requiring("tok-1"))
    key = ClientKey.generate(kid="app-2")
    auth = BackendServicesAuth(httpserver.url_for("/token"), "app", key, scope="system/*.rs")
    with FhirClient(fhir_config, auth) as client:
        client.read("Patient", "1")
    token = jwt.decode(tokens.forms[0]["client_assertion"][0], key.key, algorithms=["ES384"])
    assert token.header == {"alg": "ES384", "kid": "app-2", "typ": "JWT"}

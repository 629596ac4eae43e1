"""`/token`: code + PKCE, client authentication, id_token, launch context, refresh."""

from __future__ import annotations

import base64
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.sandbox.conftest import BASE, FHIR, PATIENT, PRACTITIONER, REDIRECT, assertion

pytestmark = pytest.mark.unit


def code_form(code: str, verifier: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        **extra,
    }


def test_code_exchange_returns_smart_token(client, get_code, token_request):
    code, verifier = get_code()
    response = token_request(**code_form(code, verifier))
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"].split() == [
        "openid",
        "fhirUser",
        "launch",
        "offline_access",
        "patient/*.rs",
        "patient/Observation.c",
    ]
    assert token["patient"] == PATIENT
    assert token["need_patient_banner"] is True
    assert token["smart_style_url"] == f"{BASE}/smart-style.json"
    assert token["refresh_token"]

    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json)
    id_token = jwt.decode(token["id_token"], keys).claims
    assert id_token["iss"] == FHIR == client.get("/.well-known/smart-configuration").json["issuer"]
    assert id_token["aud"] == "symfhir"
    assert id_token["sub"] == PRACTITIONER
    assert id_token["fhirUser"] == f"Practitioner/{PRACTITIONER}"
    assert id_token["nonce"] == "n-1"
    assert id_token["exp"] > time.time()
    access = jwt.decode(token["access_token"], keys).claims
    assert access["patient"] == PATIENT and access["client_id"] == "symfhir"


def test_no_refresh_token_without_offline_access(get_code, token_request):
    code, verifier = get_code(scope="launch patient/*.rs")
    token = token_request(**code_form(code, verifier)).json
    assert "refresh_token" not in token and "id_token" not in token


def test_wrong_verifier(get_code, token_request):
    code, _ = get_code()
    response = token_request(**code_form(code, "x" * 50))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_missing_verifier(get_code, token_request):
    code, _ = get_code()
    response = token_request(**code_form(code, None))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_code_is_single_use(get_code, token_request):
    code, verifier = get_code()
    assert token_request(**code_form(code, verifier)).status_code == 200
    again = token_request(**code_form(code, verifier))
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"


def test_redirect_uri_must_match(get_code, token_request):
    code, verifier = get_code()
    response = token_request(**code_form(code, verifier, redirect_uri="http://localhost:5000/x"))
    assert response.json["error"] == "invalid_grant"


def test_es384_assertion(get_code, token_request, ec_key):
    code, verifier = get_code()
    assert token_request(key=ec_key, alg="ES384", **code_form(code, verifier)).status_code == 200


def _post_with_assertion(client, code, verifier, signed):
    return client.post(
        "/token",
        data={
            **code_form(code, verifier),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )


@pytest.mark.parametrize(
    ("alg", "claims"),
    [
        ("RS384", {"exp": int(time.time()) - 120}),  # expired
        ("RS384", {"exp": int(time.time()) + 3600}),  # more than 5 minutes ahead
        ("RS384", {"aud": f"{BASE}/authorize"}),
        ("RS384", {"iss": "someone-else"}),
        ("RS384", {"jti": None}),
        ("RS256", {}),  # SMART asks for RS384 or ES384
    ],
)
def test_bad_assertions(client, get_code, rsa_key, alg, claims):
    code, verifier = get_code()
    payload = {k: v for k, v in claims.items() if v is not None}
    signed = assertion(rsa_key, alg, **payload)
    if claims.get("jti", "") is None:
        body = jwt.decode(signed, rsa_key, algorithms=[alg]).claims
        body.pop("jti")
        signed = jwt.encode({"alg": alg, "kid": rsa_key.kid}, body, rsa_key, algorithms=[alg])
    response = _post_with_assertion(client, code, verifier, signed)
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"


def test_assertion_signed_by_unknown_key(client, get_code):
    from joserfc.jwk import RSAKey

    stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
    code, verifier = get_code()
    response = _post_with_assertion(client, code, verifier, assertion(stranger, "RS384"))
    assert response.json["error"] == "invalid_client"


def test_replayed_assertion(client, get_code, rsa_key):
    signed = assertion(rsa_key, "RS384")
    code, verifier = get_code()
    assert _post_with_assertion(client, code, verifier, signed).status_code == 200
    code, verifier = get_code()
    response = _post_with_assertion(client, code, verifier, signed)
    assert response.json["error"] == "invalid_client"
    assert "JWT ID" in response.json["error_description"]


def test_jwks_uri_is_fetched(httpserver, rsa_key, ec_key):
    from smart_app.sandbox import create_sandbox
    from tests.sandbox.conftest import authorize_params, pkce, redirect_params

    httpserver.expect_request("/jwks.json").respond_with_json(
        {"keys": [rsa_key.as_dict(private=False)]}
    )
    app = create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_CLIENTS": [
                {
                    "client_id": "symfhir",
                    "redirect_uris": [REDIRECT],
                    "jwks_uri": httpserver.url_for("/jwks.json"),
                }
            ],
        }
    )
    client = app.test_client()
    verifier, challenge = pkce()
    code = redirect_params(
        client.get("/authorize", query_string=authorize_params(client, challenge))
    )["code"]
    response = _post_with_assertion(client, code, verifier, assertion(rsa_key, "RS384"))
    assert response.status_code == 200, response.json


def test_client_secret_basic(client, get_code):
    code, verifier = get_code(client_id="secret-app")
    good = base64.b64encode(b"secret-app:s3cret-for-tests").decode()
    bad = base64.b64encode(b"secret-app:wrong").decode()
    response = client.post(
        "/token", data=code_form(code, verifier), headers={"Authorization": f"Basic {bad}"}
    )
    assert response.status_code == 401
    code, verifier = get_code(client_id="secret-app")
    response = client.post(
        "/token", data=code_form(code, verifier), headers={"Authorization": f"Basic {good}"}
    )
    assert response.status_code == 200, response.json


def test_public_client(client, get_code):
    code, verifier = get_code(client_id="public-app", scope="launch patient/*.read")
    response = client.post("/token", data=code_form(code, verifier, client_id="public-app"))
    assert response.status_code == 200, response.json
    assert response.json["patient"] == PATIENT


def test_confidential_client_cannot_skip_auth(client, get_code):
    code, verifier = get_code()
    response = client.post("/token", data=code_form(code, verifier, client_id="symfhir"))
    assert response.json["error"] == "invalid_client"


def test_refresh_rotates_and_keeps_context(get_code, token_request):
    code, verifier = get_code()
    first = token_request(**code_form(code, verifier)).json
    second = token_request(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200, second.json
    token = second.json
    assert token["patient"] == PATIENT
    assert token["scope"] == first["scope"]
    assert token["refresh_token"] != first["refresh_token"]
    reused = token_request(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.json["error"] == "invalid_grant"


def test_refresh_may_narrow_but_not_widen(get_code, token_request):
    code, verifier = get_code()
    refresh = token_request(**code_form(code, verifier)).json["refresh_token"]
    widened = token_request(
        grant_type="refresh_token", refresh_token=refresh, scope="patient/*.cruds"
    )
    assert widened.json["error"] == "invalid_scope"
    narrowed = token_request(
        grant_type="refresh_token", refresh_token=refresh, scope="launch patient/*.rs"
    )
    assert narrowed.json["scope"] == "launch patient/*.rs"

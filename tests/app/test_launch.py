"""The SMART launch: good path, PKCE, and every launch error page."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc.jwk import RSAKey

from tests.app.conftest import launch, start_launch

pytestmark = pytest.mark.unit


def error_code(response) -> str:
    text = response.get_data(as_text=True)
    marker = 'data-error-code="'
    assert marker in text, text
    assert "Traceback" not in text
    return text.split(marker, 1)[1].split('"', 1)[0]


def test_ehr_launch_redirects_to_authorize_with_pkce_s256(client, fake_ehr, app):
    location = start_launch(client, fake_ehr)
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fake_ehr.server.url_for(
        "/auth/authorize"
    )
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert params["response_type"] == "code"
    assert params["client_id"] == "symfhir"
    assert params["redirect_uri"] == "http://localhost:5000/callback"
    assert params["launch"] == "L1"
    assert params["aud"] == fake_ehr.iss
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256, no padding
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    scopes = params["scope"].split()
    assert {"launch", "openid", "fhirUser", "patient/AuditEvent.c"} <= set(scopes)
    assert "launch/patient" not in scopes


def test_state_nonce_and_verifier_are_fresh_per_launch(client, fake_ehr):
    first = parse_qs(urlsplit(start_launch(client, fake_ehr)).query)
    second = parse_qs(urlsplit(start_launch(client, fake_ehr)).query)
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_standalone_launch_asks_for_launch_patient(client, fake_ehr):
    location = start_launch(client, fake_ehr, launch=None)
    params = parse_qs(urlsplit(location).query)
    assert "launch" not in params
    scopes = params["scope"][0].split()
    assert "launch/patient" in scopes and "launch" not in scopes


def test_good_path_checks_pkce_and_client_assertion(client, fake_ehr, app):
    response = launch(client, fake_ehr)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert fake_ehr.assertion_problems == []
    assert not fake_ehr.codes  # the code was redeemed
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="summary-title"' in page.get_data(as_text=True)


def test_pkce_verifier_matches_challenge(client, fake_ehr, app):
    location = start_launch(client, fake_ehr)
    code, params = fake_ehr.authorize(location)
    client.get("/callback?" + urlencode({"code": code, "state": params["state"]}))
    (token_request,) = fake_ehr.requests_to("/auth/token")
    verifier = token_request.form["code_verifier"]
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == params["code_challenge"]


def test_client_assertion_jti_is_unique(client, fake_ehr):
    assert launch(client, fake_ehr).status_code == 303
    assert launch(client, fake_ehr).status_code == 303
    assert len(fake_ehr.seen_jti) == 2
    assert fake_ehr.assertion_problems == []


def test_jwks_publishes_the_public_key_only(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json["keys"]
    assert key["alg"] == "ES384" and key["kty"] == "EC" and key["kid"]
    assert "d" not in key


@pytest.mark.parametrize("iss", ["https://evil.example.org/fhir", "http://localhost:5100/fhir"])
def test_untrusted_iss_is_refused_without_contacting_it(client, fake_ehr, httpserver, iss):
    response = client.get("/launch?" + urlencode({"iss": iss, "launch": "x"}))
    assert response.status_code == 400
    assert error_code(response) == "untrusted_iss"
    assert "Location" not in response.headers
    assert httpserver.log == []


def test_untrusted_iss_on_the_fake_server_sees_no_request(client, fake_ehr, httpserver):
    other = httpserver.url_for("/other-fhir")
    response = client.get("/launch?" + urlencode({"iss": other, "launch": "x"}))
    assert error_code(response) == "untrusted_iss"
    assert httpserver.log == []


def test_launch_without_iss_lists_trusted_servers(client, fake_ehr):
    response = client.get("/launch")
    assert response.status_code == 200
    assert 'id="launch-server-1"' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "override",
    [
        {"code_challenge_methods_supported": ["plain"]},
        {"code_challenge_methods_supported": None},
        {"token_endpoint": "not a url"},
    ],
)
def test_discovery_problems_give_a_page(client, fake_ehr, override):
    fake_ehr.discovery_overrides = override
    response = client.get("/launch?" + urlencode({"iss": fake_ehr.iss, "launch": "L1"}))
    assert response.status_code == 502
    assert error_code(response) == "discovery_failed"


def test_unreachable_discovery_gives_a_page(app, fake_ehr):
    app.config["SYMFHIR_TRUSTED_ISS"].append("http://127.0.0.1:9/fhir")
    response = app.test_client().get("/launch?iss=http://127.0.0.1:9/fhir&launch=x")
    assert response.status_code == 502
    assert error_code(response) == "discovery_failed"


@pytest.mark.parametrize("state", [None, "", "forged-state"])
def test_state_mismatch(client, fake_ehr, state):
    location = start_launch(client, fake_ehr)
    code, _ = fake_ehr.authorize(location)
    query = {"code": code} | ({"state": state} if state is not None else {})
    response = client.get("/callback?" + urlencode(query))
    assert response.status_code == 400
    assert error_code(response) == "state_mismatch"
    assert fake_ehr.requests_to("/auth/token") == []


def test_state_from_another_browser_is_refused(app, fake_ehr):
    location = start_launch(app.test_client(), fake_ehr)
    code, params = fake_ehr.authorize(location)
    other = app.test_client()
    response = other.get("/callback?" + urlencode({"code": code, "state": params["state"]}))
    assert error_code(response) == "state_mismatch"


def test_state_is_single_use(client, fake_ehr):
    location = start_launch(client, fake_ehr)
    code, params = fake_ehr.authorize(location)
    query = "/callback?" + urlencode({"code": code, "state": params["state"]})
    assert client.get(query).status_code == 303
    assert error_code(client.get(query)) == "state_mismatch"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("access_denied", 403, "access_denied"),
        ("invalid_scope", 400, "invalid_scope"),
        ("server_error", 400, "authorization_error"),
        ("<script>", 400, "authorization_error"),
    ],
)
def test_authorization_errors(client, fake_ehr, error, status, code):
    location = start_launch(client, fake_ehr)
    state = parse_qs(urlsplit(location).query)["state"][0]
    response = client.get("/callback?" + urlencode({"error": error, "state": state}))
    assert response.status_code == status
    assert error_code(response) == code
    assert "<script>" not in response.get_data(as_text=True)


def test_token_endpoint_error(client, fake_ehr):
    fake_ehr.token_error = "invalid_client"
    response = launch(client, fake_ehr)
    assert response.status_code == 502
    assert error_code(response) == "token_error"
    assert "invalid_client" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "claims",
    [{"nonce": "other"}, {"aud": "someone-else"}, {"iss": "https://evil.example.org"}, {"exp": 1}],
)
def test_bad_id_token_claims(client, fake_ehr, claims):
    fake_ehr.id_token_claims = claims
    response = launch(client, fake_ehr)
    assert response.status_code == 401
    assert error_code(response) == "invalid_id_token"
    assert client.get("/").status_code == 401  # no session was made


def test_bad_id_token_signature(client, fake_ehr):
    fake_ehr.id_token_key = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)
    response = launch(client, fake_ehr)
    assert response.status_code == 401
    assert error_code(response) == "invalid_id_token"


def test_no_patient_in_context(client, fake_ehr):
    fake_ehr.patient_id = ""
    response = launch(client, fake_ehr)
    assert response.status_code == 400
    assert error_code(response) == "no_patient"


def test_expired_session_page(client):
    response = client.get("/")
    assert response.status_code == 401
    assert error_code(response) == "session_expired"


def test_issuer_and_jwks_from_openid_configuration(client, fake_ehr, httpserver):
    import json

    from werkzeug import Response

    fake_ehr.discovery_overrides = {"issuer": None, "jwks_uri": None}
    document = {"issuer": fake_ehr.issuer, "jwks_uri": httpserver.url_for("/auth/jwks")}
    httpserver.expect_request("/fhir/.well-known/openid-configuration").respond_with_handler(
        lambda _: Response(json.dumps(document), content_type="application/json")
    )
    assert launch(client, fake_ehr).status_code == 303


def test_no_jwks_anywhere_fails_id_token_validation(client, fake_ehr):
    fake_ehr.discovery_overrides = {"jwks_uri": None}
    response = launch(client, fake_ehr)
    assert error_code(response) == "invalid_id_token"


# -- staff MFA (privacy policy §5) ------------------------------------------------------------


def test_mfa_is_off_by_default(client, fake_ehr, app):
    assert app.config["SYMFHIR_REQUIRE_MFA"] is False
    fake_ehr.id_token_claims = {"amr": ["pwd"]}
    assert launch(client, fake_ehr).status_code == 303


def test_mfa_setting_from_the_environment():
    from smart_app.config import load_settings

    settings = load_settings(
        environ={"SYMFHIR_REQUIRE_MFA": "true", "SYMFHIR_REQUIRED_ACR": "urn:clinic:2fa"}
    )
    assert settings["SYMFHIR_REQUIRE_MFA"] is True
    assert settings["SYMFHIR_REQUIRED_ACR"] == "urn:clinic:2fa"


@pytest.mark.parametrize("claims", [{}, {"amr": ["pwd"]}, {"amr": "mfa"}, {"acr": "urn:x"}])
def test_launch_without_mfa_is_refused_when_required(client, fake_ehr, app, claims):
    app.config["SYMFHIR_REQUIRE_MFA"] = True
    fake_ehr.id_token_claims = claims
    response = launch(client, fake_ehr)
    assert response.status_code == 403
    assert error_code(response) == "mfa_required"
    assert "multi-factor authentication" in response.get_data(as_text=True)
    assert client.get("/").status_code == 401  # no session was made


def test_a_refused_sign_in_ends_the_earlier_one(client, fake_ehr, app):
    assert launch(client, fake_ehr).status_code == 303
    app.config["SYMFHIR_REQUIRE_MFA"] = True
    assert launch(client, fake_ehr).status_code == 403
    assert client.get("/").status_code == 401


@pytest.mark.parametrize(
    ("claims", "acr"),
    [
        ({"amr": ["pwd", "mfa"]}, None),
        ({"acr": "urn:clinic:2fa", "amr": ["pwd"]}, "urn:clinic:2fa"),
    ],
)
def test_launch_with_mfa_is_accepted_when_required(client, fake_ehr, app, claims, acr):
    app.config["SYMFHIR_REQUIRE_MFA"] = True
    app.config["SYMFHIR_REQUIRED_ACR"] = acr
    fake_ehr.id_token_claims = claims
    assert launch(client, fake_ehr).status_code == 303
    assert client.get("/").status_code == 200


# -- the scopes asked for ---------------------------------------------------------------------


def requested_scopes(client, fake_ehr) -> list[str]:
    return parse_qs(urlsplit(start_launch(client, fake_ehr)).query)["scope"][0].split()


def test_document_reference_is_asked_for_statements_only(client, fake_ehr):
    scopes = requested_scopes(client, fake_ehr)
    assert [s for s in scopes if "DocumentReference" in s] == ["patient/DocumentReference.crs"]


def test_document_reference_is_asked_for_where_the_server_needs_the_fallback(
    client, fake_ehr, httpserver
):
    resources = [
        {"type": t, "interaction": [{"code": "read"}, {"code": "create"}]}
        for t in ("Patient", "Media", "DocumentReference")
    ]
    resources.append({"type": "Consent", "interaction": [{"code": "read"}]})
    httpserver.expect_request("/fhir/metadata").respond_with_json(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": resources}],
        }
    )
    scopes = requested_scopes(client, fake_ehr)
    assert [s for s in scopes if "DocumentReference" in s] == [
        "patient/DocumentReference.crs",
        "patient/DocumentReference.crus",
    ]

"""The launch steps without a web framework: authorize URL, callback checks, code exchange
with private_key_jwt and PKCE, id_token and MFA, against a fake EHR on loopback."""

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug import Response

from symfhir.errors import AuthorizationError, IdTokenError, MfaRequiredError, TokenError
from symfhir.smart import launch as smart_launch
from symfhir.smart.assertion import ClientKey
from symfhir.smart.backend_services import backend_session, fetch_system_token
from symfhir.smart.discovery import discover
from symfhir.smart.id_token import MfaPolicy
from symfhir.smart.launch import PendingLaunch, SmartClient
from tests.app.fake_ehr import FakeEhr

pytestmark = pytest.mark.unit

SCOPE = "openid fhirUser launch patient/Patient.r patient/Consent.crus"


@pytest.fixture
def fake(httpserver) -> FakeEhr:
    return FakeEhr(httpserver)


@pytest.fixture
def client(fake) -> SmartClient:
    key = ClientKey.generate()
    fake.app_jwks = key.jwks()
    return SmartClient("symfhir", "http://localhost:5000/callback", key, SCOPE, timeout=5)


def authorize(fake: FakeEhr, client: SmartClient, launch: str | None = "L1"):
    pending = smart_launch.start_launch(fake.iss, discover(fake.iss, 5))
    url = smart_launch.authorize_url(pending, client, launch)
    code, params = fake.authorize(url)
    return pending, code, params


def test_state_nonce_and_verifier_are_fresh(fake):
    config = discover(fake.iss, 5)
    first, second = (smart_launch.start_launch(fake.iss, config) for _ in range(2))
    for name in ("state", "nonce", "code_verifier"):
        assert getattr(first, name) != getattr(second, name)
        assert len(getattr(first, name)) >= 43
    assert PendingLaunch.from_dict(json.loads(json.dumps(first.to_dict()))) == first


def test_ehr_launch_authorize_url(fake, client):
    pending, _, params = authorize(fake, client)
    assert params["response_type"] == "code"
    assert params["client_id"] == "symfhir"
    assert params["redirect_uri"] == client.redirect_uri
    assert params["aud"] == fake.iss
    assert params["launch"] == "L1"
    assert params["state"] == pending.state and params["nonce"] == pending.nonce
    assert params["code_challenge_method"] == "S256"
    digest = hashlib.sha256(pending.code_verifier.encode()).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert params["scope"] == SCOPE


def test_standalone_launch_asks_for_launch_patient(fake, client):
    _, _, params = authorize(fake, client, launch=None)
    scopes = params["scope"].split()
    assert "launch/patient" in scopes and "launch" not in scopes and "launch" not in params


def test_authorize_endpoint_with_a_query_keeps_it(fake, client):
    fake.discovery_overrides = {"authorization_endpoint": fake.server.url_for("/auth?tenant=a")}
    pending = smart_launch.start_launch(fake.iss, discover(fake.iss, 5))
    query = parse_qs(urlsplit(smart_launch.authorize_url(pending, client, "L1")).query)
    assert query["tenant"] == ["a"] and query["state"] == [pending.state]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"error": "access_denied", "state": "s"}, "access_denied"),
        ({"error": "invalid_scope"}, "invalid_scope"),
        ({"error": "<script>"}, "unknown"),
        ({"code": "c"}, "mismatching_state"),
    ],
)
def test_callback_errors(params, error):
    with pytest.raises(AuthorizationError) as caught:
        smart_launch.check_callback(params, None)
    assert caught.value.error == error
    assert "<script>" not in str(caught.value)


@pytest.mark.parametrize("code", [None, "", "x" * 3000])
def test_callback_without_a_usable_code(fake, code):
    pending = smart_launch.start_launch(fake.iss, discover(fake.iss, 5))
    params = {"state": pending.state} | ({"code": code} if code is not None else {})
    with pytest.raises(AuthorizationError) as caught:
        smart_launch.check_callback(params, pending)
    assert caught.value.error == "invalid_request"


def test_complete_launch(fake, client):
    pending, code, params = authorize(fake, client)
    got_pending, got_code = smart_launch.check_callback(
        {"state": params["state"], "code": code}, pending
    )
    done = smart_launch.complete_launch(got_pending, got_code, client)
    assert done.patient == fake.patient_id
    assert done.fhir_user == fake.fhir_user
    assert done.scopes == fake.granted_scope.split()
    assert done.token_url == fake.token_url and done.iss == fake.iss
    assert done.token["access_token"].startswith("ACCESS-")
    assert fake.assertion_problems == []
    (token_request,) = fake.requests_to("/auth/token")
    assert token_request.form["code_verifier"] == pending.code_verifier
    assert token_request.form["grant_type"] == "authorization_code"


def test_token_refusal_carries_the_servers_error(fake, client):
    pending, code, _ = authorize(fake, client)
    fake.token_error = "invalid_client"
    with pytest.raises(TokenError) as caught:
        smart_launch.complete_launch(pending, code, client)
    assert (caught.value.error, caught.value.description) == ("invalid_client", "nope")


def test_wrong_verifier_is_refused_by_the_server(fake, client):
    pending, code, _ = authorize(fake, client)
    forged = PendingLaunch(**{**pending.__dict__, "code_verifier": "v" * 60})
    with pytest.raises(TokenError, match="pkce"):
        smart_launch.complete_launch(forged, code, client)


def test_unreachable_token_endpoint(fake, client):
    pending, code, _ = authorize(fake, client)
    config = pending.config.__class__(
        pending.config.issuer, "x", "http://127.0.0.1:9/token", pending.config.jwks_uri
    )
    moved = PendingLaunch(**{**pending.__dict__, "config": config})
    with pytest.raises(TokenError) as caught:
        smart_launch.complete_launch(moved, code, client)
    assert caught.value.error == "temporarily_unavailable"


def test_token_response_without_bearer_token(fake, client, httpserver):
    pending, code, _ = authorize(fake, client)
    httpserver.clear_all_handlers()
    httpserver.expect_request("/auth/token", method="POST").respond_with_response(
        Response(json.dumps({"access_token": "a", "token_type": "mac"}), 200)
    )
    with pytest.raises(TokenError, match="bearer"):
        smart_launch.complete_launch(pending, code, client)


def test_bad_nonce_fails_the_launch(fake, client):
    pending, code, _ = authorize(fake, client)
    fake.id_token_claims = {"nonce": "other"}
    with pytest.raises(IdTokenError):
        smart_launch.complete_launch(pending, code, client)


def test_no_patient_context(fake, client):
    pending, code, _ = authorize(fake, client)
    fake.patient_id = ""
    with pytest.raises(TokenError) as caught:
        smart_launch.complete_launch(pending, code, client)
    assert caught.value.error == "no_patient_context"


@pytest.mark.parametrize(
    ("claims", "policy", "refused"),
    [
        ({}, MfaPolicy(), False),
        ({"amr": ["pwd"]}, MfaPolicy(required=True), True),
        ({"amr": ["pwd", "mfa"]}, MfaPolicy(required=True), False),
        ({"acr": "urn:clinic:2fa"}, MfaPolicy(required=True, acr="urn:clinic:2fa"), False),
        ({"acr": "urn:clinic:pwd"}, MfaPolicy(required=True, acr="urn:clinic:2fa"), True),
    ],
)
def test_mfa_policy(fake, client, claims, policy, refused):
    pending, code, _ = authorize(fake, client)
    fake.id_token_claims = claims
    strict = SmartClient(**{**client.__dict__, "mfa": policy})
    if refused:
        with pytest.raises(MfaRequiredError):
            smart_launch.complete_launch(pending, code, strict)
    else:
        assert smart_launch.complete_launch(pending, code, strict).patient == fake.patient_id


def statement(*types_creatable: str) -> dict:
    resources = [
        {"type": t, "interaction": [{"code": "read"}, {"code": "create"}]} for t in types_creatable
    ]
    resources.append({"type": "Media", "interaction": [{"code": "read"}]})
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": resources}],
    }


def test_server_can_create_reads_the_capability_statement(httpserver):
    httpserver.expect_request("/fhir/metadata").respond_with_json(
        statement("Consent", "DocumentReference")
    )
    can_create = smart_launch.server_can_create(httpserver.url_for("/fhir").rstrip("/"), 5)
    assert can_create is not None
    assert can_create("Consent") and not can_create("Media")
    scope = smart_launch.launch_scope("patient/Consent.crus patient/Media.crs", can_create)
    assert scope.split() == [
        "patient/Consent.crus",
        "patient/Media.crs",
        "patient/DocumentReference.crs",
    ]


@pytest.mark.parametrize(
    "answer",
    [
        Response("{}", status=401),
        Response("<html>", status=200),
        Response(json.dumps({"resourceType": "Patient"}), status=200),
    ],
)
def test_unreadable_capability_statement(httpserver, answer):
    httpserver.expect_request("/fhir/metadata").respond_with_response(answer)
    assert smart_launch.server_can_create(httpserver.url_for("/fhir").rstrip("/"), 5) is None


def test_backend_services_token(fake, client):
    session = backend_session("symfhir", fake.token_url, client.client_key, "system/AuditEvent.c")
    with session:
        token = fetch_system_token(session, fake.token_url)
        assert token["access_token"] in fake.system_tokens
        fake.system_token_error = "invalid_client"
        with pytest.raises(TokenError) as caught:
            fetch_system_token(session, fake.token_url)
    assert caught.value.error == "invalid_client"
    assert fake.assertion_problems == []

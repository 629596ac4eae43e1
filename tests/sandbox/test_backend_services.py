"""SMART Backend Services: the client_credentials grant, its registration and discovery, and
what the proxy lets a system token do."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug import Response as WerkzeugResponse
from werkzeug.serving import make_server

from smart_app.sandbox import create_sandbox
from smart_app.sandbox.config import ConfigError, load_clients
from smart_app.sandbox.scopes import token_scopes
from tests.sandbox.conftest import (
    BACKEND_CLIENT,
    BASE,
    FHIR,
    PATIENT,
    REDIRECT,
    TOKEN_URL,
    assertion,
    client_registrations,
)

pytestmark = pytest.mark.unit

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def system_token_request(
    client: FlaskClient,
    key: Any,
    alg: str = "RS384",
    scope: str | None = "system/AuditEvent.c",
    client_id: str = "symfhir",
    signed: str | None = None,
    **claims: Any,
) -> Any:
    """POST /token grant_type=client_credentials with a private_key_jwt assertion."""
    signed = signed or assertion(key, alg, iss=client_id, sub=client_id, **claims)
    data = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    return client.post("/token", data={k: v for k, v in data.items() if v is not None})


def claims_of(client: FlaskClient, access_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json)
    return dict(jwt.decode(access_token, keys).claims)


# --- the grant ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_client_credentials_gives_a_short_system_token(client, rsa_key, ec_key, alg):
    key = rsa_key if alg == "RS384" else ec_key
    response = system_token_request(client, key, alg)
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "system/AuditEvent.c"
    assert token["expires_in"] == 300
    # No refresh token, no id_token, no launch context.
    for absent in ("refresh_token", "id_token", "patient", "encounter", "need_patient_banner"):
        assert absent not in token
    claims = claims_of(client, token["access_token"])
    assert claims["sub"] == claims["client_id"] == "symfhir"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["grant_type"] == "client_credentials"
    assert "patient" not in claims


def test_v1_registration_covers_v2_request(client, rsa_key):
    response = system_token_request(
        client, rsa_key, client_id=BACKEND_CLIENT, scope="system/Observation.rs"
    )
    assert response.status_code == 200, response.json
    assert response.json["scope"] == "system/Observation.rs"


def test_client_secret_is_refused(client):
    basic = base64.b64encode(b"secret-app:s3cret-for-tests").decode()
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "system/AuditEvent.c"},
        headers={"Authorization": f"Basic {basic}"},
    )
    # invalid_client (the auth method), not unauthorized_client: a secret never gets this far.
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", ["public-app", "symfhir"])
def test_no_client_authentication_is_refused(client, client_id):
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/AuditEvent.c",
            "client_id": client_id,
        },
    )
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("alg", "claims"),
    [
        ("RS256", {}),  # SMART: RS384 or ES384
        ("RS384", {"aud": f"{BASE}/authorize"}),
        ("RS384", {"exp": int(time.time()) - 120}),
        ("RS384", {"exp": int(time.time()) + 3600}),  # more than 5 minutes ahead
    ],
)
def test_bad_assertion_is_refused(client, rsa_key, alg, claims):
    response = system_token_request(client, rsa_key, alg, **claims)
    assert response.json["error"] == "invalid_client"


def test_unregistered_key_is_refused(client):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
    response = system_token_request(client, stranger)
    assert response.json["error"] == "invalid_client"


def test_replayed_assertion_is_refused(client, rsa_key):
    signed = assertion(rsa_key, "RS384")
    assert system_token_request(client, rsa_key, signed=signed).status_code == 200
    again = system_token_request(client, rsa_key, signed=signed)
    assert again.json["error"] == "invalid_client"
    assert "JWT ID" in again.json["error_description"]


@pytest.mark.parametrize(
    "scope",
    [
        "system/Patient.rs",
        "system/*.cruds",
        "system/AuditEvent.cr",  # more than the registration's .c
        "system/AuditEvent.write",
    ],
)
def test_scope_beyond_the_registration_is_refused(client, rsa_key, scope):
    response = system_token_request(client, rsa_key, scope=scope)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert "not allowed for this client" in response.json["error_description"]


@pytest.mark.parametrize(
    "scope",
    [
        "patient/AuditEvent.c",
        "user/AuditEvent.c",
        "system/AuditEvent.c openid fhirUser",
        "system/AuditEvent.c launch",
        "system/AuditEvent.c offline_access",
    ],
)
def test_user_scopes_are_refused(client, rsa_key, scope):
    response = system_token_request(client, rsa_key, scope=scope)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert "system/ scopes only" in response.json["error_description"]


def test_scope_is_required(client, rsa_key):
    response = system_token_request(client, rsa_key, scope=None)
    assert response.json["error"] == "invalid_scope"


def test_client_without_system_scopes_is_unauthorized(rsa_key, ec_key):
    registrations = client_registrations(rsa_key, ec_key)
    registrations[0] = {k: v for k, v in registrations[0].items() if k != "system_scopes"}
    app = create_sandbox(
        {"TESTING": True, "SANDBOX_BASE_URL": BASE, "SANDBOX_CLIENTS": registrations}
    )
    response = system_token_request(app.test_client(), rsa_key)
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_code_grant_unchanged_for_a_backend_registration(client, get_code, token_request):
    """The launch flow ignores system_scopes: its token has no grant_type=client_credentials."""
    code, verifier = get_code()
    response = token_request(
        grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT
    )
    assert response.status_code == 200, response.json
    assert "grant_type" not in claims_of(client, response.json["access_token"])


# --- registration and discovery ----------------------------------------------------------


def test_default_registration_allows_the_audit_scope():
    assert load_clients({})["symfhir"].system_scopes == "system/AuditEvent.c"


def test_backend_only_registration_needs_no_redirect_uri(rsa_key, ec_key):
    clients = load_clients({"SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key)})
    backend = clients[BACKEND_CLIENT]
    assert backend.redirect_uris == ()
    assert backend.system_scopes == "system/AuditEvent.write system/Observation.read"


@pytest.mark.parametrize(
    "registration",
    [
        # Backend Services: asymmetric client authentication only.
        {
            "client_id": "a",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": "x",
            "redirect_uris": ["http://x/cb"],
            "system_scopes": "system/AuditEvent.c",
        },
        {"client_id": "a", "jwks": {"keys": []}, "system_scopes": "patient/AuditEvent.c"},
        {"client_id": "a", "jwks": {"keys": []}, "system_scopes": "system/AuditEvent.zz"},
        {"client_id": "a", "jwks": {"keys": []}, "system_scopes": 3},
        {"client_id": "a", "jwks": {"keys": []}},  # neither a launch nor a backend client
    ],
)
def test_bad_system_scopes_registration(registration):
    with pytest.raises(ConfigError):
        load_clients({"SANDBOX_CLIENTS": [registration]})


@pytest.mark.parametrize(
    "path", ["/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"]
)
def test_discovery_advertises_backend_services(client, path):
    doc = client.get(path).json
    assert "client_credentials" in doc["grant_types_supported"]
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert {"system/*.cruds", "system/*.read", "system/*.write"} <= set(doc["scopes_supported"])


# --- the proxy ----------------------------------------------------------------------------


@pytest.fixture
def app(proxied_app):
    return proxied_app


def bearer_for(client: FlaskClient, key: Any, **kwargs: Any) -> dict[str, str]:
    response = system_token_request(client, key, **kwargs)
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


def audit_event(patient: str = PATIENT) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "recorded": "2026-11-25T09:30:00-06:00",
        "agent": [{"who": {"reference": "Practitioner/prac-1"}, "requestor": True}],
        "source": {"observer": {"display": "symfhir"}},
        "entity": [{"what": {"reference": f"Patient/{patient}"}}],
    }


def post(client: FlaskClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(
        path, data=json.dumps(body), content_type="application/fhir+json", headers=headers
    )


def expect_created(upstream, path: str) -> None:
    upstream.expect_request(path, method="POST").respond_with_response(
        WerkzeugResponse(
            json.dumps({"resourceType": path.rsplit("/", 1)[-1], "id": "1"}),
            status=201,
            headers={"Location": upstream.url_for(f"{path}/1/_history/1")},
            content_type="application/fhir+json",
        )
    )


@pytest.mark.parametrize("patient", [PATIENT, "any-other-patient"])
def test_system_token_creates_an_audit_event(client, rsa_key, upstream, patient):
    """No launch context: any patient's AuditEvent may be written (no compartment)."""
    expect_created(upstream, "/fhir/AuditEvent")
    body = audit_event(patient)
    response = post(client, "/fhir/AuditEvent", body, bearer_for(client, rsa_key))
    assert response.status_code == 201, response.json
    assert response.headers["Location"] == f"{FHIR}/AuditEvent/1/_history/1"
    assert json.loads(upstream.log[-1][0].data) == body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/fhir/Patient/{PATIENT}", None),
        ("GET", f"/fhir/Patient?_id={PATIENT}", None),
        ("GET", f"/fhir/AuditEvent?patient={PATIENT}", None),  # create only, no search
        ("GET", "/fhir/AuditEvent/1", None),
        ("PUT", "/fhir/AuditEvent/1", {**audit_event(), "id": "1"}),
        ("DELETE", "/fhir/AuditEvent/1", None),
        (
            "POST",
            "/fhir/Observation",
            {"resourceType": "Observation", "subject": {"reference": f"Patient/{PATIENT}"}},
        ),
        (
            "POST",
            "/fhir",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": audit_event(), "request": {"method": "POST", "url": "AuditEvent"}},
                    {
                        "resource": {"resourceType": "Patient"},
                        "request": {"method": "POST", "url": "Patient"},
                    },
                ],
            },
        ),
    ],
)
def test_system_token_may_do_nothing_else(client, rsa_key, upstream, method, path, body):
    response = client.open(
        path,
        method=method,
        data=json.dumps(body) if body is not None else None,
        content_type="application/fhir+json",
        headers=bearer_for(client, rsa_key),
    )
    assert response.status_code == 403
    assert response.json["resourceType"] == "OperationOutcome"
    assert upstream.log == []  # refused before anything reached the FHIR server


def test_v1_system_scopes_at_the_proxy(client, rsa_key, upstream):
    upstream.expect_request("/fhir/Observation").respond_with_json(
        {"resourceType": "Bundle", "type": "searchset", "entry": []}
    )
    expect_created(upstream, "/fhir/AuditEvent")
    headers = bearer_for(
        client,
        rsa_key,
        client_id=BACKEND_CLIENT,
        scope="system/AuditEvent.write system/Observation.read",
    )
    # system/Observation.read: a search across patients (no compartment for system scopes).
    assert client.get("/fhir/Observation", headers=headers).status_code == 200
    assert post(client, "/fhir/AuditEvent", audit_event(), headers).status_code == 201
    assert client.get("/fhir/Patient/x", headers=headers).status_code == 403


def test_launch_token_gets_no_system_rights(app, client, upstream):
    """A launch's token with system/ scopes in it (a registration may allow them in the code
    grant) gets no system rights: those are for Backend Services tokens."""
    forged = app.extensions["sandbox"].key.sign(
        {
            "token_use": "access",
            "scope": "launch system/*.cruds",
            "patient": PATIENT,
            "exp": int(time.time()) + 60,
            "jti": "j1",
        }
    )
    response = post(
        client, "/fhir/AuditEvent", audit_event(), {"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 403
    assert upstream.log == []


def test_system_token_gets_no_patient_rights(app, client, upstream):
    forged = app.extensions["sandbox"].key.sign(
        {
            "token_use": "access",
            "grant_type": "client_credentials",
            "scope": "patient/*.cruds user/*.cruds",
            "patient": PATIENT,
            "exp": int(time.time()) + 60,
            "jti": "j2",
        }
    )
    response = client.get(f"/fhir/Patient/{PATIENT}", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 403
    assert upstream.log == []


@pytest.mark.parametrize(
    ("scope", "system_token", "expected"),
    [
        ("system/AuditEvent.c patient/*.rs", True, ["system/AuditEvent.c"]),
        ("openid launch patient/*.rs system/*.cruds", False, ["openid", "launch", "patient/*.rs"]),
        ("openid user/*.rs", True, []),
        (None, False, []),
    ],
)
def test_token_scopes(scope, system_token, expected):
    assert token_scopes(scope, system_token) == expected


def test_token_url_is_the_assertion_audience(client, rsa_key):
    """The assertion's aud must be exactly the token URL the discovery document names."""
    assert client.get("/.well-known/smart-configuration").json["token_endpoint"] == TOKEN_URL
    response = system_token_request(client, rsa_key, aud=f"{TOKEN_URL}/")
    assert response.json["error"] == "invalid_client"


# --- the app's audit channel against the sandbox (both real, over HTTP) -------------------


@pytest.fixture
def served_sandbox(httpserver) -> Iterator[tuple[str, Any]]:
    """The sandbox on a real port (the app's channel talks HTTP), httpserver as its upstream;
    the app's key registered for `system/AuditEvent.c`. Yields (FHIR base, the app's key)."""
    from symfhir.smart.assertion import ClientKey

    key = ClientKey.load(None, None)
    holder: dict[str, Any] = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    base = f"http://127.0.0.1:{server.server_port}"
    holder["app"] = create_sandbox(
        {
            "SANDBOX_BASE_URL": base,
            "SANDBOX_FHIR_UPSTREAM": httpserver.url_for("/fhir"),
            "SANDBOX_CLIENTS": [
                {
                    "client_id": "symfhir",
                    "redirect_uris": [REDIRECT],
                    "jwks": key.jwks(),
                    "system_scopes": "system/AuditEvent.c",
                }
            ],
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{base}/fhir", key
    finally:
        server.shutdown()
        thread.join()


def test_app_audit_channel_against_the_sandbox(served_sandbox, httpserver):
    from smart_app.audit import AuditChannelMisuse, BackendAuditChannel

    fhir, key = served_sandbox
    expect_created(httpserver, "/fhir/AuditEvent")
    channel = BackendAuditChannel(
        fhir, fhir.removesuffix("/fhir") + "/token", "symfhir", key, "system/AuditEvent.c", 5.0
    )
    try:
        event = audit_event("another-patient")
        channel.write(event)
        channel.write(event)  # the cached token again (a new one would need a new assertion)
        with pytest.raises(AuditChannelMisuse):
            channel.write({"resourceType": "Patient"})
    finally:
        channel.close()
    writes = [json.loads(r.data) for r, _ in httpserver.log if r.path == "/fhir/AuditEvent"]
    assert writes == [event, event]

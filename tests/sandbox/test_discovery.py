"""Discovery documents, the JWKS and the launch API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.sandbox.conftest import BASE, FHIR, PATIENT, PRACTITIONER

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "path", ["/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"]
)
def test_smart_configuration(client, path):
    doc = client.get(path).json
    assert doc["issuer"] == FHIR
    assert doc["authorization_endpoint"] == f"{BASE}/authorize"
    assert doc["token_endpoint"] == f"{BASE}/token"
    assert doc["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert {"private_key_jwt", "client_secret_basic", "none"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-confidential-asymmetric",
        "client-public",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-v2",
        "permission-v1",
        "permission-offline",
        "permission-patient",
        "permission-user",
    ):
        assert capability in doc["capabilities"]
    assert "launch/patient" in doc["scopes_supported"]


def test_jwks_is_public_only(client):
    keys = client.get("/.well-known/jwks.json").json["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA" and "d" not in keys[0]


def test_each_sandbox_has_its_own_key(app, rsa_key, ec_key):
    from smart_app.sandbox import create_sandbox

    other = create_sandbox({"SANDBOX_CLIENTS": [], "TESTING": True})
    assert other.test_client().get("/.well-known/jwks.json").json != (
        app.test_client().get("/.well-known/jwks.json").json
    )


def test_smart_style(client):
    assert "color_background" in client.get("/smart-style.json").json


def test_launch_api_builds_url(client, app):
    response = client.post(
        "/api/launch",
        json={
            "patient": PATIENT,
            "practitioner": PRACTITIONER,
            "launch_url": "http://localhost:5000/launch",
            "error": "token_expired",
        },
    )
    url = urlsplit(response.json["url"])
    assert url.netloc == "localhost:5000" and url.path == "/launch"
    query = parse_qs(url.query)
    assert query["iss"] == [FHIR]
    claims = app.extensions["sandbox"].key.verify(query["launch"][0], kind="launch")
    assert claims["patient"] == PATIENT
    assert claims["practitioner"] == PRACTITIONER
    assert claims["error"] == "token_expired"


@pytest.mark.parametrize(
    "body",
    [
        {"patient": PATIENT, "practitioner": "p", "error": "bogus"},
        {"patient": PATIENT, "practitioner": "p", "launch_url": "javascript:alert(1)"},
    ],
)
def test_launch_api_rejects(client, body):
    assert client.post("/api/launch", json=body).status_code == 400


def test_launch_api_needs_json(client):
    assert client.post("/api/launch", data="x").status_code == 400


def test_ehr_frame_embeds_app(client):
    page = client.get("/ehr", query_string={"app": "http://localhost:5000/launch?x=1"})
    assert page.status_code == 200
    assert b'<iframe src="http://localhost:5000/launch?x=1"' in page.data
    assert client.get("/ehr", query_string={"app": "javascript:alert(1)"}).status_code == 400


def test_launcher_form_opens_ehr_frame(client):
    response = client.get(
        "/launcher/open",
        query_string={"patient": PATIENT, "practitioner": PRACTITIONER, "launch_type": "iframe"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/ehr?app=")
    response = client.get(
        "/launcher/open",
        query_string={"patient": PATIENT, "practitioner": PRACTITIONER, "launch_type": "window"},
    )
    assert response.headers["Location"].startswith("http://localhost:5000/launch?iss=")


def test_clients_file(tmp_path):
    from smart_app.sandbox.config import load_clients

    path = tmp_path / "clients.toml"
    path.write_text(
        '[[clients]]\nclient_id = "a"\nredirect_uris = ["http://x/cb"]\n'
        'token_endpoint_auth_method = "none"\n',
        encoding="utf-8",
    )
    clients = load_clients({"SANDBOX_CLIENTS": None, "SANDBOX_CLIENTS_FILE": str(path)})
    assert clients["a"].token_endpoint_auth_method == "none"


def test_default_registration():
    from smart_app.sandbox.config import load_clients

    client = load_clients({})["symfhir"]
    assert client.redirect_uris == ("http://localhost:5000/callback",)
    assert client.token_endpoint_auth_method == "private_key_jwt"
    assert client.jwks_uri == "http://localhost:5000/.well-known/jwks.json"


@pytest.mark.parametrize(
    "registration",
    [
        {"client_id": "a"},
        {"client_id": "a", "redirect_uris": ["http://x"], "token_endpoint_auth_method": "magic"},
        {"client_id": "a", "redirect_uris": ["http://x"]},  # private_key_jwt without keys
        {
            "client_id": "a",
            "redirect_uris": ["http://x"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    ],
)
def test_bad_registration(registration):
    from smart_app.sandbox.config import ConfigError, load_clients

    with pytest.raises(ConfigError):
        load_clients({"SANDBOX_CLIENTS": [registration]})


def test_clients_from_environment(monkeypatch):
    from smart_app.sandbox.config import load_clients, load_settings

    monkeypatch.setenv(
        "SANDBOX_CLIENTS",
        '[{"client_id": "env-app", "redirect_uris": ["http://x/cb"],'
        ' "token_endpoint_auth_method": "none"}]',
    )
    monkeypatch.setenv("SANDBOX_BASE_URL", "http://localhost:5199/")
    settings = load_settings(None)
    assert settings["SANDBOX_BASE_URL"] == "http://localhost:5199"
    assert list(load_clients(settings)) == ["env-app"]


def test_openid_configuration_matches(client):
    oidc = client.get("/fhir/.well-known/openid-configuration").json
    smart = client.get("/fhir/.well-known/smart-configuration").json
    assert oidc["issuer"] == smart["issuer"]
    assert oidc["jwks_uri"] == smart["jwks_uri"]


def test_metadata_502_names_no_upstream(client, caplog):
    # The app's `client` fixture fronts a dead upstream (port 9): the answer and the log say
    # what failed, never where the upstream is.
    response = client.get("/fhir/metadata")
    assert response.status_code == 502
    body = response.get_data(as_text=True)
    assert "127.0.0.1" not in body and ":9" not in body
    assert "unavailable" in body
    assert all("127.0.0.1" not in record.getMessage() for record in caplog.records)

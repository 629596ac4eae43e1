"""The privacy officer's dashboard in the sandbox EHR: registered as a launch URL of the app, a
launcher choice that launches it with no patient, and the proxy letting the officer's scopes
through exactly: every request's Task (read, search, update) and reading clients to match and
answer them, never a create, change or delete of a client's record."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from smart_app.config import DEFAULTS as APP_DEFAULTS
from smart_app.sandbox import create_sandbox
from smart_app.sandbox.config import DEFAULT_CLIENT, load_clients
from smart_app.sandbox.decisions import FhirRequest, decide
from tests.sandbox.conftest import BASE, DEAD_UPSTREAM, PRACTITIONER

DASHBOARD = "http://localhost:5000/privacy-dashboard/launch"
OFFICER = APP_DEFAULTS["SYMFHIR_OFFICER_SCOPES"].split()
TASK_SEARCH = {"code": ["http://symfhir.org/fhir/CodeSystem/privacy-request|"]}


def test_the_default_registration_lists_the_dashboard_launch() -> None:
    [client] = load_clients({}).values()
    assert client.launch_urls == ("http://localhost:5000/launch", DASHBOARD)
    assert DEFAULT_CLIENT["launch_urls"][0].endswith("/launch")


@pytest.fixture
def launcher(rsa_key, ec_key):
    registration = {
        "client_id": "symfhir",
        "redirect_uris": ["http://localhost:5000/callback"],
        "launch_urls": ["http://localhost:5000/launch", DASHBOARD],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [rsa_key.as_dict(private=False)]},
    }
    app = create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_FHIR_UPSTREAM": DEAD_UPSTREAM,
            "SANDBOX_CLIENTS": [registration],
        }
    )
    return app.test_client()


def test_the_launcher_offers_the_dashboard_and_launches_it_without_a_patient(launcher) -> None:
    page = launcher.get("/").get_data(as_text=True)
    assert "Open the privacy dashboard" in page
    assert f'name="launch_url" value="{DASHBOARD}"' in page
    response = launcher.get(
        "/launcher/open",
        query_string={
            "client_id": "symfhir",
            "launch_url": DASHBOARD,
            "practitioner": PRACTITIONER,
            "launch_type": "window",
        },
    )
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == DASHBOARD
    code = parse_qs(target.query)["launch"][0]
    claims = launcher.application.extensions["sandbox"].key.verify(code, kind="launch")
    assert "patient" not in claims and claims["practitioner"] == PRACTITIONER


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "Task", TASK_SEARCH, None),
        ("GET", "Task/42", {}, None),
        ("PUT", "Task/42", {}, {"resourceType": "Task", "id": "42"}),
        ("GET", "Patient", {"email": ["ada@example.com"]}, None),
        ("GET", "Patient/7", {}, None),
        ("GET", "Patient/7/$everything", {}, None),
        ("GET", "Binary/9", {}, None),
        ("GET", "AuditEvent", {"patient": ["Patient/7"]}, None),
        ("POST", "AuditEvent", {}, {"resourceType": "AuditEvent"}),
    ],
)
def test_the_proxy_lets_the_officers_requests_through(method, path, query, body) -> None:
    assert decide(FhirRequest(method, path, query, body), OFFICER, None).allowed


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "Task", {"resourceType": "Task"}),
        ("DELETE", "Task/42", None),
        ("PUT", "Patient/7", {"resourceType": "Patient", "id": "7"}),
        ("PUT", "Consent/3", {"resourceType": "Consent", "id": "3"}),
        ("DELETE", "Observation/5", None),
        ("POST", "Observation", {"resourceType": "Observation"}),
    ],
)
def test_the_proxy_refuses_the_officer_any_change_to_a_record(method, path, body) -> None:
    decision = decide(FhirRequest(method, path, {}, body), OFFICER, None)
    assert not decision.allowed

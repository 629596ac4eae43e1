"""The privacy officer's dashboard in the sandbox EHR: registered as a launch URL of the app, a
launcher choice that launches it with no patient, and the proxy letting the officer's scopes
through exactly: every request's Task (read, search, update), reading clients to match and
answer them, and the writes of answering deletion, restriction and opt-out requests (deletes
and `$expunge` of what the retention rules let go, updates and `$meta-add`/`$meta-delete` of
what a deletion keeps, consent withdrawals); never a create of a client's record, nor any
change to a request's existence or the audit trail."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from smart_app.config import DEFAULTS as APP_DEFAULTS
from smart_app.sandbox import create_sandbox
from smart_app.sandbox.config import DEFAULT_CLIENT, load_clients
from smart_app.sandbox.decisions import FhirRequest, decide
from smart_app.sandbox.scopes import disallowed_scopes
from tests.sandbox.conftest import BASE, DEAD_UPSTREAM, PRACTITIONER

DASHBOARD = "http://localhost:5000/privacy-dashboard/launch"
OFFICER = APP_DEFAULTS["SYMFHIR_OFFICER_SCOPES"].split()
TASK_SEARCH = {"code": ["http://symfhir.org/fhir/CodeSystem/privacy-request|"]}
PARAMETERS = {"resourceType": "Parameters", "parameter": []}
WITHDRAWAL = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "resource": {"resourceType": "Consent", "id": "3", "status": "inactive"},
            "request": {"method": "PUT", "url": "Consent/3"},
        },
        {
            "fullUrl": "urn:uuid:9b1c0d3e-0000-4000-8000-000000000001",
            "resource": {"resourceType": "Provenance", "target": [{"reference": "Consent/3"}]},
            "request": {"method": "POST", "url": "Provenance"},
        },
    ],
}


def test_the_default_registration_lists_the_dashboard_launch() -> None:
    [client] = load_clients({}).values()
    assert client.launch_urls == ("http://localhost:5000/launch", DASHBOARD)
    assert DEFAULT_CLIENT["launch_urls"][0].endswith("/launch")


def test_the_default_registration_allows_what_the_officer_asks_for() -> None:
    assert disallowed_scopes(OFFICER, DEFAULT_CLIENT["scope"].split()) == []


def test_the_demos_registration_allows_what_the_officer_asks_for() -> None:
    demo = (Path(__file__).parents[2] / "scripts" / "demo").read_text()
    found = re.search(r'"scope": ((?:"[^"]*"\s*)+),', demo)
    assert found, "scripts/demo registers the app with a scope"
    scope = ast.literal_eval(f"({found[1]})")  # adjacent string literals, as Python joins them
    assert disallowed_scopes(OFFICER, scope.split()) == []


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
        # A deletion: what may go, and its history; what stays, minimized and tagged.
        ("DELETE", "Consent/3", {}, None),
        ("DELETE", "Observation/5", {}, None),
        ("DELETE", "Binary/9", {}, None),
        ("POST", "Media/4/$expunge", {}, PARAMETERS),
        ("POST", "Observation/5/$expunge", {}, PARAMETERS),
        ("PUT", "Patient/7", {}, {"resourceType": "Patient", "id": "7"}),
        ("PUT", "Provenance/8", {}, {"resourceType": "Provenance", "id": "8"}),
        ("POST", "Patient/7/$meta-add", {}, PARAMETERS),
        ("POST", "Patient/7/$meta-delete", {}, PARAMETERS),
        # A restriction or opt-out: the Consent withdrawn and its Provenance, one transaction.
        ("POST", "", {}, WITHDRAWAL),
    ],
)
def test_the_proxy_lets_the_officers_requests_through(method, path, query, body) -> None:
    decision = decide(FhirRequest(method, path, query, body), OFFICER, None)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "Task", {"resourceType": "Task"}),
        ("DELETE", "Task/42", None),
        ("POST", "Task/42/$expunge", PARAMETERS),
        ("DELETE", "AuditEvent/6", None),
        ("PUT", "AuditEvent/6", {"resourceType": "AuditEvent", "id": "6"}),
        ("POST", "AuditEvent/6/$expunge", PARAMETERS),
        ("POST", "AuditEvent/6/$meta-delete", PARAMETERS),
        ("POST", "Observation", {"resourceType": "Observation"}),
        ("PUT", "Observation/5", {"resourceType": "Observation", "id": "5"}),
        ("POST", "Observation/5/$meta-add", PARAMETERS),
        ("POST", "Patient", {"resourceType": "Patient"}),
        ("POST", "Consent", {"resourceType": "Consent"}),
        ("POST", "Patient/7/$meta", PARAMETERS),  # an operation the proxy does not know
        ("POST", "Patient/$expunge", PARAMETERS),  # type level: every Patient's history
        ("POST", "$expunge", PARAMETERS),
    ],
)
def test_the_proxy_refuses_the_officer_what_answering_requests_never_needs(
    method, path, body
) -> None:
    decision = decide(FhirRequest(method, path, {}, body), OFFICER, None)
    assert not decision.allowed

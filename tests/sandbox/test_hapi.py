"""End to end against HAPI: launch → token → reads through the proxy."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from smart_app.sandbox import create_sandbox
from tests.sandbox.conftest import (
    BASE,
    REDIRECT,
    assertion,
    authorize_params,
    client_registrations,
    pkce,
    redirect_params,
)

pytestmark = pytest.mark.integration

FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:symfhir:sandbox-tests"


def ensure_patient(base: str, value: str, family: str) -> str:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": [{"family": family, "given": ["Sandbox"]}],
    }
    response = requests.post(
        f"{base}/Patient",
        json=body,
        headers={
            "Content-Type": FHIR_JSON,
            "If-None-Exist": f"identifier={SYSTEM}|{value}",
            "Prefer": "return=representation",
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


def ensure_observation(base: str, patient: str, value: str) -> None:
    body = {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": "final",
        "code": {"text": "sandbox test"},
        "subject": {"reference": f"Patient/{patient}"},
    }
    requests.post(
        f"{base}/Observation",
        json=body,
        headers={"Content-Type": FHIR_JSON, "If-None-Exist": f"identifier={SYSTEM}|{value}"},
        timeout=30,
    ).raise_for_status()


def test_launch_token_and_proxy(fhir_base, rsa_key, ec_key):
    launched = ensure_patient(fhir_base, "launched", "Launched")
    other = ensure_patient(fhir_base, "other", "Other")
    for number in (1, 2):  # two, so that a search with _count=1 has a next page
        ensure_observation(fhir_base, launched, f"obs-{number}")

    app = create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_FHIR_UPSTREAM": fhir_base,
            "SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key),
        }
    )
    client = app.test_client()
    # No practitioner given: the sandbox uses the first one (creating its own if none).
    url = client.post("/api/launch", json={"patient": launched}).json["url"]
    launch = parse_qs(urlsplit(url).query)["launch"][0]

    verifier, challenge = pkce()
    query = authorize_params(client, challenge, launch=launch)
    code = redirect_params(client.get("/authorize", query_string=query))["code"]

    token = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(rsa_key, "RS384"),
        },
    ).json
    assert token["patient"] == launched
    headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": FHIR_JSON}

    response = client.get(f"/fhir/Patient/{launched}", headers=headers)
    assert response.status_code == 200
    assert response.json["id"] == launched

    assert client.get(f"/fhir/Patient/{other}", headers=headers).status_code == 403

    response = client.get(f"/fhir/Observation?patient={launched}", headers=headers)
    assert response.status_code == 200
    bundle = response.json
    assert bundle.get("entry"), bundle
    assert all(link["url"].startswith(f"{BASE}/fhir") for link in bundle.get("link", []))

    # Paging: HAPI's next link (rewritten to the sandbox) works with the same token.
    page = client.get(f"/fhir/Observation?patient={launched}&_count=1", headers=headers).json
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert next_url.startswith(f"{BASE}/fhir?")
    assert client.get(next_url.removeprefix(BASE), headers=headers).status_code == 200

    assert client.get("/fhir/Observation", headers=headers).status_code == 403
    metadata = client.get("/fhir/metadata").json
    assert metadata["resourceType"] == "CapabilityStatement"

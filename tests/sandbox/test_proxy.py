"""The FHIR proxy (against a pytest-httpserver upstream) and the simulated errors."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response as WerkzeugResponse

from smart_app.sandbox import create_sandbox
from tests.sandbox.conftest import (
    BASE,
    FHIR,
    PATIENT,
    REDIRECT,
    authorize_params,
    client_registrations,
    pkce,
    redirect_params,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def app(proxied_app):
    return proxied_app


def get_token(get_code, token_request, **overrides):
    code, verifier = get_code(**overrides)
    response = token_request(
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=REDIRECT,
    )
    assert response.status_code == 200, response.json
    return response.json


def bearer(token):
    return {"Authorization": f"Bearer {token['access_token']}"}


def test_no_token_is_401(client):
    response = client.get(f"/fhir/Patient/{PATIENT}")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.json["resourceType"] == "OperationOutcome"


def test_foreign_token_is_401(client, get_code, token_request, rsa_key, ec_key):
    other = create_sandbox(
        {"TESTING": True, "SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key)}
    )
    forged = other.extensions["sandbox"].key.sign(
        {"token_use": "access", "scope": "user/*.cruds", "exp": 9999999999}
    )
    response = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_id_token_is_not_an_access_token(client, get_code, token_request):
    token = get_token(get_code, token_request)
    response = client.get(
        f"/fhir/Patient/{PATIENT}", headers={"Authorization": f"Bearer {token['id_token']}"}
    )
    assert response.status_code == 401


def test_allowed_read_is_forwarded_and_urls_rewritten(client, get_code, token_request, upstream):
    base = upstream.url_for("/fhir")
    upstream.expect_request(f"/fhir/Patient/{PATIENT}").respond_with_json(
        {"resourceType": "Patient", "id": PATIENT, "link": [{"other": {"reference": f"{base}/x"}}]},
        content_type="application/fhir+json",
    )
    token = get_token(get_code, token_request)
    response = client.get(f"/fhir/Patient/{PATIENT}", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["link"][0]["other"]["reference"] == f"{FHIR}/x"


def test_create_location_rewritten(client, get_code, token_request, upstream):
    base = upstream.url_for("/fhir")
    upstream.expect_request("/fhir/Observation", method="POST").respond_with_response(
        WerkzeugResponse(
            "{}",
            status=201,
            headers={"Location": f"{base}/Observation/9/_history/1"},
            content_type="application/fhir+json",
        )
    )
    token = get_token(get_code, token_request)
    body = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT}"},
    }
    response = client.post(
        "/fhir/Observation",
        data=json.dumps(body),
        content_type="application/fhir+json",
        headers=bearer(token),
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"{FHIR}/Observation/9/_history/1"
    assert json.loads(upstream.log[-1][0].data) == body


def test_other_patient_is_403(client, get_code, token_request):
    token = get_token(get_code, token_request)
    response = client.get("/fhir/Patient/someone-else", headers=bearer(token))
    assert response.status_code == 403
    assert "outside" in response.json["issue"][0]["diagnostics"]


def test_write_without_write_scope_is_403(client, get_code, token_request):
    token = get_token(get_code, token_request, scope="launch patient/*.rs")
    response = client.delete(f"/fhir/Patient/{PATIENT}", headers=bearer(token))
    assert response.status_code == 403
    assert "'d' on Patient" in response.json["issue"][0]["diagnostics"]


@pytest.mark.parametrize(("owner", "status"), [(PATIENT, 200), ("someone-else", 403)])
def test_owner_check_on_read_by_id(client, get_code, token_request, upstream, owner, status):
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": f"Patient/{owner}"},
    }
    upstream.expect_request("/fhir/Observation/o1").respond_with_json(resource)
    token = get_token(get_code, token_request)
    response = client.get("/fhir/Observation/o1", headers=bearer(token))
    assert response.status_code == status


def test_binary_is_streamed(client, get_code, token_request, upstream):
    upstream.expect_request("/fhir/Binary/b1").respond_with_data(
        b"\x89PNG....", content_type="image/png"
    )
    token = get_token(get_code, token_request, scope="launch user/Binary.r")
    response = client.get("/fhir/Binary/b1", headers=bearer(token))
    assert response.status_code == 200
    assert response.data == b"\x89PNG...."


def test_metadata_adds_oauth_uris(client, upstream):
    base = upstream.url_for("/fhir")
    upstream.expect_request("/fhir/metadata").respond_with_json(
        {
            "resourceType": "CapabilityStatement",
            "implementation": {"url": base},
            "rest": [{"mode": "server"}],
        }
    )
    capability = client.get("/fhir/metadata").json
    assert capability["implementation"]["url"] == FHIR
    extension = capability["rest"][0]["security"]["extension"][0]
    assert extension["url"].endswith("/oauth-uris")
    uris = {e["url"]: e["valueUri"] for e in extension["extension"]}
    assert uris == {"authorize": f"{BASE}/authorize", "token": f"{BASE}/token"}


# --- simulated errors -------------------------------------------------------------------


@pytest.mark.parametrize("error", ["invalid_client", "invalid_redirect_uri"])
def test_simulated_client_errors_show_a_page(client, error):
    from tests.sandbox.conftest import launch_code

    _, challenge = pkce()
    query = authorize_params(client, challenge, launch=launch_code(client, error=error))
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_simulated_invalid_scope(client):
    from tests.sandbox.conftest import launch_code

    _, challenge = pkce()
    query = authorize_params(client, challenge, launch=launch_code(client, error="invalid_scope"))
    params = redirect_params(client.get("/authorize", query_string=query))
    assert params["error"] == "invalid_scope"
    assert params["state"] == "st-123"


def test_simulated_invalid_secret(client, get_code, token_request):
    from tests.sandbox.conftest import launch_code

    code, verifier = get_code(launch=launch_code(client, error="invalid_secret"))
    response = token_request(
        grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT
    )
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("error", ["token_expired", "token_invalid"])
def test_simulated_token_errors(client, get_code, token_request, error):
    from tests.sandbox.conftest import launch_code

    token = get_token(get_code, token_request, launch=launch_code(client, error=error))
    response = client.get(f"/fhir/Patient/{PATIENT}", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_paging_links_work_only_for_the_token_that_searched(
    client, get_code, token_request, upstream
):
    base = upstream.url_for("/fhir")
    upstream.expect_request("/fhir/Observation").respond_with_json(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": f"{base}?_getpages=abc-1&_getpagesoffset=1"}],
        }
    )
    upstream.expect_request(
        "/fhir", query_string={"_getpages": "abc-1", "_getpagesoffset": "1"}
    ).respond_with_json({"resourceType": "Bundle", "type": "searchset"})
    token = get_token(get_code, token_request)
    first = client.get(f"/fhir/Observation?patient={PATIENT}", headers=bearer(token))
    next_url = first.json["link"][0]["url"]
    assert next_url == f"{FHIR}?_getpages=abc-1&_getpagesoffset=1"
    path = next_url.removeprefix(BASE)
    assert client.get(path, headers=bearer(token)).status_code == 200
    other = get_token(get_code, token_request)
    assert client.get(path, headers=bearer(other)).status_code == 403
    assert client.get("/fhir?_getpages=zzz", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(
    ("context", "status"), [(f"Patient/{PATIENT}", 201), ("Patient/someone-else", 403), (None, 403)]
)
def test_raw_binary_upload_needs_security_context(
    client, get_code, token_request, upstream, context, status
):
    upstream.expect_request("/fhir/Binary", method="POST").respond_with_data(
        "", status=201, headers={"Location": f"{upstream.url_for('/fhir')}/Binary/b1/_history/1"}
    )
    token = get_token(get_code, token_request, scope="launch patient/Binary.cr")
    headers = {**bearer(token), **({"X-Security-Context": context} if context else {})}
    response = client.post(
        "/fhir/Binary", data=b"\xff\xd8 jpeg", content_type="image/jpeg", headers=headers
    )
    assert response.status_code == status
    if status == 201:
        assert upstream.log[-1][0].headers["X-Security-Context"] == context
        assert upstream.log[-1][0].data == b"\xff\xd8 jpeg"


def test_included_resources_of_other_patients_are_removed(
    client, get_code, token_request, upstream
):
    def entry(resource, mode):
        return {"resource": resource, "search": {"mode": mode}}

    upstream.expect_request("/fhir/Observation").respond_with_json(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                entry(
                    {"resourceType": "Observation", "subject": {"reference": f"Patient/{PATIENT}"}},
                    "match",
                ),
                entry({"resourceType": "Patient", "id": PATIENT}, "include"),
                entry({"resourceType": "Patient", "id": "someone-else"}, "include"),
            ],
        }
    )
    token = get_token(get_code, token_request)
    bundle = client.get(
        f"/fhir/Observation?patient={PATIENT}&_include=*", headers=bearer(token)
    ).json
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes == [
        ("Observation", "match"),
        ("Patient", "include"),
        ("OperationOutcome", "outcome"),
    ]


def test_user_scope_search_is_not_filtered(client, get_code, token_request, upstream):
    upstream.expect_request("/fhir/Patient").respond_with_json(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "x"}, "search": {"mode": "include"}}
            ],
        }
    )
    token = get_token(get_code, token_request, scope="launch user/Patient.rs")
    bundle = client.get("/fhir/Patient", headers=bearer(token)).json
    assert len(bundle["entry"]) == 1


def test_if_none_exist_is_sent_bound_to_the_patient(client, get_code, token_request, upstream):
    upstream.expect_request("/fhir/Observation", method="POST").respond_with_json(
        {"resourceType": "Observation"}, status=201
    )
    token = get_token(get_code, token_request)
    body = {"resourceType": "Observation", "subject": {"reference": f"Patient/{PATIENT}"}}
    response = client.post(
        "/fhir/Observation",
        data=json.dumps(body),
        content_type="application/fhir+json",
        headers={**bearer(token), "If-None-Exist": "identifier=s|v"},
    )
    assert response.status_code == 201
    sent = upstream.log[-1][0].headers
    assert sent["If-None-Exist"] == f"identifier=s|v&patient=Patient%2F{PATIENT}"


def test_a_patient_tokens_answers_are_asked_for_in_json(client, get_code, token_request, upstream):
    upstream.expect_request("/fhir", method="POST").respond_with_json(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    )
    token = get_token(get_code, token_request)
    observation = {"resourceType": "Observation", "subject": {"reference": f"Patient/{PATIENT}"}}
    entry = {"resource": observation, "request": {"method": "POST", "url": "Observation"}}
    body = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    headers = {
        **bearer(token),
        "Accept": "*/*",
        "If-None-Exist": "identifier=s|v",
        "X-Security-Context": "Patient/someone-else",
    }
    response = client.post(
        "/fhir", data=json.dumps(body), content_type="application/fhir+json", headers=headers
    )
    assert response.status_code == 200
    sent = upstream.log[-1][0].headers
    assert sent["Accept"] == "application/fhir+json"
    assert "If-None-Exist" not in sent and "X-Security-Context" not in sent


def test_a_patient_token_gets_no_answer_it_cannot_filter(client, get_code, token_request, upstream):
    upstream.expect_request("/fhir/Observation").respond_with_data(
        "<Bundle/>", content_type="application/fhir+xml"
    )
    token = get_token(get_code, token_request)
    response = client.get(f"/fhir/Observation?patient={PATIENT}", headers=bearer(token))
    assert response.status_code == 403
    assert "<Bundle" not in response.get_data(as_text=True)

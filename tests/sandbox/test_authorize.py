"""`/authorize`: EHR launch, standalone launch and every refusal."""

from __future__ import annotations

import html
import re

import pytest

from tests.sandbox.conftest import REDIRECT, authorize_params, launch_code, pkce, redirect_params

pytestmark = pytest.mark.unit


def test_ehr_launch_issues_code_with_state(client):
    _, challenge = pkce()
    response = client.get("/authorize", query_string=authorize_params(client, challenge))
    params = redirect_params(response)
    assert params["state"] == "st-123"
    assert len(params["code"]) > 20
    assert "error" not in params


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "nobody"},
        {"client_id": None},
        {"redirect_uri": "http://evil.example/callback"},
        {"redirect_uri": REDIRECT + "/extra"},
        {"redirect_uri": None},
    ],
)
def test_bad_client_or_redirect_is_a_page_not_a_redirect(client, overrides):
    _, challenge = pkce()
    response = client.get(
        "/authorize", query_string=authorize_params(client, challenge, **overrides)
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"Authorization error" in response.data


@pytest.mark.parametrize(
    ("overrides", "error", "needle"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request", "S256"),
        ({"code_challenge_method": None}, "invalid_request", "S256"),
        ({"code_challenge": None}, "invalid_request", "S256"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request", "PKCE"),
        ({"aud": "http://localhost:8080/fhir"}, "invalid_request", "aud"),
        ({"aud": None}, "invalid_request", "aud"),
        ({"launch": "not-a-launch-code"}, "invalid_request", "launch"),
        ({"scope": "patient/*.rs system/*.cruds"}, "invalid_scope", "system/*.cruds"),
        ({"scope": "patient/*.rs made-up-scope"}, "invalid_scope", "made-up-scope"),
        ({"scope": None}, "invalid_scope", "scope"),
        ({"response_type": "token"}, "unsupported_response_type", "code"),
    ],
)
def test_refusals_are_redirected_with_state(client, overrides, error, needle):
    _, challenge = pkce()
    params = redirect_params(
        client.get("/authorize", query_string=authorize_params(client, challenge, **overrides))
    )
    assert params["error"] == error
    assert needle in params["error_description"]
    assert params["state"] == "st-123"
    assert "code" not in params


def test_missing_state_is_refused(client):
    _, challenge = pkce()
    params = redirect_params(
        client.get("/authorize", query_string=authorize_params(client, challenge, state=None))
    )
    assert params["error"] == "invalid_request"
    assert "state" in params["error_description"]


def test_scope_outside_registration(client):
    _, challenge = pkce()
    query = authorize_params(
        client, challenge, client_id="public-app", scope="launch patient/*.rs patient/*.c"
    )
    params = redirect_params(client.get("/authorize", query_string=query))
    assert params["error"] == "invalid_scope"
    assert "patient/*.c" in params["error_description"]


def test_v1_scope_inside_v2_registration(client):
    _, challenge = pkce()
    query = authorize_params(client, challenge, scope="launch patient/*.read user/Patient.read")
    assert "code" in redirect_params(client.get("/authorize", query_string=query))


def test_launch_code_can_limit_scopes(client):
    _, challenge = pkce()
    code = launch_code(client, scope="launch patient/Patient.rs")
    query = authorize_params(client, challenge, launch=code, scope="launch patient/*.rs")
    params = redirect_params(client.get("/authorize", query_string=query))
    assert params["error"] == "invalid_scope"


PATIENTS = [
    {"id": "p9", "name": [{"given": ["Ada"], "family": "Test"}]},
    {"id": "p8", "name": [{"given": ["Bo"], "family": "Zed"}]},
]


def _form_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the sign-in form."""
    fields = {}
    for tag in re.findall(r"<input type=\"hidden\"[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and value:
            fields[name.group(1)] = html.unescape(value.group(1))
    return fields


@pytest.mark.parametrize(
    ("scope", "needs_patient"),
    [
        ("openid fhirUser launch/patient patient/*.read", True),
        ("openid fhirUser patient/*.read", False),
    ],
)
def test_standalone_signs_in_a_practitioner_then_issues_code(
    client, monkeypatch, scope, needs_patient
):
    from smart_app.sandbox import authorize as authorize_module

    monkeypatch.setattr(
        authorize_module,
        "search",
        lambda upstream, rtype, name="": [
            p for p in PATIENTS if name.casefold() in p["name"][0]["family"].casefold()
        ],
    )
    monkeypatch.setattr(
        authorize_module,
        "practitioners",
        lambda upstream: [
            {"id": "prac-1", "name": [{"given": ["Sam"], "family": "Okafor"}]},
            {"id": "prac-2", "name": [{"given": ["Alex"], "family": "Rivera"}]},
        ],
    )
    _, challenge = pkce()
    query = authorize_params(client, challenge, client_id="public-app", launch=None, scope=scope)
    page = client.get("/authorize", query_string=query)
    assert page.status_code == 200
    text = page.data.decode()
    assert 'id="sign-in"' in text and "Alex Rivera" in text
    assert ("Ada Test" in text) is needs_patient
    fields = _form_fields(text)
    assert fields == {k: str(v) for k, v in query.items()}  # the app's parameters, unchanged
    if needs_patient:  # the name filter keeps the app's parameters too
        found = client.get("/authorize", query_string={**fields, "sandbox_patient_name": "zed"})
        assert "Bo Zed" in found.data.decode() and "Ada Test" not in found.data.decode()
        assert _form_fields(found.data.decode()) == fields
        assert 'name="sandbox_patient_name" value="zed"' in found.data.decode()
    chosen = {"sandbox_practitioner": "prac-2"} | (
        {"sandbox_patient": "p9"} if needs_patient else {}
    )
    params = redirect_params(client.get("/authorize", query_string={**fields, **chosen}))
    assert "code" in params and params["state"] == "st-123"
    if needs_patient:  # a practitioner alone is not enough when the app asked for a patient
        again = client.get("/authorize", query_string={**fields, "sandbox_practitioner": "prac-2"})
        assert again.status_code == 200 and 'id="sign-in"' in again.data.decode()


def test_authorize_by_post(client):
    _, challenge = pkce()
    response = client.post("/authorize", data=authorize_params(client, challenge))
    assert "code" in redirect_params(response)


def test_encounter_context(client, get_code, token_request):
    code, verifier = get_code(launch=launch_code(client, encounter="enc-1"))
    token = token_request(
        grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT
    ).json
    assert token["encounter"] == "enc-1"

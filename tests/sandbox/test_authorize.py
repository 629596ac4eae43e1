"""`/authorize`: EHR launch, standalone launch and every refusal."""

from __future__ import annotations

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


def test_standalone_shows_patient_picker_then_issues_code(client, monkeypatch):
    from smart_app.sandbox import authorize as authorize_module

    monkeypatch.setattr(
        authorize_module,
        "search",
        lambda upstream, rtype: [{"id": "p9", "name": [{"given": ["Ada"], "family": "Test"}]}],
    )
    _, challenge = pkce()
    query = authorize_params(
        client,
        challenge,
        client_id="public-app",
        launch=None,
        scope="openid fhirUser launch/patient patient/*.read",
        sandbox_practitioner="prac-1",
    )
    page = client.get("/authorize", query_string=query)
    assert page.status_code == 200
    assert b"Ada Test" in page.data
    link = page.data.decode().split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert "sandbox_patient=p9" in link
    params = redirect_params(client.get(link))
    assert "code" in params and params["state"] == "st-123"


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

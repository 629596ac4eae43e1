"""The launcher is no open redirect, /ehr frames only registered apps, and a launch code works
once, for the client it was made for."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest

from tests.sandbox.conftest import (
    PATIENT,
    PRACTITIONER,
    authorize_params,
    launch_code,
    pkce,
    redirect_params,
)

pytestmark = pytest.mark.unit

EVIL = "https://evil.example/phish"


@pytest.mark.parametrize("launch_type", ["window", "iframe"])
@pytest.mark.parametrize(
    "target",
    [
        EVIL,
        "//evil.example/launch",
        "http://localhost:5000.evil.example/launch",
        "http://localhost:5000/logout",  # the app's origin, but not its launch URL
        "javascript:alert(1)",
    ],
)
def test_launcher_open_is_not_an_open_redirect(client, launch_type, target):
    response = client.get(
        "/launcher/open",
        query_string={
            "patient": PATIENT,
            "practitioner": PRACTITIONER,
            "launch_url": target,
            "launch_type": launch_type,
        },
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_launch_api_refuses_an_unregistered_launch_url(client):
    response = client.post(
        "/api/launch", json={"patient": PATIENT, "practitioner": PRACTITIONER, "launch_url": EVIL}
    )
    assert response.status_code == 400
    assert "registered" in response.json["error"]


def test_launch_api_refuses_a_client_without_launch_url(client):
    response = client.post(
        "/api/launch",
        json={"patient": PATIENT, "practitioner": PRACTITIONER, "client_id": "backend-job"},
    )
    assert response.status_code == 400


def test_launcher_opens_only_the_registered_launch_url(client):
    response = client.get(
        "/launcher/open",
        query_string={
            "patient": PATIENT,
            "practitioner": PRACTITIONER,
            "client_id": "public-app",
            "launch_type": "window",
        },
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "http",
        "localhost:5000",
        "/launch",
    )


def test_launcher_page_offers_registered_apps_only(client):
    page = client.get("/").get_data(as_text=True)
    # The backend-only client has no redirect URI, so nothing to launch; no free-text URL.
    assert 'name="launch_url"' not in page
    for client_id in ("symfhir", "public-app", "secret-app"):
        assert f'<option value="{client_id}">{client_id} (http://localhost:5000/launch)' in page
    assert "backend-job" not in page


@pytest.mark.parametrize(
    "app_url",
    [
        EVIL,
        "https://evil.example/launch?iss=x",
        "http://localhost:5000/callback?code=x",
        "http://localhost:5001/launch",
        "http://localhost:5000/launch#frag",
        "javascript:alert(1)",
        "",
    ],
)
def test_ehr_frames_only_registered_launch_urls(client, app_url):
    response = client.get("/ehr", query_string={"app": app_url})
    assert response.status_code == 400
    assert b"<iframe" not in response.data


def test_ehr_frames_a_launch_built_by_the_launcher(client):
    url = client.post("/api/launch", json={"patient": PATIENT, "practitioner": PRACTITIONER})
    launch_url = url.json["url"]
    page = client.get(f"/ehr?{urlencode({'app': launch_url})}")
    assert page.status_code == 200
    assert b"<iframe" in page.data


def _authorize(client, **overrides):
    _, challenge = pkce()
    query = authorize_params(client, challenge, **overrides)
    return redirect_params(client.get("/authorize", query_string=query))


def test_a_launch_code_works_once(client):
    code = launch_code(client)
    assert "code" in _authorize(client, launch=code)
    replay = _authorize(client, launch=code)
    assert replay["error"] == "invalid_request"
    assert "already been used" in replay["error_description"]
    assert replay["state"] == "st-123"
    assert "code" not in replay


def test_a_launch_code_is_refused_to_another_client(client):
    code = launch_code(client)  # made for symfhir
    stolen = _authorize(client, launch=code, client_id="public-app", scope="launch patient/*.rs")
    assert stolen["error"] == "invalid_request"
    assert "another app" in stolen["error_description"]
    assert "code" not in stolen
    # The app it was made for can still use it: another client cannot burn it.
    assert "code" in _authorize(client, launch=code)


def test_launch_code_names_its_client(client, app):
    code = launch_code(client, client_id="public-app")
    claims = app.extensions["sandbox"].key.verify(code, kind="launch")
    assert claims["client_id"] == "public-app"
    assert "code" in _authorize(
        client, launch=code, client_id="public-app", scope="launch patient/*.rs"
    )


def test_launch_urls_default_to_the_redirect_origin():
    from smart_app.sandbox.config import load_clients

    clients = load_clients(
        {
            "SANDBOX_CLIENTS": [
                {
                    "client_id": "a",
                    "redirect_uris": ["https://spa.example/app/cb", "https://spa.example/cb2"],
                    "token_endpoint_auth_method": "none",
                },
                {
                    "client_id": "b",
                    "redirect_uris": ["https://b.example/cb"],
                    "launch_urls": "https://b.example/smart/launch",
                    "token_endpoint_auth_method": "none",
                },
            ]
        }
    )
    assert clients["a"].launch_urls == ("https://spa.example/launch",)
    assert clients["b"].launch_urls == ("https://b.example/smart/launch",)


@pytest.mark.parametrize("launch_urls", [["javascript:alert(1)"], ["/launch"], [1], "ftp://x/l"])
def test_bad_launch_urls_are_a_config_error(launch_urls):
    from smart_app.sandbox.config import ConfigError, load_clients

    registration = {
        "client_id": "a",
        "redirect_uris": ["https://a.example/cb"],
        "launch_urls": launch_urls,
        "token_endpoint_auth_method": "none",
    }
    with pytest.raises(ConfigError):
        load_clients({"SANDBOX_CLIENTS": [registration]})

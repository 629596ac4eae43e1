"""Security headers, CSP frame-ancestors, CSRF and cookie flags."""

from __future__ import annotations

import pytest

from smart_app import create_app
from tests.app.conftest import launch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", ["/", "/launch", "/.well-known/jwks.json", "/static/app.css"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    response.close()  # a static file response holds the file open
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'self' https://ehr.example.org" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_phi_pages_are_not_cached(launched):
    response = launched.get("/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_third_party(launched):
    text = launched.get("/").get_data(as_text=True)
    assert "<script" not in text
    assert "style=" not in text
    assert "http://" not in text.replace('href="http', "")  # no third-party resources


def test_post_without_csrf_token_is_refused(launched):
    response = launched.post("/logout", data={})
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    assert launched.get("/").status_code == 200  # still signed in


def test_post_with_wrong_csrf_token_is_refused(launched):
    launched.get("/")
    response = launched.post("/logout", data={"csrf_token": "guess"})
    assert response.status_code == 400


def test_post_with_the_form_token_is_accepted(launched):
    page = launched.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = launched.post("/logout", data={"csrf_token": token})
    assert response.status_code == 200
    assert 'id="signed-out"' in response.get_data(as_text=True)
    assert launched.get("/").status_code == 401


def _cookie_header(response) -> str:
    (cookie,) = [v for k, v in response.headers.items() if k == "Set-Cookie"]
    return cookie


def test_cookie_flags_over_http_dev(client, fake_ehr):
    response = launch(client, fake_ehr)
    cookie = _cookie_header(response)
    assert cookie.startswith("symfhir_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert len(value) < 64 and "." not in value  # an id, not data


def test_cookie_flags_over_https(fake_ehr, tmp_path, token_keys):
    app = create_app(
        {
            "SYMFHIR_BASE_URL": "https://spa.example.org",
            "SYMFHIR_TRUSTED_ISS": [fake_ehr.iss],
            "SYMFHIR_TOKEN_KEYS": token_keys,
            "SYMFHIR_SESSION_DIR": str(tmp_path),
        }
    )
    fake_ehr.app_jwks = app.extensions["symfhir_key"].jwks()
    response = launch(app.test_client(), fake_ehr)
    cookie = _cookie_header(response)
    assert "Secure" in cookie and "SameSite=None" in cookie and "HttpOnly" in cookie


def test_only_the_session_cookie_is_set(client, fake_ehr):
    response = launch(client, fake_ehr)
    names = [v.split("=", 1)[0] for k, v in response.headers.items() if k == "Set-Cookie"]
    assert names == ["symfhir_session"]


def test_session_id_changes_at_sign_in(client, fake_ehr):
    first = client.get("/launch?iss=" + fake_ehr.iss + "&launch=L1")
    before = _cookie_header(first).split(";", 1)[0]
    from urllib.parse import parse_qs, urlencode, urlsplit

    code, params = fake_ehr.authorize(first.headers["Location"])
    assert parse_qs(urlsplit(first.headers["Location"]).query)["state"]
    after = client.get("/callback?" + urlencode({"code": code, "state": params["state"]}))
    assert _cookie_header(after).split(";", 1)[0] != before

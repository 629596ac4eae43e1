"""Security headers, CSP frame-ancestors, CSRF and cookie flags."""

from __future__ import annotations

import io
import logging

import pytest
from flask import Request

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


def _https_app(fake_ehr, tmp_path, token_keys, base_url="https://spa.example.org"):
    app = create_app(
        {
            "SYMFHIR_BASE_URL": base_url,
            "SYMFHIR_TRUSTED_ISS": [fake_ehr.iss],
            "SYMFHIR_TOKEN_KEYS": token_keys,
            "SYMFHIR_SESSION_DIR": str(tmp_path),
        }
    )
    app.config["TESTING"] = True
    return app


HSTS = "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize("path", ["/launch", "/.well-known/jwks.json", "/static/app.css", "/nope"])
def test_hsts_over_https(client, path):
    response = client.get(path, base_url="https://spa.example.org")
    response.close()
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_hsts_behind_a_tls_proxy_with_an_https_base_url(fake_ehr, tmp_path, token_keys):
    # The proxy ends TLS and forwards plain http; the base URL says browsers use https.
    client = _https_app(fake_ehr, tmp_path, token_keys).test_client()
    response = client.get("/launch", base_url="http://spa.example.org")
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize(
    "base_url", ["http://localhost:5000", "http://127.0.0.1:5000", "http://[::1]:5000"]
)
def test_no_hsts_over_plain_http_localhost(client, base_url):
    response = client.get("/launch", base_url=base_url)
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


def test_no_hsts_on_localhost_even_with_an_https_base_url(fake_ehr, tmp_path, token_keys):
    client = _https_app(fake_ehr, tmp_path, token_keys).test_client()
    for base_url in ("http://localhost:5000", "https://localhost:5000"):
        response = client.get("/launch", base_url=base_url)
        assert "Strict-Transport-Security" not in response.headers


def _assert_too_large(response, caplog) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 413
    assert 'data-error-code="request_too_large"' in text
    assert "KB here" in text
    assert "Traceback" not in text and "RequestEntityTooLarge" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_large_post_to_logout_is_refused_before_the_form_is_read(launched, app, caplog):
    page = launched.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    limit = app.config["SYMFHIR_MAX_REQUEST_BYTES"]
    response = launched.post(
        "/logout", data={"csrf_token": token, "pad": "x" * limit}
    )  # a valid token: the size is checked first
    _assert_too_large(response, caplog)
    assert launched.get("/").status_code == 200  # not signed out


def test_the_size_check_comes_before_the_csrf_check(launched, app, monkeypatch, caplog):
    read = []
    monkeypatch.setattr(Request, "_load_form_data", lambda self: read.append(True))
    response = launched.post("/logout", data=b"x" * (app.config["SYMFHIR_MAX_REQUEST_BYTES"] + 1))
    _assert_too_large(response, caplog)
    assert read == []  # the body was never parsed


def test_a_chunked_body_is_cut_off_at_the_limit(launched, app, caplog):
    page = launched.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    body = f"csrf_token={token}&pad=".encode() + b"x" * app.config["SYMFHIR_MAX_REQUEST_BYTES"]
    # No Content-Length: the server says it ends the stream itself (chunked encoding).
    response = launched.post(
        "/logout",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True},
    )
    _assert_too_large(response, caplog)
    assert launched.get("/").status_code == 200


def test_a_small_post_is_not_refused(launched, app):
    page = launched.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = launched.post("/logout", data={"csrf_token": token, "pad": "x" * 10_000})
    assert response.status_code == 200


def test_the_photo_upload_keeps_its_larger_limit(launched, app):
    from smart_app.photos import MAX_UPLOAD_BYTES

    assert app.config["MAX_CONTENT_LENGTH"] == MAX_UPLOAD_BYTES
    app.config["SYMFHIR_MAX_REQUEST_BYTES"] = 10_000
    page = launched.get("/photos").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = launched.post(
        "/photos/upload",
        data={"csrf_token": token, "photos": (io.BytesIO(b"\0" * 50_000), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code != 413  # refused for other reasons (scopes), not its size
    small = launched.post("/logout", data={"csrf_token": token, "pad": "x" * 20_000})
    assert small.status_code == 413


def test_the_request_limits_are_settings(fake_ehr, tmp_path, token_keys):
    app = create_app(
        {
            "SYMFHIR_TRUSTED_ISS": [fake_ehr.iss],
            "SYMFHIR_TOKEN_KEYS": token_keys,
            "SYMFHIR_SESSION_DIR": str(tmp_path),
            "SYMFHIR_MAX_REQUEST_BYTES": "2000",
            "SYMFHIR_MAX_UPLOAD_BYTES": "1000",
        }
    )
    assert app.config["MAX_CONTENT_LENGTH"] == 1000
    # The ceiling wins over the per-request limit.
    response = app.test_client().post("/logout", data=b"x" * 1500)
    assert response.status_code == 413


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_bad_request_limits_are_config_errors(value):
    from smart_app.config import load_settings
    from symfhir.errors import ConfigError

    with pytest.raises(ConfigError):
        load_settings({"SYMFHIR_MAX_REQUEST_BYTES": value}, environ={})

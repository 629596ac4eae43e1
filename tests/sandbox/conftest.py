"""Fixtures for the sandbox EHR: an app with test client registrations and OAuth helpers."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from pytest_httpserver import HTTPServer

from smart_app.sandbox import create_sandbox
from tests.integration.conftest import fhir_base  # noqa: F401

BASE = "http://localhost:5100"
FHIR = f"{BASE}/fhir"
TOKEN_URL = f"{BASE}/token"
REDIRECT = "http://localhost:5000/callback"
PRACTITIONER = "prac-1"
PATIENT = "pat-1"
BACKEND_CLIENT = "backend-job"
SCOPE = "openid fhirUser launch offline_access patient/*.rs patient/Observation.c"
# Nothing listens on port 9: a unit test that reaches the upstream fails fast.
DEAD_UPSTREAM = "http://127.0.0.1:9/fhir"


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": "ec-1", "alg": "ES384"}, private=True)


def client_registrations(rsa_key: RSAKey, ec_key: ECKey) -> list[dict[str, Any]]:
    return [
        {
            "client_id": "symfhir",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [rsa_key.as_dict(private=False), ec_key.as_dict(private=False)]},
            "system_scopes": "system/AuditEvent.c",
        },
        {
            # Backend-only (no launch, no redirect URI), its system scopes in v1 syntax.
            "client_id": BACKEND_CLIENT,
            "jwks": {"keys": [rsa_key.as_dict(private=False)]},
            "system_scopes": ["system/AuditEvent.write", "system/Observation.read"],
        },
        {
            "client_id": "public-app",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "scope": "openid fhirUser launch launch/patient patient/*.read",
        },
        {
            "client_id": "secret-app",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": "s3cret-for-tests",
        },
    ]


def make_sandbox(rsa_key: RSAKey, ec_key: ECKey, upstream: str = DEAD_UPSTREAM) -> Flask:
    """The sandbox with the test registrations, in front of ``upstream``."""
    return create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_FHIR_UPSTREAM": upstream,
            "SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key),
        }
    )


@pytest.fixture
def app(rsa_key: RSAKey, ec_key: ECKey) -> Flask:
    return make_sandbox(rsa_key, ec_key)


@pytest.fixture
def upstream(httpserver: HTTPServer) -> HTTPServer:
    """The FHIR server behind the proxy, played by pytest-httpserver."""
    return httpserver


@pytest.fixture
def proxied_app(rsa_key: RSAKey, ec_key: ECKey, upstream: HTTPServer) -> Flask:
    """The sandbox in front of ``upstream`` (proxy tests override ``app`` with it)."""
    return make_sandbox(rsa_key, ec_key, upstream.url_for("/fhir"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def launch_code(client: FlaskClient, **data: Any) -> str:
    body = {"patient": PATIENT, "practitioner": PRACTITIONER, **data}
    response = client.post("/api/launch", json=body)
    assert response.status_code == 200, response.json
    return parse_qs(urlsplit(response.json["url"]).query)["launch"][0]


def authorize_params(client: FlaskClient, challenge: str, **overrides: Any) -> dict[str, Any]:
    params = {
        "response_type": "code",
        "client_id": "symfhir",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st-123",
        "aud": FHIR,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n-1",
    }
    if "launch" not in overrides:
        # A launch code is bound to the client it was made for (an unknown one: symfhir's).
        bound = overrides.get("client_id")
        bound = bound if bound in ("public-app", "secret-app") else "symfhir"
        params["launch"] = launch_code(client, client_id=bound)
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 302, response.data
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def assertion(key: Any, alg: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "symfhir",
        "sub": "symfhir",
        "aud": TOKEN_URL,
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])


@pytest.fixture
def get_code(client: FlaskClient) -> Callable[..., tuple[str, str]]:
    """Run /authorize (EHR launch) and return (code, verifier)."""

    def run(**overrides: Any) -> tuple[str, str]:
        verifier, challenge = pkce()
        response = client.get(
            "/authorize", query_string=authorize_params(client, challenge, **overrides)
        )
        params = redirect_params(response)
        assert "code" in params, params
        return params["code"], verifier

    return run


@pytest.fixture
def token_request(client: FlaskClient, rsa_key: RSAKey) -> Callable[..., Any]:
    """POST /token with private_key_jwt (RS384) unless `form` says otherwise."""

    def run(key: Any = None, alg: str = "RS384", **form: Any) -> Any:
        data = {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key or rsa_key, alg),
            **form,
        }
        return client.post("/token", data={k: v for k, v in data.items() if v is not None})

    return run

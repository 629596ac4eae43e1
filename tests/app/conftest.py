"""Fixtures of the app tests: ``fake_ehr`` (pytest-httpserver), ``app``, ``client`` and
``launched`` (a client that has finished an EHR launch)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer

from smart_app import create_app
from tests.app.fake_ehr import FakeEhr
from tests.app.resources import sample_resources


@pytest.fixture
def fake_ehr(httpserver: HTTPServer) -> Iterator[FakeEhr]:
    fake = FakeEhr(httpserver)
    fake.resources = sample_resources(fake.patient_id)
    yield fake


@pytest.fixture
def token_keys() -> list[str]:
    return [Fernet.generate_key().decode()]


@pytest.fixture
def app(fake_ehr: FakeEhr, tmp_path, token_keys: list[str]) -> Flask:
    app = create_app(
        {
            "SYMFHIR_TRUSTED_ISS": [fake_ehr.iss],
            "SYMFHIR_EHR_ORIGINS": ["https://ehr.example.org"],
            "SYMFHIR_TOKEN_KEYS": token_keys,
            "SYMFHIR_SESSION_DIR": str(tmp_path / "sessions"),
            "SYMFHIR_HTTP_TIMEOUT": 5.0,
            "SECRET_KEY": "test",
        }
    )
    app.config["TESTING"] = True
    fake_ehr.app_jwks = app.extensions["symfhir_key"].jwks()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def start_launch(client: FlaskClient, fake: FakeEhr, launch: str | None = "L1") -> str:
    """GET /launch; returns the authorize redirect's Location."""
    query = {"iss": fake.iss} | ({"launch": launch} if launch else {})
    response = client.get("/launch?" + urlencode(query))
    assert response.status_code == 302, response.data
    return response.headers["Location"]


def launch(client: FlaskClient, fake: FakeEhr, launch_code: str | None = "L1"):
    """A whole launch: /launch, approval at the fake, /callback. Returns the callback answer."""
    location = start_launch(client, fake, launch_code)
    code, params = fake.authorize(location)
    return client.get("/callback?" + urlencode({"code": code, "state": params["state"]}))


@pytest.fixture
def launched(client: FlaskClient, fake_ehr: FakeEhr) -> FlaskClient:
    response = launch(client, fake_ehr)
    assert response.status_code == 303, response.data
    assert response.headers["Location"] == "/"
    return client


READ_ONLY_SCOPE = "openid fhirUser launch patient/*.rs"


@pytest.fixture
def read_only(client: FlaskClient, fake_ehr: FakeEhr) -> FlaskClient:
    """A client launched with read scopes only: no writes, and no AuditEvent create either."""
    fake_ehr.granted_scope = READ_ONLY_SCOPE
    response = launch(client, fake_ehr)
    assert response.status_code == 303, response.data
    return client

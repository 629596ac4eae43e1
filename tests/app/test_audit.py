"""The audit channels (smart_app.audit): the backend token signs AuditEvent creates only, is
shared and thread-safe, backs off after a refusal; and the audit settings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask import Flask

from smart_app import audit
from smart_app.audit import (
    AuditChannelMisuse,
    AuditOnlyAuth,
    BackendAuditChannel,
    backend_channels,
    write_audit,
)
from smart_app.config import load_settings
from symfhir.audit import audit_event
from symfhir.errors import ConfigError, FhirAuthError, FhirServerError, FhirTransportError
from tests.app.fake_ehr import FakeEhr

pytestmark = pytest.mark.unit

BASE = "https://ehr.example.org/fhir"


class Spy:
    """An inner auth that records what it was asked to sign."""

    def __init__(self) -> None:
        self.seen: list[requests.PreparedRequest] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.seen.append(request)
        request.headers["Authorization"] = "Bearer SYSTEM-x"
        return request


def prepared(method: str, url: str, body: dict[str, Any] | None = None) -> requests.PreparedRequest:
    data = json.dumps(body).encode() if body is not None else None
    return requests.Request(method, url, data=data).prepare()


EVENT = audit_event(
    "read", "p1", "Practitioner/dr1", now=datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
)


def test_audit_event_create_is_signed():
    spy = Spy()
    request = AuditOnlyAuth(spy, BASE)(prepared("POST", f"{BASE}/AuditEvent", EVENT))
    assert spy.seen == [request]
    assert request.headers["Authorization"] == "Bearer SYSTEM-x"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", f"{BASE}/Patient/p1", None),
        ("GET", f"{BASE}/AuditEvent", None),
        ("POST", f"{BASE}", {"resourceType": "Bundle", "type": "batch"}),
        ("POST", f"{BASE}/Observation", {"resourceType": "Observation"}),
        ("POST", f"{BASE}/AuditEvent/_search", EVENT),
        ("POST", f"{BASE}/AuditEvent?_format=json", EVENT),
        ("PUT", f"{BASE}/AuditEvent/1", EVENT),
        ("DELETE", f"{BASE}/AuditEvent/1", None),
        ("POST", "https://elsewhere.example.org/fhir/AuditEvent", EVENT),
        ("POST", f"{BASE}/AuditEvent", {"resourceType": "Patient"}),
        ("POST", f"{BASE}/AuditEvent", None),
    ],
)
def test_nothing_else_is_signed(method, url, body):
    spy = Spy()
    with pytest.raises(AuditChannelMisuse):
        AuditOnlyAuth(spy, BASE)(prepared(method, url, body))
    assert spy.seen == []  # the token was never fetched nor attached


@pytest.fixture
def channel(app: Flask, fake_ehr: FakeEhr) -> Iterator[BackendAuditChannel]:
    made = BackendAuditChannel(
        fake_ehr.iss,
        fake_ehr.token_url,
        "symfhir",
        app.extensions["symfhir_key"],
        "system/AuditEvent.c",
        5.0,
    )
    yield made
    made.close()


def token_requests(fake: FakeEhr) -> list[Any]:
    return [
        r
        for r in fake.requests_to("/auth/token")
        if r.form.get("grant_type") == "client_credentials"
    ]


def test_channel_writes_with_its_own_token(channel, fake_ehr):
    channel.write(EVENT)
    assert fake_ehr.audit_events == [EVENT]
    assert fake_ehr.audit_tokens == fake_ehr.system_tokens
    assert fake_ehr.assertion_problems == []


def test_channel_refuses_other_resources(channel, fake_ehr):
    with pytest.raises(AuditChannelMisuse):
        channel.write({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}})
    assert fake_ehr.server.log == []  # not even a token request


def test_channel_is_thread_safe(app, channel, fake_ehr):
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with app.app_context():
                channel.write(EVENT)
        except BaseException as exc:  # reported below: a thread's error is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake_ehr.audit_events) == 8
    assert len(fake_ehr.system_tokens) == 1  # one token for all, fetched under the lock


def test_channel_backs_off_after_a_token_refusal(channel, fake_ehr, monkeypatch):
    monkeypatch.setattr(audit, "TOKEN_RETRY_AFTER_S", 0.3)
    fake_ehr.system_token_error = "unauthorized_client"
    with pytest.raises(FhirAuthError):
        channel.write(EVENT)
    with pytest.raises(FhirAuthError):
        channel.write(EVENT)
    assert len(token_requests(fake_ehr)) == 1  # the second page did not ask again
    fake_ehr.system_token_error = None
    time.sleep(0.35)
    channel.write(EVENT)
    assert len(token_requests(fake_ehr)) == 2
    assert len(fake_ehr.audit_events) == 1


def test_channel_backs_off_when_the_token_endpoint_is_down(app, fake_ehr):
    dead = BackendAuditChannel(
        fake_ehr.iss,
        "http://127.0.0.1:9/token",  # nothing listens on port 9
        "symfhir",
        app.extensions["symfhir_key"],
        "system/AuditEvent.c",
        2.0,
    )
    try:
        with pytest.raises(FhirServerError) as first:
            dead.write(EVENT)
        assert not isinstance(first.value, FhirAuthError)  # unreachable, not refused
        with pytest.raises(FhirAuthError, match="not asked again yet"):
            dead.write(EVENT)
    finally:
        dead.close()
    assert fake_ehr.audit_events == []


def test_channel_does_not_back_off_for_a_refused_write(channel, fake_ehr):
    fake_ehr.audit_failure = 403
    with pytest.raises(FhirAuthError):
        channel.write(EVENT)
    fake_ehr.audit_failure = None
    channel.write(EVENT)  # the token was fine: no waiting
    assert len(fake_ehr.audit_events) == 1


class FailingUserClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def create(self, _event: dict[str, Any]) -> None:
        raise self.error


def test_user_timeout_is_not_written_twice():
    """A user-token write that may have reached the server is not repeated by the backend."""
    called: list[bool] = []
    error = FhirTransportError("create AuditEvent", "read timed out")
    used = write_audit(EVENT, FailingUserClient(error), lambda: called.append(True))
    assert used is None
    assert called == []


def test_user_refusal_goes_to_the_backend():
    class Backend:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def write(self, event: dict[str, Any]) -> None:
            self.events.append(event)

    backend = Backend()
    error = FhirAuthError("create AuditEvent", "forbidden", status=403)
    assert write_audit(EVENT, FailingUserClient(error), lambda: backend) == "backend"
    assert backend.events == [EVENT]


def test_unexpected_backend_error_is_only_a_warning(caplog):
    def broken() -> BackendAuditChannel:
        raise RuntimeError("secret detail Patient/p1")

    assert write_audit(EVENT, None, broken) is None
    (record,) = [r for r in caplog.records if "AuditEvent not written" in r.getMessage()]
    assert "RuntimeError" in record.getMessage()
    assert "p1" not in record.getMessage()


def test_backend_channels_are_shared_and_can_be_switched_off(app, fake_ehr):
    channels = backend_channels(app)
    assert channels is not None and backend_channels(app) is channels
    first = channels.get(fake_ehr.iss, fake_ehr.token_url)
    assert channels.get(fake_ehr.iss, fake_ehr.token_url) is first
    assert channels.get(fake_ehr.iss, fake_ehr.token_url + "x") is not first
    channels.close()
    app.config["SYMFHIR_AUDIT_BACKEND"] = False
    assert backend_channels(app) is None


# --- settings -----------------------------------------------------------------------------


def test_audit_defaults():
    settings = load_settings({}, environ={})
    assert settings["SYMFHIR_AUDIT_BACKEND"] is True
    assert settings["SYMFHIR_AUDIT_SCOPE"] == "system/AuditEvent.c"


def test_audit_settings_from_environment():
    settings = load_settings(
        {},
        environ={"SYMFHIR_AUDIT_BACKEND": "off", "SYMFHIR_AUDIT_SCOPE": "system/AuditEvent.write"},
    )
    assert settings["SYMFHIR_AUDIT_BACKEND"] is False
    assert settings["SYMFHIR_AUDIT_SCOPE"] == "system/AuditEvent.write"


@pytest.mark.parametrize(
    "scope",
    [
        "system/*.c",  # any type: more than audit records
        "system/AuditEvent.c system/Patient.r",
        "patient/AuditEvent.c",
        "user/AuditEvent.c",
        "system/AuditEvent.rs",  # cannot create
        "system/AuditEvent.",
        "system/AuditEvent.rc",  # letters out of order
        "",
    ],
)
def test_bad_audit_scope(scope):
    with pytest.raises(ConfigError, match="SYMFHIR_AUDIT_SCOPE"):
        load_settings({"SYMFHIR_AUDIT_SCOPE": scope}, environ={})


def test_bad_audit_switch():
    with pytest.raises(ConfigError, match="SYMFHIR_AUDIT_BACKEND"):
        load_settings({"SYMFHIR_AUDIT_BACKEND": "maybe"}, environ={})

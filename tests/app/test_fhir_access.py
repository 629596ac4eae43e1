"""Patient-context enforcement, AuditEvents and read-only mode."""

from __future__ import annotations

import pytest

from smart_app.fhir_access import audit_event
from smart_app.launch.smart import allows, can_write
from tests.app.conftest import launch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "path", ["/patient/other", "/?patient=other", "/?patient=Patient/other", "/?subject=x"]
)
def test_other_patient_is_refused_and_audited(launched, fake_ehr, path):
    response = launched.get(path)
    assert response.status_code == 403
    assert 'data-error-code="wrong_patient"' in response.get_data(as_text=True)
    (event,) = fake_ehr.audit_events
    assert event["outcome"] == "4"
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}
    assert event["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert [r for r in fake_ehr.requests_to("/fhir") if r.path == "/fhir"] == []  # no read


def test_own_patient_by_id_is_allowed(launched, fake_ehr):
    assert launched.get("/patient/p1").status_code == 200


def test_summary_view_is_audited(launched, fake_ehr):
    assert launched.get("/").status_code == 200
    (event,) = fake_ehr.audit_events
    assert event["resourceType"] == "AuditEvent"
    assert event["type"]["code"] == "rest"
    assert event["subtype"][0]["code"] == "read"
    assert event["action"] == "R" and event["outcome"] == "0"


def test_read_only_when_no_write_scope_granted(client, fake_ehr):
    fake_ehr.granted_scope = "openid fhirUser launch patient/*.rs"
    assert launch(client, fake_ehr).status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert 'id="read-only-notice"' in page
    assert fake_ehr.audit_events == []  # AuditEvent create was not granted either


def test_writable_session_has_no_read_only_notice(launched):
    assert 'id="read-only-notice"' not in launched.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("scopes", "writable"),
    [
        (["patient/Consent.crus"], True),
        (["patient/Consent.rs", "patient/AuditEvent.rs"], False),
        (["user/Observation.u"], True),
        (["patient/*.read"], False),
        (["patient/*.write"], True),
        (["patient/Observation.rs?category=survey"], False),
        (["openid", "fhirUser", "launch"], False),
    ],
)
def test_can_write(scopes, writable):
    assert can_write(scopes) is writable


def test_allows():
    assert allows(["patient/AuditEvent.c"], "AuditEvent", "c")
    assert allows(["patient/*.cruds"], "AuditEvent", "c")
    assert not allows(["patient/Patient.r"], "AuditEvent", "c")
    assert allows(["patient/*.write"], "Consent", "u")


def test_audit_event_shape():
    event = audit_event("create", "p1", None, success=True)
    assert event["action"] == "C"
    assert event["agent"][0]["who"] == {"display": "unknown practitioner"}
    assert event["source"]["type"][0]["code"] == "4"


def test_expired_token_is_refreshed_with_private_key_jwt(client, fake_ehr, app):
    fake_ehr.expires_in = 0  # already due for renewal
    assert launch(client, fake_ehr).status_code == 303
    assert client.get("/").status_code == 200
    assert fake_ehr.refreshes == 1
    assert fake_ehr.assertion_problems == []
    (search,) = [r for r in fake_ehr.requests_to("/fhir") if r.path == "/fhir"]
    assert search.headers["Authorization"].startswith("Bearer ACCESS-refreshed-")
    # The refreshed token was stored (encrypted): the next view needs no refresh.
    assert client.get("/").status_code == 200
    assert fake_ehr.refreshes == 1
    for path in app.extensions["symfhir_sessions"].directory.glob("*.session"):
        assert b"ACCESS-" not in path.read_bytes()


def test_no_tokens_or_phi_in_logs(client, fake_ehr, caplog):
    caplog.set_level("DEBUG")
    launch(client, fake_ehr)
    client.get("/")
    client.get("/patient/other")
    text = caplog.text
    for secret in ("ACCESS-", "REFRESH-", "Ada", "Testperson", "Lidocaine", "eyJ"):
        assert secret not in text

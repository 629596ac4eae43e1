"""Patient-context enforcement, AuditEvents and read-only mode."""

from __future__ import annotations

import time

import pytest

from symfhir.smart.scopes import allows, can_write
from tests.app.conftest import READ_ONLY_SCOPE, launch

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


def test_read_only_when_no_write_scope_granted(read_only, fake_ehr):
    page = read_only.get("/").get_data(as_text=True)
    assert 'id="read-only-notice"' in page


def test_read_only_view_is_audited_through_backend_services(read_only, fake_ehr):
    """No AuditEvent create in the launch: the app's own system token writes the event, which
    still names the practitioner as requestor, symfhir as the app and the patient."""
    assert read_only.get("/").status_code == 200
    (event,) = fake_ehr.audit_events
    (token,) = fake_ehr.audit_tokens
    assert token.startswith("SYSTEM-")
    assert event["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert event["agent"][0]["requestor"] is True
    assert event["agent"][1]["who"] == {"display": "symfhir"}
    assert event["agent"][1]["type"]["coding"][0]["code"] == "110150"
    assert event["source"]["observer"] == {"display": "symfhir"}
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}
    assert event["subtype"][0]["code"] == "read"
    assert event["action"] == "R" and event["outcome"] == "0"
    (request,) = [r for r in fake_ehr.requests_to("/auth/token") if b"client_credentials" in r.data]
    assert request.form["scope"] == "system/AuditEvent.c"
    assert fake_ehr.assertion_problems == []  # the same private_key_jwt checks as the launch


def test_granted_audit_scope_uses_the_user_token(launched, fake_ehr):
    assert launched.get("/").status_code == 200
    (token,) = fake_ehr.audit_tokens
    assert token.startswith("ACCESS-")
    assert fake_ehr.system_tokens == []  # no backend token was even asked for


def test_refused_user_token_falls_back_to_backend(launched, fake_ehr):
    fake_ehr.refuse_user_audit = True  # the grant said yes, the server says 403
    assert launched.get("/").status_code == 200
    (token,) = fake_ehr.audit_tokens
    assert token.startswith("SYSTEM-")


def test_backend_token_is_reused_across_requests(read_only, fake_ehr):
    for _ in range(3):
        assert read_only.get("/").status_code == 200
    assert len(fake_ehr.audit_events) == 3
    assert len(fake_ehr.system_tokens) == 1
    assert set(fake_ehr.audit_tokens) == set(fake_ehr.system_tokens)


def test_backend_token_is_renewed_before_it_expires(read_only, fake_ehr):
    fake_ehr.system_expires_in = 1  # renewed at half its life: after 0.5 s
    assert read_only.get("/").status_code == 200
    time.sleep(0.6)
    assert read_only.get("/").status_code == 200
    assert len(fake_ehr.system_tokens) == 2
    assert fake_ehr.audit_tokens == fake_ehr.system_tokens  # each write with the fresh one
    assert fake_ehr.assertion_problems == []  # a new jti for each token request


def test_backend_token_is_used_only_for_audit_event_creates(read_only, fake_ehr):
    read_only.get("/")
    read_only.get("/patient/other")  # refused and audited
    system = [
        r
        for r, _ in fake_ehr.server.log
        if r.headers.get("Authorization", "").startswith("Bearer SYSTEM-")
    ]
    assert len(system) == 2
    assert {(r.method, r.path) for r in system} == {("POST", "/fhir/AuditEvent")}
    reads = [r for r in fake_ehr.requests_to("/fhir") if r.path == "/fhir"]
    assert reads and all(r.headers["Authorization"].startswith("Bearer ACCESS-") for r in reads)


@pytest.mark.parametrize(
    "breakage",
    [
        "token_refused",  # the EHR does not allow the app Backend Services
        "scope_not_registered",  # it does, but not for AuditEvent create
        "audit_endpoint_down",
        "backend_off",
    ],
)
def test_audit_failure_never_fails_the_page(client, app, fake_ehr, caplog, breakage):
    fake_ehr.granted_scope = READ_ONLY_SCOPE
    if breakage == "token_refused":
        fake_ehr.system_token_error = "unauthorized_client"
    elif breakage == "scope_not_registered":
        fake_ehr.system_scopes = set()
    elif breakage == "audit_endpoint_down":
        fake_ehr.audit_failure = 500
    else:
        app.config["SYMFHIR_AUDIT_BACKEND"] = False
    assert launch(client, fake_ehr).status_code == 303
    caplog.set_level("WARNING")
    response = client.get("/")
    assert response.status_code == 200
    assert "Lidocaine" in response.get_data(as_text=True)  # the page itself is whole
    assert fake_ehr.audit_events == []
    warnings = [
        r.getMessage() for r in caplog.records if "AuditEvent not written" in r.getMessage()
    ]
    assert len(warnings) == 1
    for secret in ("ACCESS-", "SYSTEM-", "REFRESH-", "eyJ", "p1", "dr1"):
        assert secret not in warnings[0]
    if breakage == "backend_off":
        assert fake_ehr.requests_to("/auth/token")[-1].form["grant_type"] == "authorization_code"


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
    for secret in ("ACCESS-", "REFRESH-", "SYSTEM-", "Ada", "Testperson", "Lidocaine", "eyJ"):
        assert secret not in text


def test_no_tokens_or_phi_in_logs_of_the_backend_channel(read_only, fake_ehr, caplog):
    caplog.set_level("DEBUG")
    assert read_only.get("/").status_code == 200
    assert fake_ehr.system_tokens  # the backend channel did run
    text = caplog.text
    for secret in ("ACCESS-", "SYSTEM-", "eyJ", "Ada", "Testperson", "Lidocaine"):
        assert secret not in text

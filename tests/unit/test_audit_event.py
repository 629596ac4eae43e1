"""symfhir.audit: the AuditEvent of an access, built from what is passed in, and the command
line's audit trail."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.audit import ClientAuditTrail, audit_event
from symfhir.errors import FhirAuthError
from symfhir.fhir.compartment import in_compartment

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))


@pytest.mark.parametrize(
    ("subtype", "action"), [("read", "R"), ("search", "E"), ("create", "C"), ("update", "U")]
)
def test_action_follows_the_interaction(subtype, action):
    event = audit_event(subtype, "p1", "Practitioner/dr1", now=NOW)
    assert event["action"] == action
    assert event["subtype"][0]["code"] == subtype


def test_shape_of_a_successful_access():
    event = audit_event(
        "read", "p1", "Practitioner/dr1", description="photo read", resources=["Media/7"], now=NOW
    )
    assert event["recorded"] == "2026-11-25T09:30:00-06:00"  # the instant passed in, as given
    assert event["outcome"] == "0"
    assert event["outcomeDesc"] == "photo read"
    assert event["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert event["agent"][0]["requestor"] is True
    assert event["source"]["type"][0]["code"] == "4"
    assert [e["what"]["reference"] for e in event["entity"]] == ["Patient/p1", "Media/7"]
    # The event is in the patient's compartment, so the launch's token may write it.
    assert in_compartment({**event, "entity": event["entity"][:1]}, "p1")


def test_refusal_names_the_other_patient_only_as_text():
    event = audit_event("read", "p1", None, success=False, requested="p2", now=NOW)
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"] == {"display": "unknown practitioner"}
    assert event["entity"][-1] == {"description": "requested Patient/p2"}
    assert all("p2" not in str(e.get("what", "")) for e in event["entity"])


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.created: list[dict] = []
        self.fail = fail

    def create(self, resource: dict) -> dict:
        if self.fail:
            raise FhirAuthError("create AuditEvent", "refused", status=403)
        self.created.append(resource)
        return resource


def test_client_trail_writes_with_its_client_at_its_clock():
    client = FakeClient()
    trail = ClientAuditTrail(client, "p1", "Practitioner/dr1", clock=lambda: NOW)  # type: ignore[arg-type]
    trail("create", description="intake saved", resources=["QuestionnaireResponse/3"])
    (event,) = client.created
    assert event["action"] == "C"
    assert event["recorded"] == NOW.isoformat()
    assert event["entity"][1]["what"] == {"reference": "QuestionnaireResponse/3"}


def test_client_trail_never_raises(caplog):
    trail = ClientAuditTrail(FakeClient(fail=True), "p1", None, clock=lambda: NOW)  # type: ignore[arg-type]
    trail("read")
    assert "AuditEvent not written" in caplog.text

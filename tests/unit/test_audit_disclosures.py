"""Every AuditTrail records a disclosure (``disclosure=DisclosureTo(...)``) in the one shape of
``symfhir.audit.disclosure_event`` (valid R4), so the accounting of disclosures lists its
recipient and purpose; without one, each writes the ordinary access as before."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from symfhir.audit import ClientAuditTrail, DisclosureTo, is_disclosure
from symfhir.fhir.compartment import in_compartment
from symfhir.marketing.self_service import SelfServiceAuditTrail
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.disclosures import accounting_of_disclosures
from symfhir.privacy.model import PrivacyRequest, Requester
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
TO_PHYSICIAN = DisclosureTo(
    "Dr. Dana Ashgrove", "TREAT", "Practitioner/doc1", ("Observation", "Binary/b1")
)


class Recording:
    """A client that keeps what is created (and answers an AuditEvent search with it)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.created.append({"id": f"e{len(self.created) + 1}", **resource})
        return resource

    def search(self, resource_type: str, params: dict) -> list[dict[str, Any]]:
        return [r for r in self.created if r["resourceType"] == resource_type]


def check_disclosure(event: dict[str, Any], patient: str = "p1") -> None:
    AuditEvent.model_validate(event)  # raises on anything R4 refuses
    assert is_disclosure(event)
    assert in_compartment(event, patient)
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    (recipient,) = [a for a in event["agent"] if a["type"]["coding"][0]["code"] == "110152"]
    assert recipient["name"] == "Dr. Dana Ashgrove"
    assert recipient["who"] == {"reference": "Practitioner/doc1"}
    patient_entity, observations, binary = event["entity"]
    assert patient_entity["what"] == {"reference": f"Patient/{patient}"}
    assert binary["what"] == {"reference": "Binary/b1"}
    assert observations["type"]["code"] == "Observation"


def test_the_client_trail_writes_the_disclosure_shape() -> None:
    client = Recording()
    trail = ClientAuditTrail(client, "p1", "Practitioner/nurse1", clock=lambda: NOW)  # type: ignore[arg-type]
    trail(
        "export",
        description="export zip: 3 resources",
        resources=["Patient/p1"],
        disclosure=TO_PHYSICIAN,
    )
    (event,) = client.created
    check_disclosure(event)
    assert event["outcomeDesc"] == "export zip: 3 resources"
    assert event["agent"][0]["who"] == {"reference": "Practitioner/nurse1"}
    assert event["recorded"] == "2026-11-25T09:30:00-06:00"


def test_without_a_disclosure_the_client_trail_writes_an_ordinary_access() -> None:
    client = Recording()
    trail = ClientAuditTrail(client, "p1", None, clock=lambda: NOW)  # type: ignore[arg-type]
    trail("read", resources=["Patient/p1", "Media/m1"])
    (event,) = client.created
    AuditEvent.model_validate(event)
    assert not is_disclosure(event)
    assert event["type"]["code"] == "rest"
    # The patient is the first entity, and only once.
    assert [e["what"]["reference"] for e in event["entity"]] == ["Patient/p1", "Media/m1"]


def test_the_request_trail_names_the_client_among_the_resources() -> None:
    client = Recording()
    trail = RequestAuditTrail(client, "Practitioner/officer1", clock=lambda: NOW)  # type: ignore[arg-type]
    trail("read", resources=["Task/t1", "Patient/p1"], disclosure=TO_PHYSICIAN, success=False)
    (event,) = client.created
    check_disclosure(event)
    assert event["outcome"] == "4"
    # A disclosure's entities are whose data it was and what went out: not the Task.
    assert "Task/t1" not in str(event["entity"])


def test_the_request_trail_without_a_client_names_nobody() -> None:
    client = Recording()
    trail = RequestAuditTrail(client, None, clock=lambda: NOW)  # type: ignore[arg-type]
    trail("read", disclosure=DisclosureTo("Avery Quillfeather"))
    (event,) = client.created
    AuditEvent.model_validate(event)
    assert is_disclosure(event)
    assert "entity" not in event


def test_the_self_service_trail_writes_the_disclosure_with_the_client_as_requestor() -> None:
    client = Recording()
    trail = SelfServiceAuditTrail(client, clock=lambda: NOW)  # type: ignore[arg-type]
    trail("read", resources=["Patient/p1"], disclosure=TO_PHYSICIAN)
    (event,) = client.created
    check_disclosure(event)
    assert event["agent"][0]["who"] == {"reference": "Patient/p1"}


@pytest.mark.parametrize("officer", [False, True])
def test_the_apps_trails_write_the_disclosure_shape(
    officer: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smart_app.fhir_access as fhir_access
    import smart_app.privacy_dashboard as dashboard

    written: list[dict[str, Any]] = []
    module = dashboard if officer else fhir_access
    monkeypatch.setattr(module, "write_audit", lambda event, *_: written.append(event))
    context = {
        "patient": "p1",
        "fhir_user": "Practitioner/nurse1",
        "scopes": [],  # no AuditEvent create: no client is made, the channel would write
        "iss": "https://ehr.example.com/fhir",
        "token_url": "https://ehr.example.com/token",
    }
    kind = dashboard.OfficerAccess if officer else fhir_access.PatientAccess
    access = kind(context, "symfhir", None)  # type: ignore[arg-type]
    access.audit("read", resources=["Patient/p1"], disclosure=TO_PHYSICIAN)
    (event,) = written
    check_disclosure(event)


def test_the_wrapping_trails_pass_the_disclosure_on() -> None:
    from symfhir.privacy.restriction import _naming_client

    trail = Trail()
    _naming_client(trail, "p1")("read", disclosure=TO_PHYSICIAN)
    assert trail.disclosures == [TO_PHYSICIAN]
    assert trail.events[0][3] == ("Patient/p1",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"recipient": "Avery", "purpose": "HMARKT"}, "purpose"),
        ({"recipient": "  "}, "recipient"),
        ({"recipient": "Avery", "disclosed": ("observation",)}, "disclosed item"),
        ({"recipient": "Avery", "disclosed": ("Binary/",)}, "disclosed item"),
    ],
)
def test_a_disclosure_without_a_recipient_or_with_an_unknown_purpose_is_refused(
    args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DisclosureTo(**args)


def test_the_accounting_lists_what_a_trail_recorded_with_recipient_and_purpose() -> None:
    client = Recording()
    trail = ClientAuditTrail(client, "p1", "Practitioner/nurse1", clock=lambda: NOW)  # type: ignore[arg-type]
    trail("export", description="export bundle", disclosure=TO_PHYSICIAN)
    trail("read", resources=["Media/m1"])  # an ordinary access: not a disclosure
    accounting = accounting_of_disclosures(
        client,  # type: ignore[arg-type]
        Actor("Practitioner/officer1"),
        "p1",
        start=date(2026, 11, 1),
        end=date(2026, 11, 30),
        now=NOW,
        audit=Trail(),
    )
    (item,) = accounting.disclosures
    assert (item.recipient, item.recipient_reference) == ("Dr. Dana Ashgrove", "Practitioner/doc1")
    assert (item.purpose_code, item.purpose) == ("TREAT", "treatment")
    assert item.disclosed == ("Observation", "Binary")
    assert item.by == "Practitioner/nurse1"


def request(**requester: Any) -> PrivacyRequest:
    return PrivacyRequest(
        task_id="t1",
        kind="access",
        requester=Requester(**{"name": "Avery Quillfeather", **requester}),
        received=NOW,
        due=date(2026, 12, 25),
        patient_id="p1",
    )


def test_an_access_package_goes_to_the_requester_at_their_request() -> None:
    from symfhir.export.access_request import package_recipient

    assert package_recipient(request()) == DisclosureTo(
        "Avery Quillfeather", "PATRQT", "Patient/p1"
    )
    agent = package_recipient(request(agent="Rowan Pellfield"))
    assert agent == DisclosureTo("Rowan Pellfield (authorized agent of Avery Quillfeather)")


def test_a_handover_is_recorded_as_a_disclosure_to_the_requester() -> None:
    from symfhir.export.access_request import record_handover

    client = Recording()
    trail = RequestAuditTrail(client, None, clock=lambda: NOW)  # type: ignore[arg-type]
    record_handover(trail, request(), via="portal download")
    (event,) = client.created
    AuditEvent.model_validate(event)
    assert is_disclosure(event) and in_compartment(event, "p1")
    assert event["outcomeDesc"] == "access package handed over: portal download"
    recipient = event["agent"][-1]
    assert (recipient["name"], recipient["who"]) == (
        "Avery Quillfeather",
        {"reference": "Patient/p1"},
    )
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"


def test_the_export_commands_defaults_match_the_workflow() -> None:
    from symfhir.audit import PURPOSES
    from symfhir.export import commands, workflow

    assert commands.TO_THE_CLIENT == workflow.TO_THE_CLIENT
    assert set(commands.PURPOSE_CODES) == set(PURPOSES)

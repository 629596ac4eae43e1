"""symfhir.audit.disclosure_event: the one shape of a disclosure (R4 example-disclosure),
valid R4, and is_disclosure telling it apart from an ordinary access."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from symfhir.audit import audit_event, disclosure_event, is_disclosure
from symfhir.fhir.compartment import in_compartment

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))


def event(**overrides: object) -> dict:
    args: dict = {
        "recipient": "Dr. Dana Ashgrove",
        "recipient_reference": "Practitioner/doc1",
        "purpose": "TREAT",
        "disclosed": ["Binary/pkg1", "Observation", "Media"],
        "fhir_user": "Practitioner/nurse1",
        "now": NOW,
    }
    args.update(overrides)
    return disclosure_event("p1", **args)


def test_the_shape_of_the_r4_disclosure_example_and_valid_r4():
    built = event()
    AuditEvent.model_validate(built)  # raises on anything R4 refuses
    assert built["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110106",
        "display": "Export",
    }
    assert built["subtype"] == [{"code": "Disclosure", "display": "HIPAA disclosure"}]
    assert built["action"] == "R"
    assert built["recorded"] == "2026-11-25T09:30:00-06:00"
    purpose = built["purposeOfEvent"][0]["coding"][0]
    assert (purpose["system"], purpose["code"]) == (
        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "TREAT",
    )
    roles = [a["type"]["coding"][0]["code"] for a in built["agent"]]
    assert roles == ["humanuser", "110153", "110152"]
    user, source, recipient = built["agent"]
    assert user == {**user, "who": {"reference": "Practitioner/nurse1"}, "requestor": True}
    assert source["who"] == {"display": "symfhir"}
    assert recipient["name"] == "Dr. Dana Ashgrove"
    assert recipient["who"] == {"reference": "Practitioner/doc1"}
    assert recipient["requestor"] is False
    patient, package, *types = built["entity"]
    assert patient["what"] == {"reference": "Patient/p1"}
    assert package["what"] == {"reference": "Binary/pkg1"}
    assert [t["type"]["code"] for t in types] == ["Observation", "Media"]
    assert all("what" not in t for t in types)
    assert in_compartment(built, "p1")


def test_recipient_without_a_reference_and_no_known_user():
    built = event(recipient="  Avery Quillfeather ", recipient_reference=None, fhir_user=None)
    AuditEvent.model_validate(built)
    assert [a["type"]["coding"][0]["code"] for a in built["agent"]] == ["110153", "110152"]
    assert built["agent"][1] == {
        "type": built["agent"][1]["type"],
        "name": "Avery Quillfeather",
        "requestor": False,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"purpose": "HMARKT"}, "purpose"),
        ({"purpose": "treat"}, "purpose"),
        ({"recipient": "  "}, "recipient"),
        ({"disclosed": ["Binary/"]}, "disclosed"),
        ({"disclosed": ["observation"]}, "disclosed"),
        ({"disclosed": ["<b>Media"]}, "disclosed"),
    ],
)
def test_refuses_what_an_accounting_could_not_show(overrides, message):
    with pytest.raises(ValueError, match=message):
        event(**overrides)


def test_only_disclosures_are_disclosures():
    assert is_disclosure(event())
    assert not is_disclosure(audit_event("read", "p1", "Practitioner/nurse1", now=NOW))
    assert not is_disclosure(audit_event("search", "p1", None, now=NOW))
    # A disclosure written by another system with the subtype only still counts.
    other = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "subtype": [{"code": "Disclosure"}],
    }
    assert is_disclosure(other)

"""A privacy request <-> its Task: round trips, R4B validity, the status mapping, and Tasks
that are not privacy requests."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from symfhir.privacy import task as tasks
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    KINDS,
    PARTIALLY_COMPLETED,
    RECEIVED,
    PrivacyRequest,
    Requester,
    TaskOutput,
    Verification,
)
from symfhir.validation import validate_resource

ZONE = ZoneInfo("America/Chicago")
BASE = "http://symfhir.org/fhir/sid/symetrie-studio-spa"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "codesystems"
WHEN = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)


def _request(**changes: object) -> PrivacyRequest:
    values: dict[str, object] = {
        "task_id": None,
        "kind": "access",
        "requester": Requester(
            "Avery Quillfeather", date(1985, 4, 12), "avery.q@example.com", "+13375550101"
        ),
        "received": WHEN,
        "due": date(2026, 12, 25),
    }
    values.update(changes)
    return PrivacyRequest(**values)  # type: ignore[arg-type]


FULL = _request(
    kind="ccpa-know",
    requester=Requester(
        "Avery Quillfeather", date(1985, 4, 12), "avery.q@example.com", "+13375550101", "Rowan Q"
    ),
    business_status=PARTIALLY_COMPLETED,
    patient_id="p1",
    details="Everything you hold about me, please.",
    inputs={"format": "zip", "categories": "photos"},
    verifications=(
        Verification("email-code", None, WHEN),
        Verification("in-person", "Practitioner/7", WHEN),
    ),
    extended_reason="The photo archive is being restored from backup.",
    outputs=(
        TaskOutput("denial-reason", text="Some records are kept for 7 years."),
        TaskOutput(
            "access-package", attachment={"contentType": "application/zip", "url": "Binary/9"}
        ),
        TaskOutput("deletion-report", reference="DocumentReference/4"),
    ),
)


@pytest.mark.parametrize(
    "request_",
    [_request(), _request(kind="deletion", requester=Requester("Sam Doe")), FULL],
    ids=["minimal", "name-only", "everything"],
)
def test_round_trip(request_: PrivacyRequest) -> None:
    task = tasks.to_task(request_, "REF-1", BASE)
    assert validate_resource(task) == []
    record = tasks.from_task(json.loads(json.dumps(task)), BASE)
    assert record.request == request_
    assert record.reference == "REF-1"


def test_task_carries_the_fhir_elements() -> None:
    task = tasks.to_task(FULL, "REF-2", BASE)
    assert task["intent"] == "order"
    assert task["identifier"] == [{"system": f"{BASE}/privacy-request", "value": "REF-2"}]
    assert task["code"]["coding"][0] == {
        "system": "http://symfhir.org/fhir/CodeSystem/privacy-request",
        "code": "ccpa-know",
        "display": "CCPA right to know",
    }
    assert task["businessStatus"]["coding"][0]["code"] == "partially-completed"
    assert task["status"] == "completed"
    assert task["for"] == {"reference": "Patient/p1"}
    assert task["authoredOn"] == "2026-11-25T09:30:00-06:00"
    assert task["restriction"]["period"]["end"] == "2026-12-25"
    names = [i["type"]["text"] for i in task["input"]]
    assert names == [
        "requester.name",
        "requester.birth-date",
        "requester.email",
        "requester.phone",
        "requester.agent",
        "details",
        "format",
        "categories",
    ]
    assert task["input"][1] == {"type": {"text": "requester.birth-date"}, "valueDate": "1985-04-12"}
    in_person = task["note"][1]
    assert in_person["authorReference"] == {"reference": "Practitioner/7"}
    assert in_person["time"] == "2026-11-25T09:30:00-06:00"
    assert [o["type"]["text"] for o in task["output"]] == [
        "denial-reason",
        "access-package",
        "deletion-report",
    ]


@pytest.mark.parametrize(
    ("business", "verified", "status"),
    [
        (RECEIVED, False, "requested"),
        (RECEIVED, True, "received"),
        (IDENTITY_VERIFIED, True, "accepted"),
        (IN_PROGRESS, True, "in-progress"),
        (COMPLETED, True, "completed"),
        (PARTIALLY_COMPLETED, True, "completed"),
        (DENIED, False, "rejected"),
    ],
)
def test_task_status_follows_business_status(business: str, verified: bool, status: str) -> None:
    assert tasks.task_status(business, verified) == status


def test_every_kind_and_status_is_in_its_codesystem() -> None:
    kinds = json.loads((MAPPINGS / "privacy-request.json").read_text(encoding="utf-8"))
    statuses = json.loads((MAPPINGS / "privacy-request-status.json").read_text(encoding="utf-8"))
    assert [c["code"] for c in kinds["concept"]] == list(KINDS)
    assert {c["code"] for c in statuses["concept"]} == set(tasks.BUSINESS_STATUSES)
    for kind in KINDS:
        task = tasks.to_task(_request(kind=kind), "R", BASE)
        coding = task["code"]["coding"][0]
        assert coding["display"] == next(
            c["display"] for c in kinds["concept"] if c["code"] == kind
        )


def test_reserved_input_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        tasks.to_task(_request(inputs={"details": "x"}), "R", BASE)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown privacy request kind"):
        tasks.to_task(_request(kind="everything"), "R", BASE)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.update(resourceType="ServiceRequest"),
        lambda t: t.update(code={"coding": [{"system": "http://example.org", "code": "access"}]}),
        lambda t: t.pop("authoredOn"),
        lambda t: t.pop("restriction"),
        lambda t: t["businessStatus"]["coding"][0].update(code="lost"),
    ],
    ids=["not-a-task", "other-code", "no-authored-on", "no-due-date", "unknown-status"],
)
def test_a_task_that_is_not_a_privacy_request_is_refused(change) -> None:
    task = tasks.to_task(_request(), "R", BASE)
    change(task)
    with pytest.raises(ValueError):
        tasks.from_task(task, BASE)


def test_updates_keep_what_the_ehr_added() -> None:
    task = tasks.to_task(_request(), "R", BASE)
    task["id"] = "t1"
    task["owner"] = {"reference": "Organization/spa"}
    changed = tasks.updated(task, WHEN)
    tasks.set_status(changed, IN_PROGRESS, WHEN)
    tasks.set_patient(changed, "p9")
    tasks.set_due(changed, date(2027, 1, 24))
    tasks.add_outputs(changed, (TaskOutput("summary", text="done"),))
    assert changed["owner"] == {"reference": "Organization/spa"}
    assert changed["executionPeriod"] == {"start": "2026-11-25T09:30:00-06:00"}
    assert "for" not in task  # the Task as read is left alone
    assert validate_resource(changed) == []
    record = tasks.from_task(changed, BASE)
    assert record.request.patient_id == "p9"
    assert record.request.due == date(2027, 1, 24)
    assert record.request.business_status == IN_PROGRESS

"""Deletion within retention against the real HAPI server (referential integrity on delete)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import FhirNotFoundError, FhirTransportError, PrivacyRequestError
from symfhir.fhir import FhirClient, load_config
from symfhir.privacy.client_resources import read_client_resources
from symfhir.privacy.deletion import (
    RETENTION_SYSTEM,
    delete_client_data,
    delete_minor_data,
    handle,
)
from symfhir.privacy.model import PARTIALLY_COMPLETED, PrivacyRequest, Requester
from symfhir.privacy.retention import CONSENT_KIND_SYSTEM
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
ACTOR = Actor("Practitioner/none", "Privacy Officer")
SECRET = "synthetic-latex-allergy-text"


class Events:
    """An AuditTrail that only remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, subtype: str, **kwargs: Any) -> None:
        self.calls.append((subtype, kwargs.get("description")))


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(load_config(server=fhir_base)) as fhir:
        yield fhir


def _entry(key: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{key}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _consent(patient: str, kind: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": kind}]}],
        "patient": {"reference": patient},
        "dateTime": when,
        "provision": {"type": "permit"},
    }


def _photo(patient: str, taken: str, binary: str) -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "status": "completed",
        "subject": {"reference": patient},
        "createdDateTime": taken,
        "content": {"contentType": "image/jpeg", "url": binary},
    }


def make_client(client: FhirClient, *, birth_date: str = "1985-04-12") -> dict[str, str]:
    """One synthetic client's record in one transaction; returns label -> Type/id."""
    keys = {
        name: str(uuid.uuid4())
        for name in [
            "patient",
            "contact",
            "qr",
            "obs",
            "allergy",
            "procedure",
            "treatment",
            "hipaa",
            "email",
            "sms",
            "clinical",
            "website",
            "bin1",
            "photo1",
            "bin2",
            "photo2",
            "import",
            "upload",
        ]
    }
    p = f"urn:uuid:{keys['patient']}"
    image = "/9j/4AAQSkZJRgABAQ=="
    resources: dict[str, dict[str, Any]] = {
        "patient": {
            "resourceType": "Patient",
            "identifier": [
                {"system": f"{load_spa().identifier_base}/client-id", "value": uuid.uuid4().hex}
            ],
            "name": [{"family": "Quillfeather", "given": ["Avery"]}],
            "birthDate": birth_date,
            "telecom": [
                {"system": "email", "value": "avery.q@example.com"},
                {"system": "phone", "value": "337-555-0101"},
            ],
        },
        "contact": {
            "resourceType": "RelatedPerson",
            "patient": {"reference": p},
            "name": [{"family": "Quillfeather"}],
        },
        "qr": {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": {"reference": p},
            "authored": "2025-05-01T10:00:00-05:00",
        },
        "obs": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "skin type"},
            "subject": {"reference": p},
            "derivedFrom": [{"reference": f"urn:uuid:{keys['qr']}"}],
        },
        "allergy": {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": p},
            "code": {"text": SECRET},
        },
        "procedure": {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": {"reference": p},
            "performedDateTime": "2025-06-01T14:00:00-05:00",
        },
        "treatment": _consent(p, "treatment", "2025-05-01"),
        "hipaa": _consent(p, "hipaa_notice", "2025-05-01"),
        "email": _consent(p, "marketing_email", "2025-05-01"),
        "sms": _consent(p, "marketing_sms", "2025-05-01"),
        "clinical": _consent(p, "photos_clinical", "2025-05-01"),
        "website": _consent(p, "photos_website", "2024-01-01"),
        "bin1": {
            "resourceType": "Binary",
            "contentType": "image/jpeg",
            "securityContext": {"reference": p},
            "data": image,
        },
        "photo1": _photo(p, "2025-06-01T14:30:00-05:00", f"urn:uuid:{keys['bin1']}"),
        "bin2": {
            "resourceType": "Binary",
            "contentType": "image/jpeg",
            "securityContext": {"reference": p},
            "data": image,
        },
        # Taken before the clinical consent, under the website consent only: marketing.
        "photo2": _photo(p, "2024-06-01T14:30:00-05:00", f"urn:uuid:{keys['bin2']}"),
    }
    recorded = "2025-06-01T15:00:00-05:00"
    agent = [{"who": {"display": "symfhir"}}]
    resources["import"] = {
        "resourceType": "Provenance",
        "target": [
            {"reference": f"urn:uuid:{keys[k]}"}
            for k in ["patient", "qr", "obs", "treatment", "email", "sms", "website"]
        ],
        "recorded": recorded,
        "agent": agent,
    }
    resources["upload"] = {
        "resourceType": "Provenance",
        "target": [
            {"reference": f"urn:uuid:{keys['photo2']}"},
            {"reference": f"urn:uuid:{keys['bin2']}"},
        ],
        "recorded": recorded,
        "agent": agent,
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(keys[k], r) for k, r in resources.items()],
    }
    answer = client.transaction(bundle)
    ids = {}
    for label, entry in zip(resources, answer["entry"], strict=True):
        location = entry["response"]["location"].split("/")
        ids[label] = f"{location[0]}/{location[1]}"
    # An audit of a photo view names the clinical photo (AuditEvents are never deleted).
    event = client.create(
        {
            "resourceType": "AuditEvent",
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
            },
            "recorded": recorded,
            "agent": [{"requestor": True, "who": {"display": "synthetic nurse"}}],
            "source": {"observer": {"display": "symfhir"}},
            "entity": [
                {"what": {"reference": ids["patient"]}},
                {"what": {"reference": ids["photo1"]}},
            ],
        }
    )
    ids["audit"] = f"AuditEvent/{event.id}"
    return ids


def exists(client: FhirClient, ref: str) -> bool:
    try:
        client.read(*ref.split("/", 1))
    except FhirNotFoundError:
        return False
    return True


def pid(ids: dict[str, str]) -> str:
    return ids["patient"].split("/", 1)[1]


GOES_NOW = ("contact", "email", "sms", "website", "photo2", "bin2", "upload")
KEPT_7_YEARS = (
    "qr",
    "obs",
    "allergy",
    "procedure",
    "treatment",
    "hipaa",
    "clinical",
    "import",
)
#: The clinical photo and its bytes: named by the audit trail, kept indefinitely.
PINNED = ("photo1", "bin1")


def test_deletion_follows_the_rules_and_leaves_the_other_client_alone(client: FhirClient) -> None:
    mine, other = make_client(client), make_client(client)
    other_before = sorted(
        f"{r['resourceType']}/{r['id']}" for r in read_client_resources(client, pid(other))
    )
    assert len(other_before) == len(other)

    events = Events()
    report = delete_client_data(client, ACTOR, pid(mine), now=NOW, audit=events)

    outcome = {item.reference: item for item in report.items}
    for label in GOES_NOW:
        assert outcome[mine[label]].outcome == "deleted", label
        assert not exists(client, mine[label]), label
    for label in KEPT_7_YEARS:
        assert outcome[mine[label]].outcome == "kept", label
        assert outcome[mine[label]].until == date(2032, 6, 1), label
        assert exists(client, mine[label]), label
    assert outcome[mine["qr"]].rule == "medical-record"
    assert outcome[mine["treatment"]].rule == "medical-consent"
    for label in PINNED:
        assert outcome[mine[label]].outcome == "kept", label
        assert outcome[mine[label]].until is None, label
    assert outcome[mine["photo1"]].referenced_by == mine["audit"]
    assert outcome[mine["bin1"]].referenced_by == mine["photo1"]
    assert outcome[mine["audit"]].rule == "audit-trail"
    assert outcome[mine["audit"]].until is None
    # The Patient is named by kept records and by the audit trail: it stays, without its
    # contact details, tagged for the retention run.
    assert outcome[mine["patient"]].outcome == "kept"
    assert outcome[mine["patient"]].referenced_by
    patient = client.read("Patient", pid(mine))
    assert "telecom" not in patient
    assert RETENTION_SYSTEM in {t.get("system") for t in patient["meta"].get("tag", [])}
    # The kept import Provenance no longer names the deleted marketing consents.
    provenance = client.read(*mine["import"].split("/", 1))
    named = {t["reference"] for t in provenance["target"]}
    assert mine["email"] not in named and mine["treatment"] in named
    assert report.scheduled == date(2032, 6, 1)
    # Erased, not just deleted: no earlier version can be read back either.
    assert report.history_erased
    with pytest.raises(FhirNotFoundError):
        client.vread("Consent", mine["email"].split("/", 1)[1], "1")
    with pytest.raises(FhirNotFoundError):
        client.vread("Patient", pid(mine), "1")  # the version with the contact details
    assert SECRET not in report.to_json()
    assert [s for s, _ in events.calls] == ["delete", "delete"]

    other_after = sorted(
        f"{r['resourceType']}/{r['id']}" for r in read_client_resources(client, pid(other))
    )
    assert other_after == other_before
    assert "telecom" in client.read("Patient", pid(other))

    again = delete_client_data(client, ACTOR, pid(mine), now=NOW, audit=Events())
    assert again.deleted == ()
    assert again.updated == ()
    assert {i.reference for i in again.kept} == {i.reference for i in report.kept}


def test_a_dry_run_writes_nothing(client: FhirClient) -> None:
    ids = make_client(client)
    report = delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events(), dry_run=True)
    assert {i.reference for i in report.deleted} == {ids[k] for k in GOES_NOW}
    assert all(exists(client, ref) for ref in ids.values())
    assert "telecom" in client.read("Patient", pid(ids))


class StopsAfter:
    """A FhirClient that loses its connection after ``limit`` deletes (a crash halfway)."""

    def __init__(self, inner: FhirClient, limit: int) -> None:
        self.inner = inner
        self.left = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, resource_type: str, resource_id: str, cascade: bool = False) -> None:
        if self.left == 0:
            raise FhirTransportError(f"delete {resource_type}", "connection reset")
        self.left -= 1
        self.inner.delete(resource_type, resource_id, cascade)


@pytest.mark.parametrize("stop_after", [1, 3, 6])
def test_a_run_stopped_halfway_is_finished_by_a_rerun(client: FhirClient, stop_after: int) -> None:
    ids = make_client(client)
    crashing = StopsAfter(client, stop_after)
    with pytest.raises(FhirTransportError):
        delete_client_data(crashing, ACTOR, pid(ids), now=NOW, audit=Events())  # type: ignore[arg-type]
    assert sum(not exists(client, ids[k]) for k in GOES_NOW) == stop_after
    # Tagged before the first delete: the retention run would find it too.
    tags = client.read("Patient", pid(ids))["meta"].get("tag", [])
    assert RETENTION_SYSTEM in {t.get("system") for t in tags}

    report = delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events())
    assert len(report.deleted) == len(GOES_NOW) - stop_after
    assert not any(exists(client, ids[k]) for k in GOES_NOW)
    assert all(exists(client, ids[k]) for k in KEPT_7_YEARS + PINNED)


def test_after_retention_the_rest_goes_except_what_the_audit_trail_names(
    client: FhirClient,
) -> None:
    ids = make_client(client)
    delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events())
    later = datetime(2032, 6, 1, 0, 5, tzinfo=ZONE)
    report = delete_client_data(client, ACTOR, pid(ids), now=later, audit=Events())
    outcome = {item.reference: item for item in report.items}
    gone = ("qr", "obs", "allergy", "procedure", "treatment", "hipaa", "clinical", "import", "bin1")
    for label in gone:
        assert outcome[ids[label]].outcome == "deleted", label
        assert not exists(client, ids[label]), label
    for label in ("photo1", "patient"):
        assert outcome[ids[label]].outcome == "kept"
        assert outcome[ids[label]].until is None
    # The photo the audit trail names stays as a stub: its file is gone.
    assert "url" not in client.read(*ids["photo1"].split("/", 1))["content"]
    assert report.scheduled is None
    # Nothing is left to a date: the Patient is no longer scheduled.
    tags = client.read("Patient", pid(ids))["meta"].get("tag", [])
    assert RETENTION_SYSTEM not in {t.get("system") for t in tags}


def test_the_request_handler_stores_the_report(client: FhirClient) -> None:
    ids = make_client(client)
    request = PrivacyRequest(
        task_id=None,
        kind="ccpa-delete",
        requester=Requester("Avery Quillfeather", email="avery.q@example.com"),
        received=NOW,
        due=date(2026, 12, 25),
        patient_id=pid(ids),
    )
    outcome = handle(client, ACTOR, request, now=NOW, audit=Events())
    assert outcome.business_status == PARTIALLY_COMPLETED
    (output,) = outcome.outputs
    assert output.label == "deletion-report"
    report = json.loads(output.text or "")
    assert report["deleted"] == len(GOES_NOW)
    assert SECRET not in (output.text or "")
    assert "Avery" not in (output.text or "")


def test_a_guardians_notice_applies_to_a_minor_only(client: FhirClient) -> None:
    adult = make_client(client)
    with pytest.raises(PrivacyRequestError):
        delete_minor_data(client, ACTOR, pid(adult), now=NOW, audit=Events())
    minor = make_client(client, birth_date="2011-02-03")
    report = delete_minor_data(client, ACTOR, pid(minor), now=NOW, audit=Events())
    assert report.reason == "guardian-notice"
    assert not exists(client, minor["email"])
    assert exists(client, minor["procedure"])  # a minor's medical records are kept too

    # As a privacy request: a deletion marked as a guardian's notice.
    notice = PrivacyRequest(
        task_id=None,
        kind="deletion",
        requester=Requester("Rowan Quillfeather", email="rowan.q@example.com"),
        received=NOW,
        due=date(2026, 12, 25),
        patient_id=pid(adult),
        inputs={"reason": "guardian-notice"},
    )
    with pytest.raises(PrivacyRequestError):
        handle(client, ACTOR, notice, now=NOW, audit=Events())
    assert exists(client, adult["email"])
    outcome = handle(client, ACTOR, replace(notice, patient_id=pid(minor)), now=NOW, audit=Events())
    assert json.loads(outcome.outputs[0].text or "")["reason"] == "guardian-notice"


def test_retention_run_finishes_scheduled_clients_only(
    client: FhirClient, fhir_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from symfhir.cli import main

    ids, untouched = make_client(client), make_client(client)
    delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events())
    later = ["--as-of", "2032-06-02T09:00:00-05:00", "--server", fhir_base]

    assert main(["retention", "run", "--dry-run", "--patient", pid(ids), *later]) == 0
    out = capsys.readouterr().out
    assert "clients scheduled: 1" in out
    assert "resources would delete: 9" in out
    assert exists(client, ids["qr"])

    assert main(["retention", "run", "--patient", pid(ids), *later]) == 0
    out = capsys.readouterr().out
    assert "resources deleted: 9" in out
    assert "Quillfeather" not in out
    assert not any(exists(client, ids[k]) for k in KEPT_7_YEARS)
    # Nothing left to a date: no longer scheduled, so a daily re-run does nothing.
    assert main(["retention", "run", "--patient", pid(ids), *later]) == 0
    assert "clients scheduled: 0" in capsys.readouterr().out

    # A client who never asked for deletion is not touched, even when named.
    assert main(["retention", "run", "--patient", pid(untouched), *later]) == 0
    assert "clients scheduled: 0" in capsys.readouterr().out
    assert all(exists(client, ref) for ref in untouched.values())


def test_an_actor_who_may_not_delete_changes_nothing(client: FhirClient) -> None:
    from symfhir.errors import NotAllowedError

    ids = make_client(client)
    reader = Actor("Practitioner/none", permits=lambda _type, interaction: interaction in "rs")
    events = Events()
    with pytest.raises(NotAllowedError) as refused:
        delete_client_data(client, reader, pid(ids), now=NOW, audit=events)
    assert events.calls[-1] == ("delete", "deletion (request) refused: not allowed")
    assert ("Consent", "d") in refused.value.missing
    assert all(exists(client, ref) for ref in ids.values())
    assert "telecom" in client.read("Patient", pid(ids))


def test_symfhir_privacy_process_stores_the_report_on_the_task(
    client: FhirClient, fhir_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from symfhir.cli import main
    from tests.integration.conftest import synthetic_practitioner

    ids = make_client(client)
    officer = synthetic_practitioner(client).fhir_user or ""
    common = ["--user", officer, "--server", fhir_base]
    assert (
        main(
            [
                "privacy",
                "new",
                "--kind",
                "deletion",
                "--name",
                "Avery Quillfeather",
                "--email",
                "avery.q@example.com",
                "--patient",
                pid(ids),
                "--verified-in-person",
                "--reference",
                uuid.uuid4().hex,
                *common,
            ]
        )
        == 0
    )
    task_id = capsys.readouterr().out.split("Task/", 1)[1].split()[0]
    assert main(["privacy", "process", task_id, *common]) == 0
    assert "partially-completed" in capsys.readouterr().out
    task = client.read("Task", task_id)
    (output,) = [o for o in task["output"] if o["type"].get("text") == "deletion-report"]
    report = json.loads(output["valueString"])
    assert report["deleted"] == len(GOES_NOW)
    assert {i["resource"] for i in report["items"] if i["outcome"] == "deleted"} == {
        ids[k] for k in GOES_NOW
    }
    assert SECRET not in output["valueString"]
    assert not exists(client, ids["email"])


def test_a_client_with_nothing_retained_is_completed(client: FhirClient) -> None:
    from symfhir.audit import ClientAuditTrail
    from symfhir.privacy.model import COMPLETED

    ids = make_client(client)
    later = datetime(2032, 6, 2, 9, 0, tzinfo=ZONE)
    request = PrivacyRequest(
        task_id=None,
        kind="deletion",
        requester=Requester("Avery Quillfeather"),
        received=later,
        due=date(2032, 7, 2),
        patient_id=pid(ids),
    )
    # A real audit trail: its AuditEvents name the Patient, which therefore stays (without
    # its contact details); the photo a view audit named stays as a stub without its file.
    audit = ClientAuditTrail(client, pid(ids), None, clock=lambda: later)
    outcome = handle(client, ACTOR, request, now=later, audit=audit)
    report = json.loads(outcome.outputs[0].text or "")
    kept = {i["resource"]: i for i in report["items"] if i["outcome"] == "kept"}
    assert set(kept) >= {ids["patient"], ids["audit"], ids["photo1"]}
    assert ids["bin1"] not in kept
    assert outcome.business_status == PARTIALLY_COMPLETED  # the audited photo stays

    bare = make_client(client)
    client.delete("AuditEvent", bare["audit"].split("/", 1)[1])  # created by this test
    request = replace(request, patient_id=pid(bare))
    audit = ClientAuditTrail(client, pid(bare), None, clock=lambda: later)
    outcome = handle(client, ACTOR, request, now=later, audit=audit)
    assert outcome.business_status == COMPLETED
    report = json.loads(outcome.outputs[0].text or "")
    kept = {i["resource"]: i["rule"] for i in report["items"] if i["outcome"] == "kept"}
    # Only the record of the deletion: the AuditEvent it started with, and the Patient it names.
    assert kept.pop(bare["patient"]) == "referenced-by-kept"
    assert set(kept.values()) == {"audit-trail"}
    assert "telecom" not in client.read("Patient", pid(bare))


def test_a_marketing_photo_the_audit_trail_names_stays_as_a_stub_without_its_file(
    client: FhirClient,
) -> None:
    ids = make_client(client)
    # The app's upload audit names the Media it created (symfhir/workspace/photos/uploading.py).
    upload = client.create(
        {
            "resourceType": "AuditEvent",
            "type": {"code": "rest"},
            "recorded": "2024-06-01T15:00:00-05:00",
            "agent": [{"requestor": True, "who": {"display": "synthetic nurse"}}],
            "source": {"observer": {"display": "symfhir"}},
            "entity": [
                {"what": {"reference": ids["patient"]}},
                {"what": {"reference": ids["photo2"]}},
            ],
        }
    )
    report = delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events())
    outcome = {item.reference: item for item in report.items}
    assert outcome[ids["photo2"]].outcome == "kept"
    assert outcome[ids["photo2"]].referenced_by == f"AuditEvent/{upload.id}"
    assert outcome[ids["bin2"]].outcome == "deleted"
    assert ids["photo2"] in report.updated
    assert not exists(client, ids["bin2"])
    stub = client.read(*ids["photo2"].split("/", 1))
    assert stub["content"] == {"contentType": "image/jpeg"}
    with pytest.raises(FhirNotFoundError):
        client.vread("Media", ids["photo2"].split("/", 1)[1], "1")  # the version naming it
    # The clinical photo, within retention, keeps its file.
    assert client.read(*ids["photo1"].split("/", 1))["content"]["url"] == ids["bin1"]
    again = delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=Events())
    assert again.deleted == () and again.updated == ()

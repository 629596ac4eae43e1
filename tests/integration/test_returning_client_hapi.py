"""A client who comes back after a deletion, against the local HAPI FHIR server: `symfhir
retention run` clears their schedule and deletes nothing of theirs; one who did not come back
is finished as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.cli import main
from symfhir.fhir import FhirClient, load_config
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.deletion import RETENTION_SYSTEM, delete_client_data
from symfhir.privacy.retention import CONSENT_KIND_SYSTEM
from symfhir.workspace.actor import Actor
from tests.integration.test_deletion_hapi import exists, make_client, pid

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
ACTOR = Actor("Practitioner/none", "Privacy Officer")
BACK = "2026-12-01T10:00:00-06:00"


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(load_config(server=fhir_base)) as fhir:
        yield fhir


def tagged(client: FhirClient, patient_id: str) -> bool:
    tags = (client.read("Patient", patient_id).get("meta") or {}).get("tag") or []
    return any(t.get("system") == RETENTION_SYSTEM for t in tags)


def deleted_by_request(client: FhirClient) -> dict[str, str]:
    """A client deleted as `symfhir privacy process` deletes (the request's own trail, which
    names no client until a step does), leaving records kept until a date."""
    ids = make_client(client)
    trail = RequestAuditTrail(client, None, clock=lambda: NOW)
    report = delete_client_data(client, ACTOR, pid(ids), now=NOW, audit=trail)
    assert report.scheduled and tagged(client, pid(ids))
    return ids


def run(fhir_base: str, patient_id: str, *extra: str) -> None:
    args = ["retention", "run", "--patient", patient_id, "--as-of", "2032-06-02T09:00:00-05:00"]
    assert main([*args, "--server", fhir_base, *extra]) == 0


def test_a_client_who_came_back_keeps_their_new_data(
    client: FhirClient, fhir_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = deleted_by_request(client)
    subject = {"reference": ids["patient"]}
    # Back on 1 December: a new marketing consent (the rules let those go at once) and intake.
    consent: dict[str, Any] = {
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
        "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": "marketing_email"}]}],
        "patient": subject,
        "dateTime": BACK,
        "provision": {"type": "permit"},
    }
    new_consent = f"Consent/{client.create(consent).id}"
    intake = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": subject,
        "authored": BACK,
    }
    new_intake = f"QuestionnaireResponse/{client.create(intake).id}"
    capsys.readouterr()

    run(fhir_base, pid(ids), "--dry-run")
    out = capsys.readouterr().out
    assert "clients who came back (schedule would clear, nothing deleted): 1" in out
    assert tagged(client, pid(ids))

    run(fhir_base, pid(ids))
    out = capsys.readouterr().out
    assert "clients who came back (schedule cleared, nothing deleted): 1" in out
    assert "resources deleted: 0" in out
    assert not tagged(client, pid(ids))
    assert all(exists(client, ref) for ref in (new_consent, new_intake, ids["qr"], ids["hipaa"]))
    # The clearing is in the client's audit trail.
    events = client.search("AuditEvent", {"patient": ids["patient"], "subtype": "update"})
    assert any("retention schedule cleared" in str(e.get("outcomeDesc")) for e in events)

    # No longer scheduled: a daily re-run leaves them alone.
    run(fhir_base, pid(ids))
    assert "clients scheduled: 0" in capsys.readouterr().out
    assert exists(client, new_consent)


def test_a_client_who_did_not_come_back_is_finished_by_the_run(
    client: FhirClient, fhir_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = deleted_by_request(client)
    capsys.readouterr()
    run(fhir_base, pid(ids))
    out = capsys.readouterr().out
    assert "came back" not in out
    assert "resources deleted: 0" not in out
    assert not exists(client, ids["qr"])  # the intake's 7 years have passed by 2032

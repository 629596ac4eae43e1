"""Privacy requests as Tasks on the local HAPI FHIR R4 server: submitted (conditional on the
reference), verified, matched, extended, processed by a test handler, listed as overdue with a
``now`` in the future; versioned updates refused when stale; AuditEvents written.

The server is shared: every client and request here is new (unique e-mails and references) and
assertions look only at what this run wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from symfhir.errors import FhirConflictError, PrivacyRequestError
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.matching import assign_patient, match_patient
from symfhir.privacy.model import COMPLETED, IDENTITY_VERIFIED, Requester, Verification
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import (
    NewRequest,
    deny,
    extend,
    get_request,
    list_requests,
    record_verification,
    submit_request,
)
from symfhir.privacy.tasks import Settings
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def officer(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


@pytest.fixture
def trail(client: FhirClient, officer: Actor, now: datetime) -> RequestAuditTrail:
    return RequestAuditTrail(client, officer.fhir_user, clock=lambda: now)


@pytest.fixture
def settings() -> Settings:
    loaded = Settings.load()
    handlers = {"access": "tests.unit.privacy_handlers:handle"}
    return Settings(loaded.spa, replace(loaded.policy, handlers=handlers))


def _client_with(client: FhirClient, email: str, phone: str | None = None) -> str:
    telecom = [{"system": "email", "value": email}]
    if phone:
        telecom.append({"system": "phone", "value": phone})
    return synthetic_patient(client, birthDate="1985-04-12", telecom=telecom)


def _submit(client, officer, trail, now, email: str, **changes) -> str:
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), email)
    new = NewRequest(**{"kind": "access", "requester": requester, **changes})
    return submit_request(client, officer, new, now=now, audit=trail).request.task_id


def test_submit_verify_match_extend_process(client, officer, trail, now, settings) -> None:
    email = f"avery.{uuid.uuid4().hex[:10]}@example.com"
    patient_id = _client_with(client, email)
    reference = uuid.uuid4().hex
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), email)
    first = submit_request(
        client, officer, NewRequest("access", requester, reference=reference), now=now, audit=trail
    )
    again = submit_request(
        client, officer, NewRequest("access", requester, reference=reference), now=now, audit=trail
    )
    assert first.created and not again.created
    task_id = first.request.task_id
    assert again.request.task_id == task_id
    assert first.request.request.due == date(2026, 12, 25)

    verification = Verification("email-code", None, now)
    verified = record_verification(client, officer, task_id, verification, now=now, audit=trail)
    assert verified.request.business_status == IDENTITY_VERIFIED
    matched = match_patient(client, officer, task_id, now=now, audit=trail, settings=settings)
    assert matched.matched == patient_id

    extended = extend(client, officer, task_id, "Archive restore", now=now, audit=trail)
    assert extended.request.due == date(2027, 1, 24)
    with pytest.raises(PrivacyRequestError, match="already extended"):
        extend(client, officer, task_id, "Again", now=now, audit=trail)

    processed = process_request(client, officer, task_id, now=now, audit=trail, settings=settings)
    assert processed.request.request.business_status == COMPLETED
    task = client.read("Task", task_id)
    assert task["status"] == "completed"
    assert task["for"] == {"reference": f"Patient/{patient_id}"}
    assert task["restriction"]["period"]["end"] == "2027-01-24"
    assert [o["type"]["text"] for o in task["output"]] == ["access-package", "summary"]
    assert task["output"][0]["valueAttachment"]["url"] == "Binary/pkg-1"
    kinds = [
        e["valueCode"] for n in task["note"] for e in n["extension"] if e["url"].endswith("note")
    ]
    assert kinds == ["verification", "patient-match", "extension"]

    events = client.search_all("AuditEvent", {"entity": f"Task/{task_id}", "_count": "50"})
    described = {e.get("outcomeDesc") for e in events}
    assert {"privacy request received", "privacy request closed: completed"} <= described


def test_two_clients_sharing_an_email_are_matched_by_a_person(client, officer, trail, now) -> None:
    email = f"shared.{uuid.uuid4().hex[:10]}@example.com"
    first, second = _client_with(client, email), _client_with(client, email)
    task_id = _submit(client, officer, trail, now, email)
    verification = Verification("email-code", None, now)
    record_verification(client, officer, task_id, verification, now=now, audit=trail)
    result = match_patient(client, officer, task_id, now=now, audit=trail)
    assert result.matched is None
    assert {first, second} <= {c.patient_id for c in result.candidates}
    chosen = assign_patient(client, officer, task_id, second, now=now, audit=trail)
    assert chosen.request.patient_id == second
    note = client.read("Task", task_id)["note"][-1]
    assert note["authorReference"] == {"reference": officer.fhir_user}


def test_a_stale_version_is_refused(client, officer, trail, now) -> None:
    task_id = _submit(client, officer, trail, now, f"stale.{uuid.uuid4().hex[:8]}@example.com")
    seen = get_request(client, officer, task_id, now=now, audit=trail)
    extend(client, officer, task_id, "Backlog", now=now, audit=trail, version=seen.version)
    with pytest.raises(FhirConflictError, match="version conflict"):
        deny(client, officer, task_id, "stale", now=now, audit=trail, version=seen.version)
    assert get_request(client, officer, task_id, now=now, audit=trail).request.is_open


def test_overdue_and_due_soon_with_a_now_in_the_future(client, officer, trail, now) -> None:
    mine = {}
    for days_ago in (0, 15, 25):
        email = f"late{days_ago}.{uuid.uuid4().hex[:8]}@example.com"
        mine[days_ago] = _submit(client, officer, trail, now - timedelta(days=days_ago), email)
    closed = _submit(client, officer, trail, now - timedelta(days=40), "gone@example.com")
    deny(client, officer, closed, "Withdrawn by the requester", now=now, audit=trail)

    later = now + timedelta(days=10)  # received 25 days ago: 5 days overdue; 15 ago: due in 5
    overdue = list_requests(client, officer, now=later, audit=trail, overdue=True, page_size=200)
    overdue_ids = [t.task_id for t in overdue.items]
    assert mine[25] in overdue_ids
    assert mine[15] not in overdue_ids and mine[0] not in overdue_ids
    assert closed not in overdue_ids
    assert all(t.overdue for t in overdue.items)

    soon = list_requests(client, officer, now=later, audit=trail, due_soon=True, page_size=200)
    assert mine[15] in [t.task_id for t in soon.items]
    assert mine[0] not in [t.task_id for t in soon.items]

    every: list[str] = []
    page = 1
    while True:
        found = list_requests(client, officer, now=later, audit=trail, page=page, page_size=50)
        every += [t.task_id for t in found.items]
        if page >= found.pages:
            break
        page += 1
    positions = [every.index(mine[d]) for d in (25, 15, 0)]
    assert positions == sorted(positions)  # sorted by due date
    assert closed not in every


def test_an_unmatched_request_is_audited_without_a_patient(client, officer, now) -> None:
    trail = RequestAuditTrail(client, officer.fhir_user, clock=lambda: datetime.now(UTC))
    task_id = _submit(client, officer, trail, now, f"a.{uuid.uuid4().hex[:8]}@example.com")
    events = client.search_all("AuditEvent", {"entity": f"Task/{task_id}"})
    assert len(events) == 1
    entities = [e["what"]["reference"] for e in events[0]["entity"]]
    assert entities == [f"Task/{task_id}"]

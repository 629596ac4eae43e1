"""A withdrawn physician-sharing consent stops every shared link of the client at once: from
the Consents page's workflow, from a restriction request, and through request processing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from symfhir.audit import AuditTrail
from symfhir.privacy import restriction
from symfhir.privacy.matching import match_patient
from symfhir.privacy.model import (
    COMPLETED,
    IDENTITY_VERIFIED,
    Outcome,
    PrivacyRequest,
    Requester,
    Verification,
)
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import NewRequest, record_verification, submit_request
from symfhir.privacy.tasks import Settings
from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.links import create_link, links_of
from symfhir.sharing.package import SharedFile, SharePackage
from symfhir.store import Store
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import withdraw_consent
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer
from tests.unit.sharing_fake import OTHER, PID, ShareFhir, consent, patient

pytestmark = pytest.mark.unit

ACTOR = Actor("Practitioner/nurse1")
NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def _link(store: Store, patient_id: str) -> str:
    plan = SharePlan(
        patient_id,
        "Consent/c1",
        Recipient("Practitioner/doc1", "Dr. Dana Ashgrove"),
        frozenset({"summary"}),
        frozenset({"Patient"}),
        False,
        None,
        None,
    )
    document = b'{"resourceType": "Bundle", "type": "document"}'
    files = (SharedFile("patient-summary.json", "application/fhir+json", lambda: document),)
    return create_link(
        store,
        SharePackage(plan, files, {"Patient": 1}, 0),
        label="For Dr. Ashgrove",
        passcode=None,
        expires_at=NOW + timedelta(days=3),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/nurse1",
        links_base="http://links.example",
        viewer_base="http://links.example/view",
        now=NOW,
    ).link_id


def _statuses(store: Store, patient_id: str) -> list[str]:
    return [r.status for r in links_of(store, patient_id, now=NOW)]


def _fhir() -> ShareFhir:
    return ShareFhir(
        [
            patient(),
            consent("c1", when="2026-03-02T15:00:00Z"),
            consent("m1", "marketing_email", when="2026-03-02T15:00:00Z"),
        ]
    )


def test_withdrawing_physician_sharing_stops_the_clients_links(store: Store):
    _link(store, PID), _link(store, PID), _link(store, OTHER)
    trail = Trail()
    result = withdraw_consent(
        _fhir(), ACTOR, PID, "physician_sharing", audit=trail, now=NOW, store=store
    )
    assert result.outcome == "withdrawn"
    assert result.links_stopped == 2
    assert "active" not in _statuses(store, PID)
    assert _statuses(store, OTHER) == ["active"]
    assert any("stopped" in (e[2] or "") for e in trail.events)


def test_withdrawing_another_kind_leaves_the_links(store: Store):
    _link(store, PID)
    result = withdraw_consent(
        _fhir(), ACTOR, PID, "marketing_email", audit=Trail(), now=NOW, store=store
    )
    assert result.outcome == "withdrawn" and result.links_stopped == 0
    assert _statuses(store, PID) == ["active"]


def test_without_a_store_the_consent_is_still_withdrawn(store: Store):
    _link(store, PID)
    client = _fhir()
    result = withdraw_consent(client, ACTOR, PID, "physician_sharing", audit=Trail(), now=NOW)
    assert result.outcome == "withdrawn" and result.links_stopped == 0
    assert client.written("Consent")[0]["status"] == "inactive"


def _restriction(kinds: str) -> PrivacyRequest:
    return PrivacyRequest(
        task_id="t1",
        kind="restriction",
        requester=Requester("Avery Quillfeather"),
        received=NOW,
        due=date(2026, 12, 25),
        business_status=IDENTITY_VERIFIED,
        patient_id=PID,
        inputs={"consents": kinds},
        verifications=(Verification("in-person", "Practitioner/officer1", NOW),),
    )


def test_a_restriction_request_withdrawing_sharing_stops_the_links(store: Store):
    _link(store, PID)
    outcome = restriction.handle(
        _fhir(),
        ACTOR,
        _restriction("physician_sharing, marketing_email"),
        now=NOW,
        audit=Trail(),
        store=store,
    )
    assert outcome.business_status == COMPLETED
    assert _statuses(store, PID) != ["active"]


# ── processing hands the store to a handler that takes one ────────────────────

seen_stores: list[object] = []


def handle_with_store(
    client, actor, request, *, now: datetime, audit: AuditTrail, store: Store | None = None
) -> Outcome:
    seen_stores.append(store)
    return Outcome(COMPLETED, (), "done")


@pytest.fixture
def server() -> FakeServer:
    fake = FakeServer()
    fake.add(
        {
            "resourceType": "Patient",
            "id": "avery",
            "birthDate": "1985-04-12",
            "telecom": [{"system": "email", "value": "avery.q@example.com"}],
        }
    )
    return fake


@pytest.mark.parametrize(
    ("target", "passed"),
    [
        ("tests.unit.test_sharing_withdrawal:handle_with_store", True),
        ("tests.unit.privacy_handlers:handle", False),  # takes no store: called without
    ],
)
def test_processing_gives_the_store_to_a_handler_that_takes_one(
    server: FakeServer, store: Store, target: str, passed: bool
):
    loaded = Settings.load()
    settings = Settings(loaded.spa, replace(loaded.policy, handlers={"restriction": target}))
    officer = Actor("Practitioner/officer-1")
    now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), "avery.q@example.com")
    new = NewRequest("restriction", requester, inputs={"consents": "physician_sharing"})
    task_id = submit_request(server, officer, new, now=now, audit=Trail()).request.task_id
    record_verification(
        server, officer, task_id, Verification("email-code", None, now), now=now, audit=Trail()
    )
    match_patient(server, officer, task_id, now=now, audit=Trail())
    seen_stores.clear()
    processed = process_request(
        server, officer, task_id, now=now, audit=Trail(), settings=settings, store=store
    )
    assert processed.outcome.business_status == COMPLETED
    assert seen_stores == ([store] if passed else [])

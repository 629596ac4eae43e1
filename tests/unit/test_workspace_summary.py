"""symfhir.workspace.summary.read_summary: the summary workflow over a fake FHIR client."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.workspace.actor import Actor
from symfhir.workspace.summary import LABELS, read_summary
from tests.app.resources import sample_resources
from tests.unit.fake_fhir import FakeFhir, Trail

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
ACTOR = Actor("Practitioner/dr1")


def test_one_batch_one_audited_read():
    fhir = FakeFhir(sample_resources("p1") + sample_resources("p2"))
    trail = Trail()
    found = read_summary(fhir, ACTOR, "p1", audit=trail, now=datetime(2026, 11, 25, 9, tzinfo=ZONE))  # type: ignore[arg-type]
    assert len(fhir.batches) == 1
    assert trail.subtypes == ["read"]
    assert found.summary.banner is not None and found.summary.banner.name == "Ada Testperson"
    assert [a.text for a in found.summary.allergies] == ["Lidocaine"]  # p2's are not shown
    assert found.failed == [] and found.truncated is False
    # With DocumentReference search granted, the Consents kept as DocumentReferences too,
    # and the client's statements of disagreement (the "disputed" markers).
    assert len(fhir.batches[0]["entry"]) == len(LABELS) + 2


def test_a_resource_is_the_client_s_by_its_type_s_own_element():
    # A Condition's owner is its subject; a stray ``patient`` naming the client (which the
    # former check read first) must not put another client's condition in this summary.
    stray = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p2"},
        "patient": {"reference": "Patient/p1"},
        "code": {"text": "Someone else's condition"},
    }
    fhir = FakeFhir([*sample_resources("p1"), stray])
    found = read_summary(fhir, ACTOR, "p1", audit=Trail())  # type: ignore[arg-type]
    assert "Someone else's condition" not in [c.text for c in found.summary.conditions]


def test_failed_types_are_named():
    fhir = FakeFhir(sample_resources("p1"), failing_types={"Procedure"})
    found = read_summary(fhir, ACTOR, "p1", audit=Trail())  # type: ignore[arg-type]
    assert found.failed == ["Procedure"]


def test_the_latest_consent_is_chosen_by_instant_and_shown_as_the_spa_s_day():
    kind = "http://symfhir.org/fhir/CodeSystem/consent-kind"

    def consent(status: str, when: str) -> dict:
        return {
            "resourceType": "Consent",
            "status": status,
            "patient": {"reference": "Patient/p1"},
            "dateTime": when,
            "category": [{"coding": [{"system": kind, "code": "research"}]}],
            "provision": {"type": "permit"},
        }

    # Withdrawn in the evening (UTC the next day) after an imported date-only consent of that
    # day: the withdrawal is the latest, and it shows the spa's day, not tomorrow's.
    fhir = FakeFhir(
        [
            {"resourceType": "Patient", "id": "p1"},
            consent("inactive", "2026-11-25T02:30:00Z"),
            consent("active", "2026-11-24"),
        ]
    )
    found = read_summary(fhir, ACTOR, "p1", audit=Trail())  # type: ignore[arg-type]
    (row,) = [r for r in found.summary.consents if r.key == "research"]
    assert (row.status, row.date) == ("withdrawn", "2026-11-24")

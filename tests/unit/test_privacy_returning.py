"""symfhir.privacy.returning's pure parts: when the latest deletion ran (by its AuditEvents),
and which of the client's records are dated after it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.audit import audit_event
from symfhir.privacy.returning import last_deletion, records_after

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
DELETED = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)


def deletion(description: str, when: datetime, *, success: bool = True) -> dict:
    return audit_event("delete", "p1", None, success=success, description=description, now=when)


def test_the_latest_successful_deletion_event_is_when_the_deletion_ran() -> None:
    later = datetime(2026, 12, 2, 6, 0, tzinfo=ZONE)
    events = [
        deletion("deletion (request) started", DELETED),
        deletion("deletion (request): 7 deleted, 9 kept", DELETED),
        deletion("deletion (retention-run) started", later),
        # Neither a refusal, nor another delete (a photo), nor a dry run is a deletion.
        deletion("deletion (request) refused: not allowed", datetime(2027, 1, 1, tzinfo=ZONE)),
        deletion("deletion (request) started", datetime(2027, 1, 2, tzinfo=ZONE), success=False),
        deletion("photos page deleted a Media", datetime(2027, 1, 3, tzinfo=ZONE)),
        audit_event(
            "search", "p1", None, description="deletion dry run (retention-run)", now=later
        ),
    ]
    assert last_deletion(events) == later
    assert last_deletion(events[3:]) is None
    assert last_deletion([]) is None


def test_records_dated_after_the_deletion_are_the_clients_return() -> None:
    resources = [
        {"resourceType": "Consent", "id": "old", "dateTime": "2025-05-01T10:00:00-05:00"},
        {"resourceType": "Consent", "id": "new", "dateTime": "2026-11-25T09:31:00-06:00"},
        {"resourceType": "QuestionnaireResponse", "id": "qr", "authored": "2026-12-01"},
        {"resourceType": "Procedure", "id": "p", "performedPeriod": {"start": "2026-11-24"}},
        # Same day, by date only: cannot tell, counts as after.
        {"resourceType": "Media", "id": "m", "createdDateTime": "2026-11-25"},
        # Not dated by the rules, or dated by something else: never a return.
        {"resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2026-12-03T00:00:00Z"}},
        {"resourceType": "AuditEvent", "id": "a", "recorded": "2026-12-01T00:00:00Z"},
        {"resourceType": "Provenance", "id": "v", "recorded": "2026-12-01T00:00:00Z"},
        {"resourceType": "Consent", "id": "undated"},
    ]
    assert records_after(resources, DELETED, zone=ZONE) == (
        "Consent/new",
        "QuestionnaireResponse/qr",
        "Media/m",
    )
    assert records_after(resources[:1], DELETED, zone=ZONE) == ()

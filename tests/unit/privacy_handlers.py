"""Handlers of privacy-request kinds for the dispatch tests (named in test settings by dotted
name, as mappings/privacy.yaml names the real ones)."""

from __future__ import annotations

from datetime import datetime

from symfhir.audit import AuditTrail
from symfhir.privacy.model import COMPLETED, IN_PROGRESS, Outcome, PrivacyRequest, TaskOutput

#: What each handler was called with: (kind, patient id, business status, now).
seen_calls: list[tuple[str, str | None, str, datetime]] = []


def handle(client, actor, request: PrivacyRequest, *, now: datetime, audit: AuditTrail) -> Outcome:
    seen_calls.append((request.kind, request.patient_id, request.business_status, now))
    audit(
        "read",
        description="test handler read the record",
        resources=(f"Patient/{request.patient_id}",),
    )
    return Outcome(
        COMPLETED,
        (
            TaskOutput(
                "access-package",
                attachment={
                    "contentType": "application/zip",
                    "url": "Binary/pkg-1",
                    "title": "access.zip",
                },
            ),
        ),
        "Package ready",
    )


def waiting(client, actor, request: PrivacyRequest, *, now: datetime, audit: AuditTrail) -> Outcome:
    return Outcome(
        IN_PROGRESS, (TaskOutput("proposed-change", text="sent to a practitioner"),), "Waiting"
    )


def broken(client, actor, request: PrivacyRequest, *, now: datetime, audit: AuditTrail) -> Outcome:
    raise RuntimeError("handler failed halfway")


def not_an_outcome(
    client, actor, request: PrivacyRequest, *, now: datetime, audit: AuditTrail
) -> object:
    return "done"

"""The AuditTrail of privacy-request workflows run outside a launch (the command line, jobs):
a request may not be matched to a client yet, so the patient an event names is the one the
workflow's ``resources`` name, if any; the Task is always an entity (except in a disclosure,
whose entities are the patient and what was disclosed: ``symfhir.audit.trail_event``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from symfhir.audit import ClientAuditTrail
from symfhir.fhir import FhirClient


class RequestAuditTrail(ClientAuditTrail):
    """Writes one AuditEvent per call with ``client``, best effort (a failure is one PHI-free
    warning). The Patient entity comes from a ``Patient/<id>`` among ``resources``; without
    one the event names no patient (an unmatched request belongs to nobody yet)."""

    def __init__(
        self,
        client: FhirClient,
        fhir_user: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(client, None, fhir_user, clock)

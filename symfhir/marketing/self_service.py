"""Who acts in an opt-out the client makes themselves (an unsubscribe link, a STOP text): no
staff member does, so the client is the actor (``self_service_actor``: the withdrawal's
Provenance names them) and the requesting agent of each AuditEvent
(``SelfServiceAuditTrail``: the ``Patient/<id>`` among its ``resources``).

What such an opt-out needs of the FHIR server, no more (the portal's SMART Backend Services
scope): find the client, read and update their Consents, write a Provenance and an
AuditEvent. RelatedPersons and documents are not read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from symfhir.fhir import FhirClient
from symfhir.fhir.reading import reference_id
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.workspace.actor import Actor

#: The least SMART v2 system scopes an opt-out needs (letters in the spec's order c r u d s:
#: an EHR refuses `Consent.rsu`).
SELF_SERVICE_SCOPE = "system/Patient.rs system/Consent.rus system/Provenance.c system/AuditEvent.c"
_PERMITS = frozenset(
    (scope.split("/")[1].split(".")[0], letter)
    for scope in SELF_SERVICE_SCOPE.split()
    for letter in scope.split(".")[1]
)


def self_service_actor(patient_id: str | None) -> Actor:
    """The client as the actor (``Patient/<id>``; None while the client is not yet known),
    allowed only what ``SELF_SERVICE_SCOPE`` grants."""
    return Actor(
        f"Patient/{patient_id}" if patient_id else None,
        permits=lambda resource_type, interaction: (resource_type, interaction) in _PERMITS,
    )


class SelfServiceAuditTrail(RequestAuditTrail):
    """Writes one AuditEvent per call with ``client``, best effort, the client as requestor."""

    def __init__(
        self, client: FhirClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        super().__init__(client, None, clock)

    def requestor(self, resources: Sequence[str]) -> str | None:
        patient = next((p for r in resources if (p := reference_id(r, "Patient"))), None)
        return f"Patient/{patient}" if patient else None

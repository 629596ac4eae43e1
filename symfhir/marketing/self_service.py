"""The AuditTrail of an opt-out the client makes themselves (an unsubscribe link, a STOP text):
no staff member acts, so the requesting agent of each AuditEvent is the client the event is
about (the ``Patient/<id>`` among its ``resources``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from symfhir.fhir import FhirClient
from symfhir.fhir.reading import reference_id
from symfhir.privacy.audit import RequestAuditTrail


class SelfServiceAuditTrail:
    """Writes one AuditEvent per call with ``client``, best effort, the client as requestor."""

    def __init__(
        self, client: FhirClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._client = client
        self._clock = clock

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
    ) -> None:
        patient = next((p for r in resources if (p := reference_id(r, "Patient"))), None)
        requestor = f"Patient/{patient}" if patient else None
        trail = RequestAuditTrail(self._client, requestor, self._clock)
        trail(subtype, success=success, description=description, resources=resources)

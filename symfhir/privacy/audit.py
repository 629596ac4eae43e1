"""The AuditTrail of privacy-request workflows run outside a launch (the command line, jobs):
a request may not be matched to a client yet, so the patient an event names is the one the
workflow's ``resources`` name, if any; the Task is always an entity (except in a disclosure,
whose entities are the patient and what was disclosed: ``symfhir.audit.trail_event``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from symfhir.audit import DisclosureTo, trail_event
from symfhir.errors import SymfhirError
from symfhir.fhir import FhirClient
from symfhir.fhir.reading import reference_id

log = logging.getLogger(__name__)


class RequestAuditTrail:
    """Writes one AuditEvent per call with ``client``, best effort (a failure is one PHI-free
    warning). The Patient entity comes from a ``Patient/<id>`` among ``resources``; without
    one the event names no patient (an unmatched request belongs to nobody yet)."""

    def __init__(
        self,
        client: FhirClient,
        fhir_user: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._fhir_user = fhir_user
        self._clock = clock

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        event = request_audit_event(
            subtype,
            self._fhir_user,
            success=success,
            description=description,
            resources=resources,
            disclosure=disclosure,
            now=self._clock(),
        )
        try:
            self._client.create(event)
        except SymfhirError as exc:
            log.warning("AuditEvent not written: %s", getattr(exc, "log_text", type(exc).__name__))


def request_audit_event(
    subtype: str,
    fhir_user: str | None,
    *,
    success: bool = True,
    description: str | None = None,
    resources: Sequence[str] = (),
    disclosure: DisclosureTo | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The AuditEvent of one privacy-request step (``symfhir.audit.trail_event``; with a
    ``disclosure``, the disclosure shape): the Patient entity is the ``Patient/<id>`` among
    ``resources``, none when there is none."""
    patient = next((p for r in resources if (p := reference_id(r, "Patient"))), None)
    others = [r for r in resources if reference_id(r, "Patient") is None]
    event = trail_event(
        subtype,
        patient or "unknown",
        fhir_user,
        success=success,
        description=description,
        resources=others,
        disclosure=disclosure,
        now=now,
    )
    if patient is None:
        # audit_event always names a patient first; an unmatched request has none.
        event["entity"] = event["entity"][1:]
        if not event["entity"]:
            del event["entity"]
    return event

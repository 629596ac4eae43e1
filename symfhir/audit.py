"""AuditEvents of symfhir's access to a client's record (https://hl7.org/fhir/R4/auditevent.html).

``audit_event`` builds one (pure: the access, its outcome, who, the patient, what and when are
passed in). Whoever runs a workflow decides how events are written: the app through the
launch's token or its Backend Services channel (``smart_app.audit``), the command line with its
own client (``ClientAuditTrail``). Workflows take an ``AuditTrail``: a callable recording one
access to the patient they work on.

Either way the event is the same: the practitioner (fhirUser) is the requesting agent, symfhir
the application agent and the source, the patient the entity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from symfhir.errors import SymfhirError
from symfhir.fhir import FhirClient

log = logging.getLogger(__name__)

AUDIT_ACTIONS = {"read": "R", "create": "C", "update": "U", "search": "E"}


class AuditTrail(Protocol):
    """Records one access to the patient a workflow works on. Never raises: an audit failure
    must not fail the workflow (the implementation logs it)."""

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
    ) -> None: ...


class ClientAuditTrail:
    """An AuditTrail writing each event with ``client`` (the command line's own credentials),
    best effort: a failure is one PHI-free log warning."""

    def __init__(
        self,
        client: FhirClient,
        patient_id: str,
        fhir_user: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._patient_id = patient_id
        self._fhir_user = fhir_user
        self._clock = clock

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
    ) -> None:
        event = audit_event(
            subtype,
            self._patient_id,
            self._fhir_user,
            success=success,
            description=description,
            resources=resources,
            now=self._clock(),
        )
        try:
            self._client.create(event)
        except SymfhirError as exc:
            log.warning("AuditEvent not written: %s", getattr(exc, "log_text", type(exc).__name__))


def audit_event(
    subtype: str,
    patient_id: str,
    fhir_user: str | None,
    *,
    success: bool = True,
    description: str | None = None,
    requested: str | None = None,
    resources: Sequence[str] = (),
    now: datetime,
) -> dict[str, Any]:
    """An R4 AuditEvent (type rest, subtype ``subtype``: read, search, create or update) of
    symfhir's access to the patient's record by ``fhir_user`` at ``now``; ``resources``
    ("Media/12") are the patient's resources the access touched, one entity each;
    ``requested`` names (as text only) another patient a refused request asked for."""
    agent_user: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": "humanuser",
                    "display": "human user",
                }
            ]
        },
        "requestor": True,
    }
    if fhir_user:
        agent_user["who"] = {"reference": fhir_user}
    else:
        agent_user["who"] = {"display": "unknown practitioner"}
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [
            {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": subtype,
                "display": subtype,
            }
        ],
        "action": AUDIT_ACTIONS.get(subtype, "E"),
        "recorded": now.isoformat(timespec="seconds"),
        "outcome": "0" if success else "4",
        "agent": [
            agent_user,
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://dicom.nema.org/resources/ontology/DCM",
                            "code": "110150",
                            "display": "Application",
                        }
                    ]
                },
                "who": {"display": "symfhir"},
                "requestor": False,
            },
        ],
        "source": {
            "observer": {"display": "symfhir"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        ],
    }
    if description:
        event["outcomeDesc"] = description
    for reference in resources:
        event["entity"].append(
            {
                "what": {"reference": reference},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                    "display": "System Object",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "4",
                    "display": "Domain Resource",
                },
            }
        )
    if requested:
        # Only as text: a reference to the other patient would put this event in their
        # compartment, which this launch may not write to.
        event["entity"].append({"description": f"requested Patient/{requested}"})
    return event

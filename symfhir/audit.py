"""AuditEvents of symfhir's access to a client's record (https://hl7.org/fhir/R4/auditevent.html).

``audit_event`` builds one (pure: the access, its outcome, who, the patient, what and when are
passed in). Whoever runs a workflow decides how events are written: the app through the
launch's token or its Backend Services channel (``smart_app.audit``), the command line with its
own client (``ClientAuditTrail``). Workflows take an ``AuditTrail``: a callable recording one
access to the patient they work on.

Either way the event is the same: the practitioner (fhirUser) is the requesting agent, symfhir
the application agent and the source, the patient the entity. An access that hands the
patient's data to someone (an export, an access package, a download) passes a ``DisclosureTo``
(who received it and why): the trail then writes the disclosure shape (``disclosure_event``),
which the accounting of disclosures lists with its recipient and purpose. ``trail_event`` is
the one place a trail chooses between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from symfhir.errors import SymfhirError
from symfhir.fhir import FhirClient
from symfhir.fhir.reading import reference_id

log = logging.getLogger(__name__)

AUDIT_ACTIONS = {"read": "R", "create": "C", "update": "U", "delete": "D", "search": "E"}


@dataclass(frozen=True)
class DisclosureTo:
    """Who received the patient's data, and why: what makes an audited access a disclosure.

    ``recipient`` is the name the accounting shows; ``recipient_reference`` the recipient as a
    resource on the server, when it is one (the Patient, a Practitioner); ``purpose`` one code
    of ``PURPOSES``; ``disclosed`` what went out: references ("Binary/12") or resource types
    ("Observation"), never content. Raises ValueError for an empty recipient or a purpose
    outside ``PURPOSES`` (checked here, so a bad one fails the caller before anything goes
    out rather than being lost in a best-effort audit)."""

    recipient: str
    purpose: str = "PATRQT"
    recipient_reference: str | None = None
    disclosed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ValueError(
                f"unknown disclosure purpose {self.purpose!r}; one of {sorted(PURPOSES)}"
            )
        if not self.recipient.strip():
            raise ValueError("a disclosure names its recipient")
        for item in self.disclosed:
            _disclosed_entity(item)  # raises ValueError for anything else


class AuditTrail(Protocol):
    """Records one access to the patient a workflow works on; with ``disclosure``, an access
    that handed their data to someone (written as ``disclosure_event``). Never raises: an
    audit failure must not fail the workflow (the implementation logs it)."""

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None: ...


class ClientAuditTrail:
    """An AuditTrail writing each event with ``client`` (the command line's or a job's own
    credentials), best effort: a failure is one PHI-free log warning.

    ``patient_id`` None: the patient of each event is the ``Patient/<id>`` among the call's
    ``resources``, and an event with none names no patient (a privacy request not yet
    matched belongs to nobody). ``fhir_user`` is the requesting agent; subclasses may pick
    it per event (``requestor``)."""

    def __init__(
        self,
        client: FhirClient,
        patient_id: str | None,
        fhir_user: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._patient_id = patient_id
        self._fhir_user = fhir_user
        self._clock = clock

    def requestor(self, resources: Sequence[str]) -> str | None:
        """Who asked for the access the event records."""
        return self._fhir_user

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        options: dict[str, Any] = {
            "success": success,
            "description": description,
            "resources": resources,
            "disclosure": disclosure,
            "now": self._clock(),
        }
        requestor = self.requestor(resources)
        if self._patient_id is None:
            event = unmatched_trail_event(subtype, requestor, **options)
        else:
            event = trail_event(subtype, self._patient_id, requestor, **options)
        try:
            self._client.create(event)
        except SymfhirError as exc:
            log.warning("AuditEvent not written: %s", getattr(exc, "log_text", type(exc).__name__))


def unmatched_trail_event(
    subtype: str,
    fhir_user: str | None,
    *,
    success: bool = True,
    description: str | None = None,
    resources: Sequence[str] = (),
    disclosure: DisclosureTo | None = None,
    now: datetime,
) -> dict[str, Any]:
    """``trail_event`` when the patient is not known beforehand: the Patient entity is the
    ``Patient/<id>`` among ``resources``, none when there is none."""
    patient = next((p for r in resources if (p := _patient_of(r))), None)
    others = [r for r in resources if _patient_of(r) is None]
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


def _patient_of(reference: str) -> str | None:
    return reference_id(reference, "Patient")


def trail_event(
    subtype: str,
    patient_id: str,
    fhir_user: str | None,
    *,
    success: bool = True,
    description: str | None = None,
    requested: str | None = None,
    resources: Sequence[str] = (),
    disclosure: DisclosureTo | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The AuditEvent an AuditTrail writes for one call: ``audit_event``, or with a
    ``disclosure`` the disclosure shape (``disclosure_event``), its entities the patient and
    what the disclosure names (``resources`` then only say whose data it was), its
    ``outcomeDesc`` the description. A reference to the patient among ``resources`` is not
    listed twice."""
    own = f"Patient/{patient_id}"
    others = [r for r in resources if r != own]
    if disclosure is None:
        return audit_event(
            subtype,
            patient_id,
            fhir_user,
            success=success,
            description=description,
            requested=requested,
            resources=others,
            now=now,
        )
    event = disclosure_event(
        patient_id,
        recipient=disclosure.recipient,
        recipient_reference=disclosure.recipient_reference,
        purpose=disclosure.purpose,
        disclosed=disclosure.disclosed,
        fhir_user=fhir_user,
        success=success,
        now=now,
    )
    if description:
        event["outcomeDesc"] = description
    return event


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


#: What ``disclosure_event`` records: the R4 disclosure example's type and subtype.
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EXPORT_TYPE = {"system": DCM, "code": "110106", "display": "Export"}
DISCLOSURE_SUBTYPE = {"code": "Disclosure", "display": "HIPAA disclosure"}
SOURCE_ROLE = {"system": DCM, "code": "110153", "display": "Source Role ID"}
DESTINATION_ROLE = {"system": DCM, "code": "110152", "display": "Destination Role ID"}
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: The purposes a disclosure may name (v3 PurposeOfUse, codes of v3-ActReason); any other
#: code is refused, so an accounting never shows a purpose nobody chose on purpose.
PURPOSES = {
    "PATRQT": "patient requested",
    "TREAT": "treatment",
    "COC": "coordination of care",
    "HPAYMT": "healthcare payment",
    "HOPERAT": "healthcare operations",
    "PUBHLTH": "public health",
}


def disclosure_event(
    patient_id: str,
    *,
    recipient: str,
    recipient_reference: str | None = None,
    purpose: str,
    disclosed: Sequence[str] = (),
    fhir_user: str | None,
    source: str = "symfhir",
    success: bool = True,
    now: datetime,
) -> dict[str, Any]:
    """An R4 AuditEvent recording that the patient's data left symfhir (a disclosure), in
    the shape of the R4 example ``example-disclosure``
    (hl7.org/fhir/R4/audit-event-example-disclosure.json.html) that IHE's Basic Audit Log
    Patterns profile:

    - ``type`` DCM 110106 Export, ``subtype`` "Disclosure" (HIPAA disclosure), action R;
    - ``purposeOfEvent`` one v3-ActReason code of ``PURPOSES`` (``PATRQT`` for what the
      client asked for, ``TREAT`` for sharing with a physician);
    - agents: the practitioner who made it (requestor, when known), the source
      (DCM 110153, ``source``: the spa's app) and the recipient (DCM 110152), named by
      ``recipient`` (``agent.name``, shown in the accounting) and, when it is a resource
      on the server (the Patient, a Practitioner), ``recipient_reference``;
    - entities: the Patient (role Patient), then each of ``disclosed``: a reference
      ("Binary/12": what was handed over) or a resource type ("Observation": every one of
      the client's resources of that type), never their content.

    Raises ValueError for a purpose outside ``PURPOSES``, an empty recipient or a
    ``disclosed`` item that is neither a reference nor a resource type.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown disclosure purpose {purpose!r}; one of {sorted(PURPOSES)}")
    if not recipient.strip():
        raise ValueError("a disclosure names its recipient")
    event = audit_event("read", patient_id, fhir_user, success=success, now=now)
    user, app = event["agent"]
    app["type"] = {"coding": [SOURCE_ROLE]}
    app["who"] = {"display": source}
    destination: dict[str, Any] = {
        "type": {"coding": [DESTINATION_ROLE]},
        "name": recipient.strip(),
        "requestor": False,
    }
    if recipient_reference:
        destination["who"] = {"reference": recipient_reference}
    agents = [app, destination]
    if fhir_user:
        agents.insert(0, user)
    event.update(
        type=EXPORT_TYPE,
        subtype=[DISCLOSURE_SUBTYPE],
        action="R",
        purposeOfEvent=[
            {"coding": [{"system": PURPOSE_SYSTEM, "code": purpose, "display": PURPOSES[purpose]}]}
        ],
        agent=agents,
    )
    event["entity"] = event["entity"][:1]
    for item in disclosed:
        event["entity"].append(_disclosed_entity(item))
    return event


def _disclosed_entity(item: str) -> dict[str, Any]:
    kind, _, rest = item.partition("/")
    if not kind[:1].isupper() or not kind.isalpha() or ("/" in item and not rest):
        raise ValueError("a disclosed item is a reference (Type/id) or a resource type")
    if rest:
        return {
            "what": {"reference": item},
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
    # A whole type of the client's record: the type is the entity, as a query would be.
    return {"type": {"system": "http://hl7.org/fhir/resource-types", "code": kind}}


def is_disclosure(event: dict[str, Any]) -> bool:
    """Whether an AuditEvent records a disclosure: type DCM 110106 (Export), or a
    "Disclosure" subtype, as ``disclosure_event`` and the R4 example write it."""
    kind = event.get("type") or {}
    if kind.get("system") == DCM and kind.get("code") == EXPORT_TYPE["code"]:
        return True
    return any(
        (sub or {}).get("code") == DISCLOSURE_SUBTYPE["code"] for sub in event.get("subtype") or []
    )

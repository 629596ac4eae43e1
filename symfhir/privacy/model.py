"""A privacy request as symfhir reads it from its Task, and what handling one produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

#: The request kinds (codes of mappings/codesystems/privacy-request.json).
KINDS = (
    "access",
    "correction",
    "deletion",
    "restriction",
    "portability",
    "opt-out",
    "ccpa-know",
    "ccpa-delete",
    "ccpa-opt-out-of-sale",
)

#: Task.businessStatus codes (mappings/codesystems/privacy-request-status.json), in order.
RECEIVED = "received"
IDENTITY_VERIFIED = "identity-verified"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
DENIED = "denied"
PARTIALLY_COMPLETED = "partially-completed"
FINAL_STATUSES = frozenset({COMPLETED, DENIED, PARTIALLY_COMPLETED})


@dataclass(frozen=True)
class Requester:
    """Who asked, as they gave it (the portal's form, the desk, the command line)."""

    name: str
    birth_date: date | None = None
    email: str | None = None
    phone: str | None = None
    #: An authorized agent acting for the client (CCPA): the agent's name, else None.
    agent: str | None = None


@dataclass(frozen=True)
class Verification:
    """How identity was verified: ``method`` (``email-code``, ``sms-code``, ``in-person``),
    by whom (a FHIR reference, or None for the portal's own codes), and when."""

    method: str
    verified_by: str | None
    when: datetime


@dataclass(frozen=True)
class PrivacyRequest:
    """One privacy request: its Task's id, kind, who asked and for whom, and where it stands.

    ``patient_id`` is None until the requester is matched to one client. ``details`` is what
    the requester wrote about the request; ``inputs`` the kind-specific values asked for
    (e.g. a correction's proposed text, the consents to withdraw), by name.
    """

    task_id: str | None
    kind: str
    requester: Requester
    received: datetime
    due: date
    business_status: str = RECEIVED
    patient_id: str | None = None
    details: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    verifications: tuple[Verification, ...] = ()
    extended_reason: str | None = None
    outputs: tuple[TaskOutput, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.business_status not in FINAL_STATUSES


@dataclass(frozen=True)
class TaskOutput:
    """One ``Task.output``: a label (its ``type.text``, e.g. ``access-package``,
    ``deletion-report``, ``denial-reason``) and exactly one of a text, an attachment
    (``contentType``, ``url``, ``title``, ``size``, ``hash`` as in FHIR) or a reference."""

    label: str
    text: str | None = None
    attachment: dict[str, Any] | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a kind's handler did: the Task's next business status, its outputs, and one
    PHI-free line for the requester and the officer."""

    business_status: str
    outputs: tuple[TaskOutput, ...] = ()
    summary: str = ""

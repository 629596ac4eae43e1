"""A privacy request as a FHIR R4 Task (https://hl7.org/fhir/R4/task.html), and back. Pure.

    Task.identifier          <identifier_base>/privacy-request | reference (conditional create)
    Task.status              requested (received) / received (some contacts verified) /
                             accepted (identity-verified) / in-progress / completed
                             (completed, partially-completed) / rejected (denied)
    Task.intent              order
    Task.code                privacy-request CodeSystem: the kind
    Task.businessStatus      privacy-request-status CodeSystem
    Task.for                 the Patient, once matched
    Task.authoredOn          when the request was received
    Task.restriction.period  end = the due date (moved once by an extension)
    Task.input               what was asked: requester.name, requester.birth-date,
                             requester.email, requester.phone, requester.agent, details,
                             and the kind's own inputs by name (``type.text``)
    Task.output              TaskOutput: ``type.text`` the label, value string/Attachment/Reference
    Task.note                one per verification, extension and patient match, marked by the
                             extension privacy-note (and verification-method for a verification)

Updates work on the Task's JSON as read (``set_status``, ``add_note``…), so whatever else the
EHR keeps on a Task survives symfhir's changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from symfhir.errors import FhirValidationError
from symfhir.fhir.reading import reference_id
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    KINDS,
    PARTIALLY_COMPLETED,
    RECEIVED,
    PrivacyRequest,
    Requester,
    TaskOutput,
    Verification,
)
from symfhir.terminology import load_terminology
from symfhir.validation import validate_resource

KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/privacy-request"
STATUS_SYSTEM = "http://symfhir.org/fhir/CodeSystem/privacy-request-status"
NOTE_KIND = "http://symfhir.org/fhir/StructureDefinition/privacy-note"
VERIFICATION_METHOD = "http://symfhir.org/fhir/StructureDefinition/verification-method"
#: Notes symfhir writes: an identity verification, the extension's reason, a patient match.
NOTE_VERIFICATION = "verification"
NOTE_EXTENSION = "extension"
NOTE_MATCH = "patient-match"

IDENTIFIER_PATH = "privacy-request"
_TASK_STATUS = {
    RECEIVED: "requested",
    IDENTITY_VERIFIED: "accepted",
    IN_PROGRESS: "in-progress",
    COMPLETED: "completed",
    PARTIALLY_COMPLETED: "completed",
    DENIED: "rejected",
}
#: In the order a request goes through them.
BUSINESS_STATUSES = tuple(_TASK_STATUS)
#: Task.status values of a request still open (a search for open requests uses them).
OPEN_TASK_STATUSES = ("requested", "received", "accepted", "in-progress")

_REQUESTER_INPUTS = {
    "requester.name": "name",
    "requester.birth-date": "birth_date",
    "requester.email": "email",
    "requester.phone": "phone",
    "requester.agent": "agent",
}
DETAILS = "details"
RESERVED_INPUTS = frozenset({*_REQUESTER_INPUTS, DETAILS})


@dataclass(frozen=True)
class Note:
    """A note on the Task: its kind (verification, extension, patient-match, or "" for a note
    symfhir did not write), text, author (reference or name) and time."""

    kind: str
    text: str
    author: str | None
    time: str | None


@dataclass(frozen=True)
class TaskRecord:
    """A privacy request read from its Task: the request, its business identifier
    (``reference``), the version read (for If-Match) and every note in order."""

    request: PrivacyRequest
    reference: str
    version: str | None
    notes: tuple[Note, ...] = ()


def identifier_system(identifier_base: str) -> str:
    return f"{identifier_base.rstrip('/')}/{IDENTIFIER_PATH}"


def task_status(business_status: str, verified_any: bool = False) -> str:
    """Task.status for a business status: ``received`` once some contact is verified."""
    if business_status == RECEIVED and verified_any:
        return "received"
    return _TASK_STATUS[business_status]


def _coding(valueset: str, code: str) -> dict[str, str]:
    return load_terminology().coding(valueset, code)


def _input(name: str, value: str | date) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": {"text": name}}
    if isinstance(value, date):
        entry["valueDate"] = value.isoformat()
    else:
        entry["valueString"] = value
    return entry


def _output(output: TaskOutput) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": {"text": output.label}}
    if output.attachment is not None:
        entry["valueAttachment"] = dict(output.attachment)
    elif output.reference is not None:
        entry["valueReference"] = {"reference": output.reference}
    else:
        entry["valueString"] = output.text or ""
    return entry


def _author(entry: dict[str, Any], author: str | None) -> None:
    if author and reference_id(author, author.split("/", 1)[0]) is not None:
        entry["authorReference"] = {"reference": author}
    elif author:
        entry["authorString"] = author


def note_entry(
    kind: str,
    text: str,
    author: str | None,
    time: datetime,
    method: str | None = None,
) -> dict[str, Any]:
    """A Task.note of ``kind`` written by ``author`` (a FHIR reference or a name) at ``time``."""
    extension = [{"url": NOTE_KIND, "valueCode": kind}]
    if method:
        extension.append({"url": VERIFICATION_METHOD, "valueCode": method})
    entry: dict[str, Any] = {
        "extension": extension,
        "time": time.isoformat(timespec="seconds"),
        "text": text,
    }
    _author(entry, author)
    return entry


def verification_note(verification: Verification) -> dict[str, Any]:
    return note_entry(
        NOTE_VERIFICATION,
        f"Identity verified: {verification.method}",
        verification.verified_by,
        verification.when,
        method=verification.method,
    )


def to_task(request: PrivacyRequest, reference: str, identifier_base: str) -> dict[str, Any]:
    """The Task for a new request (no id). Raises FhirValidationError if R4B refuses it
    (an unknown kind or status is a ValueError)."""
    if request.kind not in KINDS:
        raise ValueError(f"unknown privacy request kind {request.kind!r}")
    requester = request.requester
    inputs = [_input("requester.name", requester.name)]
    for name, attribute in list(_REQUESTER_INPUTS.items())[1:]:
        value = getattr(requester, attribute)
        if value:
            inputs.append(_input(name, value))
    if request.details:
        inputs.append(_input(DETAILS, request.details))
    for name, value in request.inputs.items():
        if name in RESERVED_INPUTS:
            raise ValueError(f"input name {name!r} is reserved")
        inputs.append(_input(name, value))
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [{"system": identifier_system(identifier_base), "value": reference}],
        "status": task_status(request.business_status, bool(request.verifications)),
        "businessStatus": {"coding": [_coding("privacy_request_status", request.business_status)]},
        "intent": "order",
        "code": {"coding": [_coding("privacy_request", request.kind)]},
        "authoredOn": request.received.isoformat(timespec="seconds"),
        "lastModified": request.received.isoformat(timespec="seconds"),
        "restriction": {"period": {"end": request.due.isoformat()}},
        "input": inputs,
    }
    if request.patient_id:
        task["for"] = {"reference": f"Patient/{request.patient_id}"}
    notes = [verification_note(v) for v in request.verifications]
    if request.extended_reason is not None:
        notes.append(note_entry(NOTE_EXTENSION, request.extended_reason, None, request.received))
    if notes:
        task["note"] = notes
    if request.outputs:
        task["output"] = [_output(o) for o in request.outputs]
    check_task(task)
    return task


def check_task(task: dict[str, Any]) -> None:
    """Raise FhirValidationError when R4B finds the Task invalid."""
    problems = validate_resource(task)
    if problems:
        raise FhirValidationError([(p.path, p.message) for p in problems])


# -- reading ---------------------------------------------------------------------------------


def _code(concept: Any, system: str) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == system:
            return str(coding.get("code"))
    return None


def _value(entry: dict[str, Any]) -> str | None:
    for key in ("valueString", "valueDate", "valueCode", "valueMarkdown"):
        if key in entry:
            return str(entry[key])
    return None


def _extension(entry: dict[str, Any], url: str) -> str | None:
    for extension in entry.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return str(extension.get("valueCode"))
    return None


def _note(entry: dict[str, Any]) -> Note:
    author = (entry.get("authorReference") or {}).get("reference") or entry.get("authorString")
    return Note(
        kind=_extension(entry, NOTE_KIND) or "",
        text=str(entry.get("text") or ""),
        author=author,
        time=entry.get("time"),
    )


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _parse_date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def is_privacy_task(task: dict[str, Any]) -> bool:
    return task.get("resourceType") == "Task" and _code(task.get("code"), KIND_SYSTEM) in KINDS


class ListingKey(NamedTuple):
    """What a list of requests sorts and filters on, read cheaply from a Task's JSON (a
    dashboard reads thousands and shows fifty): due date, receipt, business status, id.
    A tuple: built ten thousand times per dashboard page."""

    due: date
    received: float
    business_status: str
    task_id: str


def listing_key(task: dict[str, Any]) -> ListingKey | None:
    """The ListingKey of a privacy-request Task; None when ``from_task`` would refuse it."""
    if task.get("resourceType") != "Task" or _code(task.get("code"), KIND_SYSTEM) not in KINDS:
        return None
    status = _code(task.get("businessStatus"), STATUS_SYSTEM) or RECEIVED
    received = _parse_time(task.get("authoredOn"))
    due = _parse_date(((task.get("restriction") or {}).get("period") or {}).get("end"))
    if status not in BUSINESS_STATUSES or received is None or due is None:
        return None
    return ListingKey(due, received.timestamp(), status, str(task.get("id") or ""))


def from_task(task: dict[str, Any], identifier_base: str) -> TaskRecord:
    """The request a Task carries. Raises ValueError for a Task that is not a privacy request
    symfhir can read (no known kind, no receipt time or due date)."""
    kind = _code(task.get("code"), KIND_SYSTEM)
    if task.get("resourceType") != "Task" or kind not in KINDS:
        raise ValueError("not a privacy-request Task")
    status = _code(task.get("businessStatus"), STATUS_SYSTEM) or RECEIVED
    if status not in BUSINESS_STATUSES:
        raise ValueError("privacy-request Task with an unknown business status")
    received = _parse_time(task.get("authoredOn"))
    due = _parse_date(((task.get("restriction") or {}).get("period") or {}).get("end"))
    if received is None or due is None:
        raise ValueError("privacy-request Task without authoredOn or due date")
    values: dict[str, str] = {}
    inputs: dict[str, str] = {}
    details = ""
    for entry in task.get("input") or []:
        name = str(((entry or {}).get("type") or {}).get("text") or "")
        value = _value(entry)
        if value is None or not name:
            continue
        if name in _REQUESTER_INPUTS:
            values[_REQUESTER_INPUTS[name]] = value
        elif name == DETAILS:
            details = value
        else:
            inputs[name] = value
    requester = Requester(
        name=values.get("name", ""),
        birth_date=_parse_date(values["birth_date"]) if "birth_date" in values else None,
        email=values.get("email"),
        phone=values.get("phone"),
        agent=values.get("agent"),
    )
    raw_notes = [n for n in task.get("note") or [] if isinstance(n, dict)]
    verifications = []
    extended_reason = None
    for entry in raw_notes:
        kind_of_note = _extension(entry, NOTE_KIND)
        if kind_of_note == NOTE_VERIFICATION:
            when = _parse_time(entry.get("time"))
            method = _extension(entry, VERIFICATION_METHOD)
            if when is not None and method:
                by = (entry.get("authorReference") or {}).get("reference")
                verifications.append(Verification(method=method, verified_by=by, when=when))
        elif kind_of_note == NOTE_EXTENSION:
            extended_reason = str(entry.get("text") or "")
    outputs = tuple(_read_output(o) for o in task.get("output") or [] if isinstance(o, dict))
    identifier = next(
        (
            str(i.get("value"))
            for i in task.get("identifier") or []
            if i.get("system") == identifier_system(identifier_base)
        ),
        "",
    )
    request = PrivacyRequest(
        task_id=task.get("id"),
        kind=str(kind),
        requester=requester,
        received=received,
        due=due,
        business_status=status,
        patient_id=reference_id(task.get("for"), "Patient"),
        details=details,
        inputs=inputs,
        verifications=tuple(verifications),
        extended_reason=extended_reason,
        outputs=outputs,
    )
    version = (task.get("meta") or {}).get("versionId")
    return TaskRecord(request, identifier, version, tuple(_note(n) for n in raw_notes))


def _read_output(entry: dict[str, Any]) -> TaskOutput:
    label = str((entry.get("type") or {}).get("text") or "")
    if "valueAttachment" in entry:
        return TaskOutput(label, attachment=dict(entry["valueAttachment"]))
    if "valueReference" in entry:
        return TaskOutput(label, reference=(entry["valueReference"] or {}).get("reference"))
    return TaskOutput(label, text=_value(entry))


# -- updates (on a copy of the Task as read) -------------------------------------------------


def updated(task: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A copy of ``task`` to change, its lastModified set to ``now``."""
    copied = copy.deepcopy(task)
    copied["lastModified"] = now.isoformat(timespec="seconds")
    return copied


def set_status(task: dict[str, Any], business_status: str, now: datetime) -> None:
    """Set businessStatus and the matching Task.status; the execution period opens when work
    starts and closes with a final status."""
    verified_any = any(
        _extension(n, NOTE_KIND) == NOTE_VERIFICATION for n in task.get("note") or []
    )
    task["businessStatus"] = {"coding": [_coding("privacy_request_status", business_status)]}
    task["status"] = task_status(business_status, verified_any)
    stamp = now.isoformat(timespec="seconds")
    period = task.setdefault("executionPeriod", {})
    if business_status == IN_PROGRESS:
        period.setdefault("start", stamp)
    elif business_status in (COMPLETED, PARTIALLY_COMPLETED, DENIED):
        period.setdefault("start", stamp)
        period["end"] = stamp
    if not period:
        del task["executionPeriod"]


def add_note(task: dict[str, Any], note: dict[str, Any]) -> None:
    task.setdefault("note", []).append(note)


def add_outputs(task: dict[str, Any], outputs: tuple[TaskOutput, ...]) -> None:
    if outputs:
        task.setdefault("output", []).extend(_output(o) for o in outputs)


def set_patient(task: dict[str, Any], patient_id: str) -> None:
    task["for"] = {"reference": f"Patient/{patient_id}"}


def set_due(task: dict[str, Any], due: date) -> None:
    task.setdefault("restriction", {}).setdefault("period", {})["end"] = due.isoformat()

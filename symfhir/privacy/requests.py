"""The privacy-request workflows: a request submitted (``submit_request``), read
(``get_request``), listed (``list_requests``), its identity verified (``record_verification``),
started (``start``), extended once (``extend``), and closed (``complete``, ``deny``).
Matching a requester to a client is ``symfhir.privacy.matching``; running a kind's handler is
``symfhir.privacy.processing``.

Each takes the FHIR client, the acting user, what it works on, and keywords ``now`` and
``audit``; each step is one versioned write of the request's Task (If-Match: pass the
``version`` an officer saw to refuse a change made meanwhile) and one AuditEvent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from symfhir.audit import AuditTrail
from symfhir.errors import PrivacyRequestError
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.privacy.deadlines import due_date, extended_due, local_date
from symfhir.privacy.model import (
    DENIED,
    FINAL_STATUSES,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    RECEIVED,
    Outcome,
    PrivacyRequest,
    Requester,
    TaskOutput,
    Verification,
)
from symfhir.privacy.requester import check_details, check_inputs, check_kind, check_requester
from symfhir.privacy.task import (
    KIND_SYSTEM,
    NOTE_EXTENSION,
    OPEN_TASK_STATUSES,
    add_note,
    add_outputs,
    from_task,
    identifier_system,
    listing_key,
    note_entry,
    set_due,
    set_status,
    to_task,
    updated,
    verification_note,
)
from symfhir.privacy.tasks import (
    Settings,
    TrackedRequest,
    may_read,
    read_task,
    require_open,
    save_task,
    tracked,
    who,
)
from symfhir.workspace.actor import Actor

#: Verification methods and the contact each one proves (in person proves every contact).
METHODS = {"email-code": "email", "sms-code": "phone", "in-person": None}
SEARCH_PAGE = 200
MAX_PAGE_SIZE = 200
#: A verification may be recorded a little ahead of the server's clock (clock skew), no more.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class NewRequest:
    """A request as it comes in: its kind, who asked, what about, the kind's inputs,
    ``reference`` (its business identifier: the same reference never makes a second Task;
    None draws a random one), the client when already known (the desk, for the launched
    client) and any verification already done (in person at the desk)."""

    kind: str
    requester: Requester
    details: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)
    reference: str | None = None
    patient_id: str | None = None
    verifications: tuple[Verification, ...] = ()


@dataclass(frozen=True)
class Submitted:
    """The request's Task: ``created`` False when one with this reference existed (a retry)."""

    request: TrackedRequest
    created: bool


@dataclass(frozen=True)
class RequestPage:
    """One page of requests, sorted by due date (then receipt), and how many there are."""

    items: tuple[TrackedRequest, ...]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def contacts_verified(request: PrivacyRequest) -> bool:
    """Every contact the requester gave is verified (a code sent to it, or the requester seen
    in person); a request giving no contact needs an in-person verification."""
    methods = {v.method for v in request.verifications}
    if "in-person" in methods:
        return True
    needed = {
        c
        for c, given in (("email", request.requester.email), ("phone", request.requester.phone))
        if given
    }
    proven = {METHODS[m] for m in methods if METHODS.get(m)}
    return bool(needed) and needed <= proven


def _check_verification(verification: Verification, request: PrivacyRequest, now: datetime) -> None:
    if verification.method not in METHODS:
        raise PrivacyRequestError(f"verification method must be one of {', '.join(METHODS)}")
    contact = METHODS[verification.method]
    if contact and not getattr(request.requester, contact):
        raise PrivacyRequestError(f"the request gives no {contact} to verify")
    if verification.method == "in-person" and not verification.verified_by:
        raise PrivacyRequestError("an in-person verification names who verified")
    if verification.when.tzinfo is None or verification.when > now + CLOCK_SKEW:
        raise PrivacyRequestError("a verification's time must carry an offset and be past")


def submit_request(
    client: FhirClient,
    actor: Actor,
    new: NewRequest,
    *,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> Submitted:
    """Write the request as a Task (conditional create on its reference): received now, due
    ``response_days`` later, identity-verified at once when the verifications given cover every
    contact. Raises RecordError for a bad field (nothing written), NotAllowedError,
    PrivacyRequestError for an unusable verification, FhirServerError."""
    settings = settings or Settings.load()
    actor.require([("Task", "c")])
    requester = check_requester(
        new.requester,
        today=local_date(now, settings.spa.zone),
        phone_region=settings.spa.phone_region,
    )
    request = PrivacyRequest(
        task_id=None,
        kind=check_kind(new.kind),
        requester=requester,
        received=now,
        due=due_date(now, settings.policy, settings.spa.zone),
        patient_id=check_id(new.patient_id, "patient id") if new.patient_id else None,
        details=check_details(new.details),
        inputs=check_inputs(new.inputs),
    )
    for verification in new.verifications:
        _check_verification(verification, request, now)
    request = replace(request, verifications=new.verifications)
    if contacts_verified(request):
        request = replace(request, business_status=IDENTITY_VERIFIED)
    reference = new.reference or uuid.uuid4().hex
    task = to_task(request, reference, settings.spa.identifier_base)
    criteria = f"identifier={identifier_system(settings.spa.identifier_base)}|{reference}"
    written = client.create(task, if_none_exist=criteria)
    saved = written.resource or client.read("Task", written.id)
    record = from_task(saved, settings.spa.identifier_base)
    _audit(audit, "create", "privacy request received", record.request)
    return Submitted(tracked(record, now, settings), written.status == "created")


def get_request(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> TrackedRequest:
    """One request by its Task id. Raises FhirNotFoundError, PrivacyRequestError (not a
    privacy request), NotAllowedError."""
    settings = settings or Settings.load()
    may_read(actor, [("Task", "r")])
    _, record = read_task(client, task_id, settings)
    _audit(audit, "read", "privacy request read", record.request)
    return tracked(record, now, settings)


def list_requests(
    client: FhirClient,
    actor: Actor,
    *,
    now: datetime,
    audit: AuditTrail,
    due_soon: bool = False,
    overdue: bool = False,
    patient_id: str | None = None,
    include_closed: bool = False,
    page: int = 1,
    page_size: int = 50,
    settings: Settings | None = None,
) -> RequestPage:
    """Open requests (all of them with ``include_closed``), optionally of one client, sorted by
    due date; ``due_soon`` and/or ``overdue`` keep only those (both: either). Pages count from
    1. Raises NotAllowedError, FhirServerError, ValueError for a bad page."""
    settings = settings or Settings.load()
    may_read(actor, [("Task", "s")])
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page from 1, page size 1 to {MAX_PAGE_SIZE}")
    params: list[tuple[str, str]] = [("code", f"{KIND_SYSTEM}|"), ("_count", str(SEARCH_PAGE))]
    if not include_closed:
        params.append(("status", ",".join(OPEN_TASK_STATUSES)))
    if patient_id:
        params.append(("patient", f"Patient/{check_id(patient_id, 'patient id')}"))
    # Sorting and filtering read a few elements of each Task; only the page is read in full.
    today = local_date(now, settings.spa.zone)
    soon = today + timedelta(days=settings.policy.due_soon_days)
    found = []
    for task in client.search("Task", params):
        key = listing_key(task)
        if key is None:
            continue  # a Task symfhir cannot read is not one of its requests
        is_open = key.business_status not in FINAL_STATUSES
        late = is_open and key.due < today
        near = is_open and today <= key.due <= soon
        if (due_soon or overdue) and not ((due_soon and near) or (overdue and late)):
            continue
        found.append((key.due, key.received, key.task_id, task))
    found.sort(key=lambda entry: entry[:3])
    start = (page - 1) * page_size
    base = settings.spa.identifier_base
    items = tuple(
        tracked(from_task(task, base), now, settings)
        for *_, task in found[start : start + page_size]
    )
    audit(
        "search",
        description="privacy requests listed",
        resources=(f"Patient/{patient_id}",) if patient_id else (),
    )
    return RequestPage(items, len(found), page, page_size)


def record_verification(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    verification: Verification,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    how: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Record one verification (a code sent to the e-mail or phone and entered back, or the
    requester seen in person: who verified, how, when; ``how`` the proof seen, e.g. "Government
    photo ID", kept in the note). Once every contact given is verified the request becomes
    identity-verified. Raises PrivacyRequestError (closed request, a method for a contact the
    request does not give, an in-person check naming nobody)."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    task, record = read_task(client, task_id, settings)
    request = record.request
    require_open(request)
    _check_verification(verification, request, now)
    changed = updated(task, now)
    note = verification_note(verification)
    if how and how.strip():
        note["text"] += f" ({how.strip()})"
    add_note(changed, note)
    done = replace(request, verifications=(*request.verifications, verification))
    status = (
        IDENTITY_VERIFIED
        if request.business_status == RECEIVED and contacts_verified(done)
        else request.business_status
    )
    set_status(changed, status, now)
    saved = save_task(client, changed, version or record.version, settings)
    _audit(audit, "update", f"identity verification recorded: {verification.method}", saved.request)
    return tracked(saved, now, settings)


def start(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Mark the request in progress. Raises PrivacyRequestError before identity is verified or
    a client is matched (nothing may be disclosed or changed before)."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    task, record = read_task(client, task_id, settings)
    require_ready(record.request)
    if record.request.business_status == IN_PROGRESS:
        return tracked(record, now, settings)
    changed = updated(task, now)
    set_status(changed, IN_PROGRESS, now)
    saved = save_task(client, changed, version or record.version, settings)
    _audit(audit, "update", "privacy request started", saved.request)
    return tracked(saved, now, settings)


def require_ready(request: PrivacyRequest) -> None:
    """Raise PrivacyRequestError unless the request is open, verified and matched."""
    require_open(request)
    if request.business_status == RECEIVED:
        raise PrivacyRequestError(
            f"Task/{request.task_id}: the requester's identity is not verified yet"
        )
    if not request.patient_id:
        raise PrivacyRequestError(f"Task/{request.task_id}: no client matched yet")


def extend(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    reason: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Move the due date ``extension_days`` later, once, with a reason for the requester
    (kept as a Task note). Raises PrivacyRequestError for a second extension, a closed
    request or no reason."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    task, record = read_task(client, task_id, settings)
    new_due = extended_due(record.request, reason, settings.policy)
    changed = updated(task, now)
    set_due(changed, new_due)
    add_note(changed, note_entry(NOTE_EXTENSION, reason.strip(), who(actor), now))
    saved = save_task(client, changed, version or record.version, settings)
    _audit(audit, "update", "privacy request extended", saved.request)
    return tracked(saved, now, settings)


def complete(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    outcome: Outcome,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Close the request with a handler's (or a person's) outcome: its final business status
    (completed, partially-completed or denied), its outputs, and its summary line as a
    ``summary`` output. Raises PrivacyRequestError for an outcome that does not close, or a
    request not verified, not matched or closed."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    if outcome.business_status not in FINAL_STATUSES:
        raise PrivacyRequestError(
            f"an outcome closes a request: one of {', '.join(sorted(FINAL_STATUSES))}"
        )
    task, record = read_task(client, task_id, settings)
    if outcome.business_status == DENIED:
        require_open(record.request)
    else:
        require_ready(record.request)
    changed = updated(task, now)
    outputs = outcome.outputs
    if outcome.summary:
        outputs = (*outputs, TaskOutput("summary", text=outcome.summary))
    add_outputs(changed, outputs)
    set_status(changed, outcome.business_status, now)
    saved = save_task(client, changed, version or record.version, settings)
    _audit(audit, "update", f"privacy request closed: {outcome.business_status}", saved.request)
    return tracked(saved, now, settings)


def deny(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    reason: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Deny the request with a reason (a ``denial-reason`` output the requester is told).
    Raises PrivacyRequestError for no reason or a closed request."""
    text = reason.strip()
    if not text:
        raise PrivacyRequestError("a denial needs a reason (it is sent to the requester)")
    outcome = Outcome(DENIED, (TaskOutput("denial-reason", text=text),))
    return complete(
        client, actor, task_id, outcome, now=now, audit=audit, version=version, settings=settings
    )


def _audit(audit: AuditTrail, subtype: str, description: str, request: PrivacyRequest) -> None:
    resources = [f"Task/{request.task_id}"]
    if request.patient_id:
        resources.append(f"Patient/{request.patient_id}")
    audit(subtype, description=description, resources=resources)


def record_progress(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    outcome: Outcome,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """Keep a handler's outputs on a request it could not close yet (a correction waiting on
    a practitioner): the request stays in progress. Raises PrivacyRequestError for a final
    outcome (use ``complete``) or a request not ready."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    if outcome.business_status != IN_PROGRESS:
        raise PrivacyRequestError("a request still being worked on stays in-progress")
    task, record = read_task(client, task_id, settings)
    require_ready(record.request)
    changed = updated(task, now)
    outputs = outcome.outputs
    if outcome.summary:
        outputs = (*outputs, TaskOutput("progress", text=outcome.summary))
    add_outputs(changed, outputs)
    set_status(changed, IN_PROGRESS, now)
    saved = save_task(client, changed, version or record.version, settings)
    _audit(audit, "update", "privacy request progress recorded", saved.request)
    return tracked(saved, now, settings)

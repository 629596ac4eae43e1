"""A practitioner's answer to a correction request, and the client's statement of disagreement.

- ``accept_correction``: ONE transaction applies the change to the target (PUT, If-Match on
  the version just read), writes its Provenance (activity UPDATE, the practitioner as author,
  reason "patient requested", the request's Task as source entity, the amended version as
  revision) and completes the Task (If-Match on the version the practitioner saw: two people
  answering at once cannot both win). A second, best-effort update names the new version.
- ``deny_correction``: the Task denied with the reason and the requester's rights.
- ``file_disagreement``: the client's statement kept as a DocumentReference (subject and
  author the client; ``context.related`` the disputed record and the Task), written in one
  transaction with the Task's output naming it. R4 has no amendment resource; a
  DocumentReference is how a document by the patient is kept with the record, and its
  ``related`` search finds it wherever the disputed record is shown.

Each returns a frozen result with the PHI-minimal notice for the requester (None without an
e-mail); sending it is the caller's.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.errors import FhirServerError, PrivacyRequestError, RecordError
from symfhir.fhir import FhirClient
from symfhir.fhir.writes import outcomes
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import digest
from symfhir.privacy.correction import (
    FIELD_OUTPUT,
    RESOURCE_INPUT,
    TARGET_OUTPUT,
    Change,
    Target,
    amended,
    awaits_review,
    parse_target,
    read_target,
)
from symfhir.privacy.correction_notices import (
    DISAGREEMENT_RIGHTS,
    accepted_notice,
    denied_notice,
    disagreement_notice,
)
from symfhir.privacy.correction_rules import load_rules
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    Outcome,
    PrivacyRequest,
    TaskOutput,
)
from symfhir.privacy.notices import Notice
from symfhir.privacy.requests import complete, require_ready
from symfhir.privacy.task import add_outputs, check_task, set_status, updated
from symfhir.privacy.tasks import Settings, TrackedRequest, read_task, save_task, tracked
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.writes import check_valid, provenance_entry
from symfhir.workspace.disputes import DISAGREEMENT_CODE, DOCUMENT_SYSTEM

CORRECTED_OUTPUT = "corrected"
PROVENANCE_OUTPUT = "correction-provenance"
DISAGREEMENT_OUTPUT = "statement-of-disagreement"
RIGHTS_OUTPUT = "disagreement-rights"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MAX_STATEMENT = 10_000


@dataclass(frozen=True)
class CorrectionResult:
    """The request after the step, what it touched (``target``: ``Patient/1/_history/4`` once
    amended; the statement's reference for a disagreement) and the requester's notice."""

    request: TrackedRequest
    target: str | None
    notice: Notice | None


def _correction(client: FhirClient, task_id: str, settings: Settings) -> tuple[dict, Any]:
    task, record = read_task(client, task_id, settings)
    if record.request.kind != "correction":
        raise PrivacyRequestError(f"Task/{task_id} is not a correction request")
    return task, record


def _target(request: PrivacyRequest, named: str | None) -> Target:
    """The target the handler recorded, or the one the practitioner names for a request that
    named none (a request not processed yet has neither)."""
    recorded = {o.label: o for o in request.outputs}
    if not awaits_review(request):
        raise PrivacyRequestError(
            f"Task/{request.task_id}: the proposal is not awaiting review (process it first)"
        )
    asked = request.inputs.get(RESOURCE_INPUT, "").strip()
    if not asked:
        if not (named or "").strip():
            raise PrivacyRequestError("name the record to amend (Patient.telecom, Type/id)")
        return parse_target(str(named), str(request.patient_id), load_rules())
    target = parse_target(asked, str(request.patient_id), load_rules())
    if named and parse_target(named, str(request.patient_id), load_rules()) != target:
        raise PrivacyRequestError("the request names another record: deny it, or accept that one")
    if TARGET_OUTPUT not in recorded:
        raise PrivacyRequestError(f"Task/{request.task_id}: the recorded target does not match")
    field = recorded.get(FIELD_OUTPUT)
    if target.reference != recorded[TARGET_OUTPUT].reference or target.field != (
        field.text if field else None
    ):
        raise PrivacyRequestError(f"Task/{request.task_id}: the recorded target does not match")
    return target


def accept_correction(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    version: str | None,
    change: Change,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> CorrectionResult:
    """Apply the change as a versioned update with Provenance and complete the request, all in
    one transaction. Raises PrivacyRequestError (not a correction, not awaiting review, a
    target not the client's or not amendable, an action the rules refuse), RecordError (a
    value the field cannot take), NotAllowedError, FhirConflictError (the record or the
    request changed meanwhile: nothing was written), FhirServerError."""
    settings = settings or Settings.load()
    actor.require([("Task", "u"), ("Provenance", "c")])
    task, record = _correction(client, task_id, settings)
    request = record.request
    require_ready(request)
    target = _target(request, change.target)
    actor.require([(target.resource_type, "u")])
    patient_id = str(request.patient_id)
    current = read_target(client, target, patient_id)
    target_version = str((current.get("meta") or {}).get("versionId") or "")
    if not target_version:
        raise PrivacyRequestError(f"{target.resource_type}: the server gives no version")
    stamp = f"{now.astimezone(settings.spa.zone):%Y-%m-%d}"
    by = actor.fhir_user or "staff"
    note = f"Amended {stamp} at the client's request (Task/{task_id}), accepted by {by}."
    new, action = amended(
        current,
        target,
        change,
        load_rules(),
        note=note,
        author=actor.fhir_user,
        now=now,
        phone_region=settings.spa.phone_region,
    )
    ctx = MappingContext.load(now)
    prov = provenance_entry(
        [{"reference": target.reference}],
        "UPDATE",
        actor.fhir_user,
        ctx,
        key=f"correction-{digest(task_id, target.reference, target_version)}",
    )
    prov.resource["reason"] = [
        {
            "coding": [
                {"system": PURPOSE_SYSTEM, "code": "PATRQT", "display": "patient requested"}
            ],
            "text": f"correction request Task/{task_id}",
        }
    ]
    prov.resource["entity"] = [
        {"role": "source", "what": {"reference": f"Task/{task_id}"}},
        {
            "role": "revision",
            "what": {
                "reference": f"{target.reference}/_history/{target_version}",
                # Also as text: servers may drop the version from the reference (HAPI does).
                "display": f"version {target_version}, as it was before the correction",
            },
        },
    ]
    summary = f"{target.label} amended ({action})"
    closed = updated(task, now)
    named = () if TARGET_OUTPUT in {o.label for o in request.outputs} else _named(target)
    add_outputs(
        closed,
        (
            *named,
            TaskOutput(PROVENANCE_OUTPUT, reference=prov.full_url),
            TaskOutput("summary", text=summary),
        ),
    )
    set_status(closed, COMPLETED, now)
    check_task(closed)
    check_valid([new, prov.resource])
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _put(new, target_version),
            {
                "fullUrl": prov.full_url,
                "resource": prov.resource,
                "request": {"method": "POST", "url": "Provenance"},
            },
            _put(closed, version or record.version),
        ],
    }
    answer = client.transaction(bundle)
    written = outcomes(bundle, answer)
    amended_ref = target.reference
    first = written[0]
    if not isinstance(first, FhirServerError) and first.version:
        amended_ref = f"{target.reference}/_history/{first.version}"
    audit(
        "update",
        description=f"correction accepted: {target.resource_type} amended ({action})",
        resources=[f"Patient/{patient_id}", target.reference, f"Task/{task_id}"],
    )
    saved = _name_version(client, task_id, amended_ref, written[2], now, settings)
    done = saved or tracked(read_task(client, task_id, settings)[1], now, settings)
    return CorrectionResult(done, amended_ref, accepted_notice(done.request, settings.spa))


def _named(target: Target) -> tuple[TaskOutput, ...]:
    # The record the practitioner named, kept as the handler keeps one the request named.
    outputs = [TaskOutput(TARGET_OUTPUT, reference=target.reference)]
    if target.field:
        outputs.append(TaskOutput(FIELD_OUTPUT, text=target.field))
    return tuple(outputs)


def _put(resource: dict[str, Any], version: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }
    if version:
        entry["request"]["ifMatch"] = f'W/"{version}"'
    return entry


def _name_version(
    client: FhirClient,
    task_id: str,
    amended_ref: str,
    task_written: Any,
    now: datetime,
    settings: Settings,
) -> TrackedRequest | None:
    # The request is already completed by the transaction; naming the new version is a
    # second write that may fail (someone touched the Task): the amendment stands either way.
    if isinstance(task_written, FhirServerError) or "/_history/" not in amended_ref:
        return None
    task, record = read_task(client, task_id, settings)
    changed = updated(task, now)
    # As text: servers may drop the version from a Reference (HAPI does, by default).
    add_outputs(changed, (TaskOutput(CORRECTED_OUTPUT, text=amended_ref),))
    try:
        saved = save_task(client, changed, record.version, settings)
    except FhirServerError:
        return None
    return tracked(saved, now, settings)


def deny_correction(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    version: str | None,
    reason: str,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> CorrectionResult:
    """Deny the correction with its basis (``reason``) and the requester's rights (HIPAA
    164.526(d)(1)) as outputs. Raises PrivacyRequestError (no reason, not a correction,
    closed), NotAllowedError, FhirConflictError (changed meanwhile)."""
    settings = settings or Settings.load()
    text = " ".join((reason or "").split())
    if not text:
        raise PrivacyRequestError("a denial needs its basis (it is sent to the requester)")
    actor.require([("Task", "u")])
    _correction(client, task_id, settings)
    outcome = Outcome(
        DENIED,
        (
            TaskOutput("denial-reason", text=text),
            TaskOutput(RIGHTS_OUTPUT, text=DISAGREEMENT_RIGHTS),
        ),
        "correction denied",
    )
    done = complete(
        client, actor, task_id, outcome, now=now, audit=audit, version=version, settings=settings
    )
    return CorrectionResult(done, None, denied_notice(done.request, settings.spa, text))


def disputed_reference(request: PrivacyRequest) -> str | None:
    """The record a correction request disputes (what its statement of disagreement links)."""
    found = next((o for o in request.outputs if o.label == TARGET_OUTPUT), None)
    return found.reference if found else None


def file_disagreement(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    statement: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> CorrectionResult:
    """Keep the client's statement of disagreement with a denied correction: a DocumentReference
    linked to the disputed record and the Task, and the Task's output naming it, in one
    transaction (one statement per request: a retry finds it). Raises PrivacyRequestError (not
    a denied correction), RecordError (empty or too long), NotAllowedError, FhirServerError."""
    settings = settings or Settings.load()
    actor.require([("Task", "u"), ("DocumentReference", "c")])
    text = (statement or "").strip()
    if not text or len(text) > MAX_STATEMENT:
        raise RecordError(
            "statement of disagreement", "statement", f"must be 1 to {MAX_STATEMENT} characters"
        )
    task, record = _correction(client, task_id, settings)
    request = record.request
    if request.business_status != DENIED or not request.patient_id:
        raise PrivacyRequestError(f"Task/{task_id}: a statement of disagreement follows a denial")
    if any(o.label == DISAGREEMENT_OUTPUT for o in request.outputs):
        raise PrivacyRequestError(f"Task/{task_id}: a statement of disagreement is on file")
    related = [{"reference": f"Task/{task_id}"}]
    disputed = disputed_reference(request)
    if disputed:
        related.insert(0, {"reference": disputed})
    patient = f"Patient/{request.patient_id}"
    system = f"{settings.spa.identifier_base}/{DISAGREEMENT_CODE}"
    document = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": system, "value": task_id}],
        "status": "current",
        "type": {
            "coding": [
                {
                    "system": DOCUMENT_SYSTEM,
                    "code": DISAGREEMENT_CODE,
                    "display": "Statement of disagreement",
                }
            ]
        },
        "subject": {"reference": patient},
        "date": now.isoformat(timespec="seconds"),
        "author": [{"reference": patient}],
        "description": "The client's statement of disagreement with a denied correction",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    "title": "Statement of disagreement",
                    "creation": now.isoformat(timespec="seconds"),
                }
            }
        ],
        "context": {"related": related},
    }
    full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{system}/{task_id}')}"
    changed = updated(task, now)
    add_outputs(changed, (TaskOutput(DISAGREEMENT_OUTPUT, reference=full_url),))
    check_task(changed)
    check_valid([document])
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": full_url,
                "resource": document,
                "request": {
                    "method": "POST",
                    "url": "DocumentReference",
                    "ifNoneExist": f"identifier={system}|{task_id}",
                },
            },
            _put(changed, version or record.version),
        ],
    }
    written = outcomes(bundle, client.transaction(bundle))
    first = written[0]
    reference = None if isinstance(first, FhirServerError) else f"DocumentReference/{first.id}"
    audit(
        "create",
        description="statement of disagreement filed",
        resources=[patient, *(r["reference"] for r in related)],
    )
    done = tracked(read_task(client, task_id, settings)[1], now, settings)
    return CorrectionResult(done, reference, disagreement_notice(request, settings.spa))

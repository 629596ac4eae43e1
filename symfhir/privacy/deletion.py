"""Deleting a client's data within legal retention (policy §6 "Right to Deletion", §9, §11).

``delete_client_data`` reads the client's resources (``client_resources``), plans by the rules
of ``mappings/retention.yaml`` (``retention.plan_deletion``), and carries the plan out:

1. the Patient is tagged ``RETENTION_TAG`` while anything is kept until a date, so that
   ``symfhir retention run`` finds it and deletes the rest when its date comes;
2. kept resources stop naming what goes (``unlink``) and lose the contact details the rules
   remove (``minimize``): versioned updates, each checked against the version read;
3. what may go is deleted, referrers before what they reference, never with ``_cascade``: a
   resource the server still finds referenced (409) is kept and reported so;
4. each deleted resource, and the earlier versions of each updated one, is erased with the
   server's ``$expunge`` where it has one (a FHIR delete alone keeps the history readable).

The AuditEvent of the deletion is written first: it names the Patient, so the plan keeps the
Patient (as the subject of the audit trail, which is never deleted) instead of the server
refusing its deletion.

Every step is idempotent, so a run stopped halfway loses nothing and a re-run continues: an
item already deleted is simply no longer read. The report names resources by ``Type/id`` with
rules and dates only (no clinical content: ``deletion_report``), and is what a deletion
request's Task keeps as its output (``handle``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.errors import (
    FhirAuthError,
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    NotAllowedError,
    PrivacyRequestError,
)
from symfhir.fhir import FhirClient
from symfhir.model.age import MINOR, age_status
from symfhir.privacy.client_resources import read_client_resources
from symfhir.privacy.deletion_order import ref_key
from symfhir.privacy.deletion_report import (
    DELETED,
    KEPT,
    WOULD_DELETE,
    DeletionItem,
    DeletionReport,
    report_item,
)
from symfhir.privacy.model import (
    COMPLETED,
    PARTIALLY_COMPLETED,
    Outcome,
    PrivacyRequest,
    TaskOutput,
)
from symfhir.privacy.retention import REFERENCED, plan_deletion
from symfhir.privacy.retention_rules import load_retention
from symfhir.spa import load_spa
from symfhir.terminology import load_terminology
from symfhir.workspace.actor import Actor

#: On a Patient whose deletion left records kept until a date (``symfhir retention run``):
#: terminology.yaml ``retention_tag``, project CodeSystem ``retention``.
RETENTION_TAG = load_terminology().coding("retention_tag", "scheduled")
RETENTION_SYSTEM = RETENTION_TAG["system"]
REPORT_LABEL = "deletion-report"
#: Why a deletion runs.
REQUEST = "request"
GUARDIAN_NOTICE = "guardian-notice"
RETENTION_RUN = "retention-run"


def delete_client_data(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    dry_run: bool = False,
    reason: str = REQUEST,
) -> DeletionReport:
    """Delete what the retention rules let go of the client's data now; keep and schedule
    the rest (see the module docstring). ``dry_run`` writes nothing and reports what would be
    done. Raises NotAllowedError before any write when the actor may not delete or update
    what the plan needs, FhirServerError when the server fails (a re-run continues)."""
    # Every event names the client: a request's trail is bound to none (RequestAuditTrail),
    # and the retention run finds when the deletion ran by these (privacy.returning).
    whose = [f"Patient/{patient_id}"]
    if dry_run:
        audit("search", description=f"deletion dry run ({reason})", resources=whose)
    else:
        # First, so that the plan sees this AuditEvent: it names the Patient, which then
        # stays (stripped of its contact details) rather than being refused by the server.
        if not actor.writable:
            raise NotAllowedError((), read_only=True)
        audit("delete", description=f"deletion ({reason}) started", resources=whose)
    resources = read_client_resources(client, patient_id)
    plan = plan_deletion(resources, now, zone=load_spa().zone, policy=load_retention())
    if dry_run:
        items = tuple(report_item(i, WOULD_DELETE) for i in plan.items)
        return DeletionReport(patient_id, now, reason, True, items, (), plan.last_treatment)

    needs = [(ref.split("/", 1)[0], "d") for ref in plan.order]
    needs += [(ref.split("/", 1)[0], "u") for ref in [*plan.unlink, *plan.minimize, *plan.strip]]
    if plan.next_date():
        needs.append(("Patient", "u"))
    try:
        actor.require(needs)
    except NotAllowedError:
        audit(
            "delete",
            success=False,
            description=f"deletion ({reason}) refused: not allowed",
            resources=whose,
        )
        raise

    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    patient_ref = f"Patient/{patient_id}"
    if plan.next_date() and patient_ref in by_ref:
        # Before anything is deleted: a run stopped halfway is still found and finished.
        _set_tag(client, by_ref[patient_ref], tagged=True)
    updated = _update_kept(client, plan.unlink, plan.minimize)

    refused: set[str] = set()
    erased = True
    for ref in plan.order:
        resource_type, resource_id = ref.split("/", 1)
        try:
            client.delete(resource_type, resource_id)
        except FhirNotFoundError:
            pass  # gone already: a re-run after a stop, or someone else's delete
        except FhirConflictError:
            # Still referenced by something not read here: the server keeps it, and so
            # does the report.
            refused.add(ref)
            continue
        if erased:
            erased = _expunge(client, ref, deleted=True)
    items = tuple(
        DeletionItem(i.reference, KEPT, REFERENCED, None, "a resource on the server")
        if i.reference in refused
        else report_item(i, DELETED)
        for i in plan.items
    )
    # What the server would not delete must still lose what the rules strip from kept ones.
    minimize = {
        ref: elements
        for ref in refused
        if (elements := tuple(e for e in _minimized(ref) if by_ref[ref].get(e)))
    }
    if minimize:
        updated += _update_kept(client, {}, minimize)
    # Files go from what stays only as a stub once the Binaries are deleted: a run stopped
    # before this still finds each Binary through the url it strips.
    strip = {ref: paths for ref, paths in plan.strip.items() if ref not in refused}
    if strip:
        updated += _update_kept(client, {}, strip)
    report = DeletionReport(
        patient_id, now, reason, False, items, updated, plan.last_treatment, erased
    )
    patient_stays = patient_ref not in plan.order or patient_ref in refused
    if not report.scheduled and patient_ref in by_ref and patient_stays:
        _set_tag(client, by_ref[patient_ref], tagged=False)
    audit("delete", description=f"deletion ({reason}): {report.summary()}", resources=whose)
    return report


def scheduled_patients(client: FhirClient, *, only: str | None = None) -> list[str]:
    """The ids of the Patients tagged ``RETENTION_TAG`` (just ``only`` when given, if it is
    tagged): the clients ``symfhir retention run`` works on. Read whole before any run
    changes a tag, so paging never skips one."""
    params = {"_tag": f"{RETENTION_SYSTEM}|{RETENTION_TAG['code']}", "_elements": "id"}
    if only:
        params["_id"] = only
    return sorted({str(r["id"]) for r in client.search("Patient", {**params, "_count": "200"})})


def delete_minor_data(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    dry_run: bool = False,
) -> DeletionReport:
    """A guardian's notice that the spa holds a minor's data (policy §9): the same deletion,
    the same retention (a minor who was treated has medical records the law keeps), recorded
    with reason ``guardian-notice``. The guardian's identity and authority are verified by
    whoever takes the notice (the privacy request). Raises PrivacyRequestError when the
    client is not a minor on ``now`` by the birth date on file (an adult asks for themselves;
    an unknown age is settled first)."""
    try:
        patient = client.read("Patient", patient_id)
    except FhirNotFoundError:
        raise PrivacyRequestError("no such client: nothing to delete") from None
    today = now.astimezone(load_spa().zone).date()
    if age_status(patient.get("birthDate"), today) != MINOR:
        raise PrivacyRequestError(
            "a guardian's notice applies to a client under 18 by the birth date on file"
        )
    return delete_client_data(
        client, actor, patient_id, now=now, audit=audit, dry_run=dry_run, reason=GUARDIAN_NOTICE
    )


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Outcome:
    """The handler of ``deletion`` and ``ccpa-delete`` requests: the deletion, its report as
    the Task's ``deletion-report`` output (JSON, no clinical content). Completed when all that
    was asked went, partially completed when retention keeps some. A request marked
    ``inputs["reason"] == "guardian-notice"`` is a guardian's notice for a minor (§9).
    Raises PrivacyRequestError for another kind or an unmatched request."""
    if request.kind not in ("deletion", "ccpa-delete"):
        raise PrivacyRequestError(f"the deletion handler does not answer {request.kind}")
    if not request.patient_id:
        raise PrivacyRequestError("the request is not matched to a client yet")
    if request.inputs.get("reason") == GUARDIAN_NOTICE:
        report = delete_minor_data(client, actor, request.patient_id, now=now, audit=audit)
    else:
        report = delete_client_data(client, actor, request.patient_id, now=now, audit=audit)
    output = TaskOutput(REPORT_LABEL, text=report.to_json())
    status = COMPLETED if report.complete else PARTIALLY_COMPLETED
    # The summary is what the requester reads on the status page: it stands on its own (the
    # report, with resource ids, is for staff).
    return Outcome(status, (output,), report.requester_summary())


def _update_kept(
    client: FhirClient,
    unlink: Mapping[str, tuple[str, ...]],
    remove: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    """Drop the ``unlink`` references and the ``remove`` paths (dotted, lists traversed:
    ``minimize`` and ``strip``) from the current version of each kept resource."""
    policy = load_retention()
    done = []
    for ref in dict.fromkeys([*unlink, *remove]):
        resource_type, resource_id = ref.split("/", 1)
        try:
            current = client.read(resource_type, resource_id)
        except FhirNotFoundError:
            continue
        changed = copy.deepcopy(current)
        drop = set(unlink.get(ref, ()))
        for element in policy.unlink.get(resource_type, ()):
            values = changed.get(element)
            if isinstance(values, list) and drop:
                kept = [v for v in values if ref_key((v or {}).get("reference")) not in drop]
                if kept:  # never leave a required element empty
                    changed[element] = kept
        for path in remove.get(ref, ()):
            _remove_path(changed, path.split("."))
        if changed == current:
            continue
        version = (current.get("meta") or {}).get("versionId")
        client.update(changed, if_match=str(version) if version else None)
        # The earlier versions still hold what was removed: erase them where the server can.
        _expunge(client, ref, deleted=False)
        done.append(ref)
    return tuple(done)


def _remove_path(node: Any, path: list[str]) -> None:
    for item in node if isinstance(node, list) else [node]:
        if not isinstance(item, dict) or path[0] not in item:
            continue
        if len(path) == 1:
            del item[path[0]]
        else:
            _remove_path(item[path[0]], path[1:])


def _minimized(ref: str) -> tuple[str, ...]:
    return load_retention().minimize.get(ref.split("/", 1)[0], ())


def _set_tag(client: FhirClient, patient: dict[str, Any], *, tagged: bool) -> None:
    """Add or remove RETENTION_TAG with $meta-add / $meta-delete: a server keeps a tag across
    updates, and neither operation makes a new version of the Patient."""
    has = any(
        t.get("system") == RETENTION_SYSTEM for t in (patient.get("meta") or {}).get("tag") or []
    )
    if has == tagged:
        return
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "meta", "valueMeta": {"tag": [dict(RETENTION_TAG)]}}],
    }
    name = "meta-add" if tagged else "meta-delete"
    client.instance_operation("Patient", str(patient["id"]), name, parameters)


def _expunge(client: FhirClient, ref: str, *, deleted: bool) -> bool:
    """Erase the stored history of ``ref`` (and, once ``deleted``, the resource itself) with
    HAPI's ``$expunge``: a FHIR delete alone keeps every version readable. False when the
    server has no such operation (the report then says the history is kept)."""
    resource_type, resource_id = ref.split("/", 1)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "expungeDeletedResources", "valueBoolean": deleted},
            {"name": "expungePreviousVersions", "valueBoolean": True},
        ],
    }
    try:
        client.instance_operation(resource_type, resource_id, "expunge", parameters)
    except FhirNotFoundError:
        return True  # nothing of it is stored any more
    except (FhirRequestError, FhirAuthError):
        return False  # no such operation here, or not for this user
    return True

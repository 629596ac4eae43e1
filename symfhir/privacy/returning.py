"""A client who comes back after a deletion (policy §6): their new records are never deleted by
``symfhir retention run``.

A deletion that keeps records until a date tags the Patient ``RETENTION_TAG`` so that the daily
run finishes it. If the client then returns (a new consent, an intake, a treatment), the run
would apply the old deletion to the new record: a new marketing consent "may go now", a new
intake is dated against an old last treatment. So before each client's run,
``check_returning`` compares the client's dated records with their deletion: any record
dated after the latest deletion the audit trail records means the client is back, and the
tag is cleared (nothing is deleted; a new deletion needs a new request).

When the deletion was: the ``recorded`` time of the latest AuditEvent a deletion writes
(``symfhir.privacy.deletion``: subtype delete, "deletion (REASON) started" or its closing
"deletion (REASON): …", success), the retention run's own runs included. Which records are
dated, and by what: the ``years_basis`` paths of mappings/retention.yaml (a Procedure's
performed date, an intake's ``authored``, a Consent's ``dateTime``, a photo's
``createdDateTime``…), the dates the workflows write from their ``now``. A record dated by day
only, on the deletion's own day, counts as after it (whether it came after cannot be told;
keeping a returning client's record is the side to err on). No deletion in the audit trail
(one run by a caller that kept no trail): nothing can be compared, and the run goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.audit import AuditTrail
from symfhir.fhir import FhirClient
from symfhir.privacy.client_resources import read_client_resources
from symfhir.privacy.deletion import RETENTION_SYSTEM, RETENTION_TAG
from symfhir.privacy.disclosures import recorded
from symfhir.privacy.retention import local_day
from symfhir.privacy.retention_rules import RetentionPolicy, load_retention
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

#: The descriptions of the AuditEvents a deletion writes when it starts and when it ends.
DELETION_EVENT = re.compile(
    r"deletion \((?:request|guardian-notice|retention-run)\)(?: started|: )"
)
RESTFUL = "http://hl7.org/fhir/restful-interaction"


@dataclass(frozen=True)
class Returning:
    """Whether a scheduled client came back: when their latest deletion ran (None when the
    audit trail records none), their records dated after it (``Type/id``), and whether the
    schedule was cleared (not in a dry run)."""

    patient_id: str
    deleted_at: datetime | None
    newer: tuple[str, ...]
    cleared: bool

    @property
    def returned(self) -> bool:
        return bool(self.newer)


def check_returning(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    dry_run: bool = False,
) -> Returning:
    """Read the client's record and, when they came back after their deletion (see the
    module docstring), clear their ``RETENTION_TAG`` (unless ``dry_run``) and audit it.

    Raises NotAllowedError when the schedule must be cleared and the actor may not update
    the Patient, FhirServerError when the server fails (nothing is changed then).
    """
    resources = read_client_resources(client, patient_id)
    deleted_at = last_deletion(resources)
    zone = load_spa().zone
    newer = () if deleted_at is None else records_after(resources, deleted_at, zone=zone)
    if not newer or dry_run:
        return Returning(patient_id, deleted_at, newer, cleared=False)
    actor.require([("Patient", "u")])
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is not None and _tagged(patient):
        parameters = {
            "resourceType": "Parameters",
            "parameter": [{"name": "meta", "valueMeta": {"tag": [dict(RETENTION_TAG)]}}],
        }
        client.instance_operation("Patient", patient_id, "meta-delete", parameters)
    audit(
        "update",
        description=f"retention schedule cleared at {now.isoformat(timespec='seconds')}: "
        f"{len(newer)} records dated after the deletion (the client came back)",
        resources=[f"Patient/{patient_id}"],
    )
    return Returning(patient_id, deleted_at, newer, cleared=True)


def last_deletion(resources: Iterable[Mapping[str, Any]]) -> datetime | None:
    """When the latest deletion the AuditEvents among ``resources`` record ran (its
    ``recorded`` instant), None when they record none."""
    times = []
    for event in resources:
        if event.get("resourceType") != "AuditEvent" or event.get("outcome", "0") != "0":
            continue
        if not any(
            (s or {}).get("system") == RESTFUL and (s or {}).get("code") == "delete"
            for s in event.get("subtype") or []
        ):
            continue
        if not DELETION_EVENT.match(str(event.get("outcomeDesc") or "")):
            continue
        when = recorded(event)
        if when is not None:
            times.append(when)
    return max(times) if times else None


def records_after(
    resources: Iterable[Mapping[str, Any]],
    since: datetime,
    *,
    zone: ZoneInfo,
    policy: RetentionPolicy | None = None,
) -> tuple[str, ...]:
    """The ``Type/id`` of each record dated after ``since`` by the ``years_basis`` paths of
    the retention rules (a date without a time on ``since``'s own day counts as after)."""
    policy = policy or load_retention()
    paths: dict[str, list[str]] = {}
    for table in (policy.last_treatment, policy.clinical_dates):
        for resource_type, found in table.items():
            paths.setdefault(resource_type, []).extend(found)
    day = since.astimezone(zone).date()
    newer = []
    for resource in resources:
        resource_type = str(resource.get("resourceType"))
        if resource_type in paths and _dated_after(
            resource, paths[resource_type], since, day, zone
        ):
            newer.append(f"{resource_type}/{resource.get('id')}")
    return tuple(newer)


def _dated_after(
    resource: Mapping[str, Any], paths: Sequence[str], since: datetime, day: date, zone: ZoneInfo
) -> bool:
    for path in paths:
        value = _at(resource, path)
        if not isinstance(value, str):
            continue
        if "T" in value:
            moment = recorded({"recorded": value})
            if moment is not None and moment > since:
                return True
            continue
        # A date (or year, year-month: its last day) cannot say whether it came after.
        when = local_day(value, zone)
        if when is not None and when >= day:
            return True
    return False


def _at(resource: Mapping[str, Any], path: str) -> object:
    node: object = resource
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _tagged(patient: Mapping[str, Any]) -> bool:
    return any(
        t.get("system") == RETENTION_SYSTEM and t.get("code") == RETENTION_TAG["code"]
        for t in (patient.get("meta") or {}).get("tag") or []
    )

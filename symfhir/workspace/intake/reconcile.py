"""The history resources a submission changes on the server (pure).

What the intake lists is compared, by business identifier, with the resources symfhir wrote
before for the client (by the importer or by this form): a fact not yet on the server is
created; one on the server whose form-owned elements differ (an allergy listed again after
being removed, a new dose) is updated; a fact the previous intake listed and this one does not
is ended so the summary no longer shows it as current — MedicationStatement ``stopped``,
AllergyIntolerance and Condition clinical status ``inactive`` / ``resolved`` (client-reported:
the verification status is kept). Prior treatments are history and never change. Updates are
versioned (If-Match on the version read); resources symfhir did not identify, and resources
entered in error, are never touched. The rules per resource type are ``LIFECYCLES``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import read_batch
from symfhir.mapping.context import MappingContext
from symfhir.mapping.history import ALLERGY_CLINICAL, CONDITION_CLINICAL
from symfhir.mapping.refs import Entry, identifier

READ_COUNT = 100  # one page per type: more than two intakes' rows (20 each) could hold


@dataclass(frozen=True)
class Lifecycle:
    """How one history resource type is read, found current and ended.

    ``status``: the element holding the status, a CodeableConcept of ``system`` or (system
    None) a code. ``ended``: the status written when the fact is removed from the intake (None:
    never changed). ``not_current``: statuses the summary does not show as current. ``owned``:
    the elements the intake form keeps in step with its answers."""

    kind: str  # the business identifier kind (``refs.identifier``)
    patient_param: str
    status: str
    system: str | None
    ended: str | None
    not_current: frozenset[str]
    owned: tuple[str, ...]


LIFECYCLES: dict[str, Lifecycle] = {
    "AllergyIntolerance": Lifecycle(
        "allergy",
        "patient",
        "clinicalStatus",
        ALLERGY_CLINICAL,
        "inactive",
        frozenset({"inactive", "resolved"}),
        ("clinicalStatus", "code", "reaction"),
    ),
    "MedicationStatement": Lifecycle(
        "medication-statement",
        "subject",
        "status",
        None,
        "stopped",
        frozenset({"stopped", "completed", "entered-in-error"}),
        ("status", "category", "medicationCodeableConcept", "dosage"),
    ),
    "Condition": Lifecycle(
        "condition",
        "subject",
        "clinicalStatus",
        CONDITION_CLINICAL,
        "resolved",
        frozenset({"inactive", "resolved", "remission"}),
        ("clinicalStatus", "code"),
    ),
    "Procedure": Lifecycle(
        "procedure", "subject", "status", None, None, frozenset({"entered-in-error"}), ()
    ),
}


@dataclass(frozen=True)
class Update:
    """A versioned update (PUT with If-Match) of a resource read from the server."""

    resource: dict[str, Any]
    version: str
    change: str  # what changed, PHI-free (ids and statuses only)

    @property
    def path(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    @property
    def reference(self) -> dict[str, str]:
        return {"reference": self.path}

    def bundle_entry(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "request": {"method": "PUT", "url": self.path, "ifMatch": f'W/"{self.version}"'},
        }


@dataclass(frozen=True)
class Changes:
    creates: list[Entry]
    updates: list[Update]


def history_reads(patient_id: str, types: Iterable[str], ctx: MappingContext) -> dict[str, Any]:
    """A batch reading the Patient (its spa client id keys the identifiers) and, per type, the
    patient's resources carrying symfhir's identifiers of that kind (``system|`` matches any
    value: no health word, and no hash, goes into the URL)."""
    pid = check_id(patient_id)
    urls = [f"Patient/{pid}"]
    for resource_type in sorted(set(types)):
        life = LIFECYCLES[resource_type]
        system = identifier(ctx, life.kind, "")["system"]
        query = urlencode(
            {
                life.patient_param: f"Patient/{pid}",
                "identifier": f"{system}|",
                "_count": str(READ_COUNT),
            }
        )
        urls.append(f"{resource_type}?{query}")
    return read_batch(urls)


def reconcile(
    listed: list[Entry], previous: list[Entry], found: list[dict[str, Any]], patient_id: str
) -> Changes:
    """What to write: ``listed`` (this intake's history entries) against ``found`` (what the
    server holds), ending what ``previous`` (the previous intake's entries) listed and this one
    does not. Resources of other patients in ``found`` are ignored."""
    on_server = _by_identifier(found, patient_id)
    creates: list[Entry] = []
    updates: list[Update] = []
    kept: set[tuple[str, str]] = set()
    for item in listed:
        key = _key(item.resource)
        kept.add(key)
        current = on_server.get(key)
        if current is None:
            creates.append(item)
            continue
        life = LIFECYCLES[item.resource["resourceType"]]
        if not life.owned or _in_error(current) or not _version(current):
            continue
        before = _clean(current)
        after = dict(before)
        for name in life.owned:
            if name in item.resource:
                after[name] = item.resource[name]
            else:
                after.pop(name, None)
        if after != before:
            was = _status(current, life)
            change = "updated from the intake"
            if was in life.not_current:
                change = f"{life.status} {was} → {_status(after, life)}: listed again in the intake"
            updates.append(Update(after, _version(current), f"{_path(current)} {change}"))
    for item in previous:
        key = _key(item.resource)
        current = on_server.get(key)
        if key in kept or current is None:
            continue
        life = LIFECYCLES[item.resource["resourceType"]]
        if life.ended is None or _in_error(current) or not _version(current):
            continue
        if _status(current, life) in life.not_current:
            continue
        kept.add(key)
        ended = _clean(current)
        ended[life.status] = (
            {"coding": [{"system": life.system, "code": life.ended}]} if life.system else life.ended
        )
        change = f"{_path(current)} {life.status} {life.ended}: removed from the intake"
        updates.append(Update(ended, _version(current), change))
    return Changes(creates, updates)


def _by_identifier(found: list[dict[str, Any]], patient_id: str) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in found:
        if resource.get("resourceType") not in LIFECYCLES or not resource.get("id"):
            continue
        if not in_compartment(resource, patient_id):
            continue
        for ident in resource.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
                out.setdefault((resource["resourceType"], _ident_key(ident)), resource)
    return out


def _ident_key(ident: dict[str, Any]) -> str:
    return f"{ident.get('system')}|{ident.get('value')}"


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return (resource["resourceType"], _ident_key(resource["identifier"][0]))


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as it is sent back: no meta (the server sets it), no narrative (stale)."""
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}


def _version(resource: dict[str, Any]) -> str:
    return str((resource.get("meta") or {}).get("versionId") or "")


def _path(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _status(resource: dict[str, Any], life: Lifecycle) -> str:
    value = resource.get(life.status)
    if isinstance(value, dict):
        codings = value.get("coding") or [{}]
        return str(codings[0].get("code", ""))
    return str(value or "")


def _in_error(resource: dict[str, Any]) -> bool:
    verification = resource.get("verificationStatus") or {}
    codes = {str(c.get("code")) for c in verification.get("coding", [])}
    return "entered-in-error" in codes or resource.get("status") == "entered-in-error"

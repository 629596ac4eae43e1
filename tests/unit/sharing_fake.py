"""Synthetic records for the sharing tests: a FakeFhir that also searches (token
parameters such as ``category=system|code`` included) and builders of the resources a
physician share reads."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from symfhir.fhir.reading import codings
from tests.unit.fake_fhir import FakeFhir

PID = "p1"
OTHER = "p2"
DOCTOR = "doc1"
NPI = "1234567893"  # a valid NPI (check digit per the CMS standard)
KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"
SCOPE_SYSTEM = "http://symfhir.org/fhir/CodeSystem/share-scope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: A 1x1 PNG (synthetic): what a stored clinical photo's Binary holds.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class ShareFhir(FakeFhir):
    """FakeFhir with ``search``/``search_all`` and token search parameters."""

    def _search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        category = params.pop("category", None)
        found = super()._search(resource_type, params)
        if category is not None:
            system, _, code = category.partition("|")
            found = [
                r
                for r in found
                if any((system, code) in codings(c) for c in r.get("category") or [])
            ]
        return found

    def search(self, resource_type: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        query = {k: str(v) for k, v in (params or {}).items()}
        yield from self._search(resource_type, query)

    def search_all(self, resource_type: str, params: dict[str, Any] | None = None) -> list[dict]:
        return list(self.search(resource_type, params))


def patient(pid: str = PID, doctor: str | None = DOCTOR) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"given": ["Avery"], "family": "Quillfeather"}],
        "birthDate": "1985-04-12",
    }
    if doctor:
        resource["generalPractitioner"] = [{"reference": f"Practitioner/{doctor}"}]
    return resource


def practitioner(pid: str = DOCTOR) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": NPI}],
        "name": [{"text": "Dr. Dana Ashgrove"}],
        "telecom": [
            {"system": "phone", "value": "(337) 555-0199"},
            {"system": "email", "value": "dana@clinic.example.org"},
        ],
    }


def practitioner_role(doctor: str = DOCTOR) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": "role1",
        "practitioner": {"reference": f"Practitioner/{doctor}"},
        "organization": {"display": "Bayou Family Medicine"},
    }


def consent(
    cid: str,
    kind: str = "physician_sharing",
    *,
    status: str = "active",
    when: str = "2026-03-02T15:00:00Z",
    scopes: Iterable[str] | None = ("summary",),
    start: str | None = None,
    end: str | None = None,
    doctor: str | None = DOCTOR,
    pid: str = PID,
    version: str = "1",
) -> dict[str, Any]:
    """A Consent of ``kind`` as the capture writes it (the parts the gate reads)."""
    provision: dict[str, Any] = {"type": "permit", "period": {"start": when[:10]}}
    if status == "inactive":
        provision["period"]["end"] = "2026-10-01"
    if kind == "physician_sharing":
        actor: dict[str, Any] = {
            "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
            "reference": {"reference": f"Practitioner/{doctor}"}
            if doctor
            else {"display": "the client's physician"},
        }
        provision["actor"] = [actor]
        if scopes is not None:
            provision["code"] = [
                {"coding": [{"system": SCOPE_SYSTEM, "code": code}]} for code in scopes
            ]
        if start or end:
            provision["dataPeriod"] = {
                k: v for k, v in (("start", start), ("end", end)) if v is not None
            }
    return {
        "resourceType": "Consent",
        "id": cid,
        "meta": {"versionId": version},
        "status": status,
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": kind}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": when,
        "provision": provision,
    }


def media(
    mid: str,
    *,
    taken: str | None = "2026-05-01T10:00:00-05:00",
    content_type: str = "image/png",
    pid: str = PID,
    binary: str | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {"contentType": content_type, "title": "before, front"}
    if binary:
        content["url"] = f"Binary/{binary}"
    else:
        content["data"] = base64.b64encode(PNG_BYTES).decode("ascii")
    resource: dict[str, Any] = {
        "resourceType": "Media",
        "id": mid,
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "content": content,
    }
    if taken:
        resource["createdDateTime"] = taken
    return resource


def clinical(resource_type: str, rid: str, *, pid: str = PID, **extra: Any) -> dict[str, Any]:
    """A resource of the client's compartment, owner element set (subject or patient)."""
    owner = "patient" if resource_type in ("AllergyIntolerance", "Consent") else "subject"
    if resource_type == "Task":
        owner = "for"
    resource: dict[str, Any] = {"resourceType": resource_type, "id": rid}
    if resource_type == "AuditEvent":
        resource["entity"] = [{"what": {"reference": f"Patient/{pid}"}}]
    elif resource_type == "Provenance":
        resource["target"] = [{"reference": f"Patient/{pid}"}]
    elif resource_type == "Binary":
        resource["securityContext"] = {"reference": f"Patient/{pid}"}
    else:
        resource[owner] = {"reference": f"Patient/{pid}"}
    resource.update(extra)
    return resource

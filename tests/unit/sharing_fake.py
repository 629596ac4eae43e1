"""Synthetic records for the sharing tests: a FakeFhir that also searches (token
parameters such as ``category=system|code`` included) and builders of the resources a
physician share reads."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from symfhir.errors import FhirNotFoundError
from symfhir.fhir.compartment import (
    compartment_search_params,
    load_compartment,
    owner_field,
    owner_ids,
    patient_id_of,
)
from symfhir.fhir.reading import codings
from tests.unit.fake_fhir import FakeFhir, _searchset

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
    """FakeFhir with ``search``/``search_all``/``everything``, token search parameters, and
    ``leaks``: resources a careless server adds to every search answer whatever was asked
    (another client's, say), to prove the reader drops them."""

    leaks: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def _search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        category = params.pop("category", None)
        bound = [n for n in params if n in compartment_search_params(resource_type)]
        found = super()._search(resource_type, {k: v for k, v in params.items() if k not in bound})
        for name in bound:
            pid = patient_id_of(params[name])
            found = [r for r in found if pid in owner_ids(r)]
        if category is not None:
            system, _, code = category.partition("|")
            found = [
                r
                for r in found
                if any((system, code) in codings(c) for c in r.get("category") or [])
            ]
        return found + [r for r in self.leaks if r.get("resourceType") == resource_type]

    def batch(self, bundle: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        entries = bundle.get("entry", [])
        plain = {
            **bundle,
            "entry": [e for e in entries if "$everything" not in e["request"]["url"]],
        }
        answer = iter(super().batch(plain)["entry"])
        out = []
        for entry in entries:
            url = entry["request"]["url"]
            if "$everything" in url:
                path, _, query = url.partition("?")
                found = self._everything(path.split("/")[1], dict(parse_qsl(query)))
                out.append({"resource": _searchset(found), "response": {"status": "200 OK"}})
            else:
                out.append(next(answer))
        return {"resourceType": "Bundle", "type": "batch-response", "entry": out}

    def _everything(self, pid: str, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = set(params["_type"].split(",")) if params.get("_type") else None
        found = [
            r
            for r in [*self.resources, *self.leaks]
            if (wanted is None or r.get("resourceType") in wanted)
            and (r.get("resourceType") not in load_compartment() or _mentions(r, pid))
        ]
        return found

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        self.requests += 1
        return super().read(resource_type, resource_id)

    def download_binary(self, binary_id: str, dest: Any, max_bytes: int | None = None) -> tuple:
        """As ``FhirClient.download_binary``: (content type, size, SHA-1 hex)."""
        self.requests += 1
        data = self.binaries.get(binary_id)
        if data is None:
            raise FhirNotFoundError("read Binary", "not found", status=404)
        dest.write(data)
        return "image/png", len(data), hashlib.sha1(data, usedforsecurity=False).hexdigest()

    def everything(self, patient_id: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        self.requests += 1
        yield from self._everything(patient_id, {k: str(v) for k, v in (params or {}).items()})

    def search(self, resource_type: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        self.requests += 1
        query = {k: str(v) for k, v in (params or {}).items()}
        yield from self._search(resource_type, query)

    def search_all(self, resource_type: str, params: dict[str, Any] | None = None) -> list[dict]:
        return list(self.search(resource_type, params))


def _mentions(resource: dict[str, Any], pid: str) -> bool:
    return f'Patient/{pid}"' in json.dumps(resource) or resource.get("id") == pid


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
    owner = owner_field(resource_type) or "subject"
    resource: dict[str, Any] = {"resourceType": resource_type, "id": rid}
    if resource_type == "AuditEvent":
        resource["entity"] = [{"what": {"reference": f"Patient/{pid}"}}]
    elif resource_type == "Provenance":
        resource["target"] = [{"reference": f"Patient/{pid}"}]
    else:
        resource[owner] = {"reference": f"Patient/{pid}"}
    resource.update(extra)
    return resource

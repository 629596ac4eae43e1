"""An in-memory FHIR server for the privacy-request workflows: versioned Tasks (conditional
create on the identifier, If-Match updates), Patient searches by e-mail, phone, birth date and
family name, and every AuditEvent written."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from symfhir.errors import FhirConflictError, FhirNotFoundError
from symfhir.fhir import Written


@dataclass
class FakeServer:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    searches: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    next_id: int = 1

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(resource)
        stored.setdefault("id", f"f{self.next_id}")
        self.next_id += 1
        stored["meta"] = {"versionId": "1"}
        self.resources[(stored["resourceType"], stored["id"])] = stored
        return copy.deepcopy(stored)

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for (t, _), r in self.resources.items() if t == resource_type]

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.resources[(resource_type, resource_id)])
        except KeyError:
            raise FhirNotFoundError(f"read {resource_type}", "not found", status=404) from None

    def create(self, resource: dict[str, Any], if_none_exist: str | None = None) -> Written:
        if if_none_exist:
            system_value = if_none_exist.removeprefix("identifier=")
            for existing in self.of_type(resource["resourceType"]):
                ids = {f"{i['system']}|{i['value']}" for i in existing.get("identifier", [])}
                if system_value in ids:
                    return Written(
                        existing["resourceType"], existing["id"], "1", "unchanged", None, existing
                    )
        stored = self.add(resource)
        return Written(stored["resourceType"], stored["id"], "1", "created", None, stored)

    def update(self, resource: dict[str, Any], if_match: str | None = None) -> Written:
        key = (resource["resourceType"], resource["id"])
        current = self.resources[key]
        version = current["meta"]["versionId"]
        if if_match is not None and if_match.strip('W/"') != version:
            raise FhirConflictError(f"update {key[0]}/{key[1]}", "version conflict", status=412)
        stored = copy.deepcopy(resource)
        stored["meta"] = {"versionId": str(int(version) + 1)}
        self.resources[key] = stored
        return Written(
            key[0], key[1], stored["meta"]["versionId"], "updated", None, copy.deepcopy(stored)
        )

    def search(self, resource_type: str, params: Any = None) -> Iterator[dict[str, Any]]:
        pairs = list(params or [])
        self.searches.append((resource_type, pairs))
        for resource in self.of_type(resource_type):
            if all(_matches(resource, name, value) for name, value in pairs):
                yield resource


def _matches(resource: dict[str, Any], name: str, value: str) -> bool:
    if name.startswith("_"):
        return True
    if name == "code":
        system = value.split("|", 1)[0]
        return any(c.get("system") == system for c in resource.get("code", {}).get("coding", []))
    if name == "status":
        return resource.get("status") in value.split(",")
    if name == "patient":
        return (resource.get("for") or {}).get("reference") == value
    if name in ("email", "phone"):
        return any(
            t.get("system") == name and t.get("value", "").lower() == value.lower()
            for t in resource.get("telecom", [])
        )
    if name == "identifier":  # system|value, as a portal finds a request by its reference
        return any(
            f"{i.get('system')}|{i.get('value')}" == value for i in resource.get("identifier", [])
        )
    if name == "birthdate":
        return resource.get("birthDate") == value
    if name == "family":
        return any(n.get("family", "").lower() == value.lower() for n in resource.get("name", []))
    raise AssertionError(f"the fake does not search by {name}")

"""An in-memory stand-in for ``symfhir.fhir.FhirClient``, for workflow tests: reads, batches of
reads and compartment searches over a list of resources, transactions recorded and answered
201 (or with a given error), and an audit trail that records what it is told."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from symfhir.audit import DisclosureTo
from symfhir.errors import FhirNotFoundError, FhirServerError
from symfhir.fhir.capabilities import Capabilities
from symfhir.fhir.compartment import compartment_search_params, load_compartment, patient_id_of

BASE = "https://ehr.example.org/fhir"


@dataclass
class FakeFhir:
    resources: list[dict[str, Any]] = field(default_factory=list)
    binaries: dict[str, bytes] = field(default_factory=dict)
    base_url: str = BASE
    transactions: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    fail_transaction: FhirServerError | None = None
    failing_types: set[str] = field(default_factory=set)
    #: statuses to answer a transaction's entries with, in order (default 201 Created)
    entry_statuses: list[str] = field(default_factory=list)
    #: types the CapabilityStatement says cannot be created (a server without Media, say)
    cannot_create: set[str] = field(default_factory=set)

    def capabilities(self) -> Capabilities:
        types = {t for t in load_compartment() if t not in self.cannot_create}
        every = frozenset({"create", "read", "update", "search-type"})
        return Capabilities("4.0.1", {t: every for t in types | {"Practitioner", "Organization"}})

    def _search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        found = [r for r in self.resources if r.get("resourceType") == resource_type]
        for name, value in params.items():
            if name.startswith("_"):
                continue
            if name in compartment_search_params(resource_type) or name in ("subject", "patient"):
                found = [r for r in found if _names_patient(r, patient_id_of(value) or value)]
            else:
                found = [r for r in found if _has_value(r, name, value)]
        return found

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        for resource in self.resources:
            if resource.get("resourceType") == resource_type and resource.get("id") == resource_id:
                return resource
        raise FhirNotFoundError(f"read {resource_type}", "not found", status=404)

    def search_bundles(
        self, resource_type: str, params: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        matches = self._search(resource_type, dict(params or {}))
        yield _searchset(matches)

    def batch(self, bundle: dict[str, Any]) -> dict[str, Any]:
        self.batches.append(bundle)
        entries = []
        for entry in bundle.get("entry", []):
            url = entry["request"]["url"]
            path, _, query = url.partition("?")
            resource_type = path.split("/")[0]
            if resource_type in self.failing_types:
                entries.append({"response": {"status": "403 Forbidden"}})
            elif "/" in path:
                try:
                    resource = self.read(*path.split("/", 1))
                    entries.append({"resource": resource, "response": {"status": "200 OK"}})
                except FhirNotFoundError:
                    entries.append({"response": {"status": "404 Not Found"}})
            else:
                matches = self._search(resource_type, dict(parse_qsl(query)))
                entries.append({"resource": _searchset(matches), "response": {"status": "200"}})
        return {"resourceType": "Bundle", "type": "batch-response", "entry": entries}

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if self.fail_transaction is not None:
            raise self.fail_transaction
        self.transactions.append(bundle)
        statuses = iter(self.entry_statuses)
        entries = []
        for index, entry in enumerate(bundle.get("entry", [])):
            resource = entry.get("resource") or {}
            status = next(statuses, "201 Created")
            location = f"{resource.get('resourceType', 'X')}/n{index}/_history/1"
            entries.append({"response": {"status": status, "location": location}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}

    def create(self, resource: dict[str, Any], if_none_exist: str | None = None) -> Any:
        self.resources.append(resource)
        return resource

    def download_binary(self, binary_id: str, out: io.BytesIO, max_bytes: int) -> None:
        data = self.binaries.get(binary_id)
        if data is None:
            raise FhirNotFoundError("read Binary", "not found", status=404)
        out.write(data[:max_bytes])

    def written(self, resource_type: str) -> list[dict[str, Any]]:
        """The resources of ``resource_type`` the transactions carried."""
        return [
            e["resource"]
            for bundle in self.transactions
            for e in bundle.get("entry", [])
            if (e.get("resource") or {}).get("resourceType") == resource_type
        ]


@dataclass
class Trail:
    """An AuditTrail that keeps (subtype, success, description, resources), and each call's
    disclosure (None for an ordinary access) in ``disclosures``."""

    events: list[tuple[str, bool, str | None, tuple[str, ...]]] = field(default_factory=list)
    disclosures: list[DisclosureTo | None] = field(default_factory=list)

    def __call__(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        self.events.append((subtype, success, description, tuple(resources)))
        self.disclosures.append(disclosure)

    @property
    def subtypes(self) -> list[str]:
        return [e[0] for e in self.events]


def _names_patient(resource: dict[str, Any], patient_id: str) -> bool:
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    for name in ("subject", "patient"):
        if patient_id_of((resource.get(name) or {}).get("reference")) == patient_id:
            return True
    return False


def _has_value(resource: dict[str, Any], name: str, value: str) -> bool:
    own = resource.get(name)
    return own is None or str(own) == value or value in str(own)


def _searchset(matches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
    }

"""Every resource of one client that a deletion must weigh, read from the FHIR server.

Per-type searches bound to the patient (the search parameters of
``mappings/patient-compartment.yaml``), then what those cannot find: the Binaries an
Attachment's ``url`` names (a photo's bytes, a signed form's file) and the Provenances that
target the client's photos and consents without naming the Patient (a photo upload's). Only
resources of the client's compartment are kept (``symfhir.fhir.compartment.in_compartment``):
a search answer naming another client is dropped, never weighed, never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from symfhir.errors import FhirNotFoundError, FhirRequestError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import compartment_search_params, in_compartment, load_compartment
from symfhir.privacy.deletion_order import ref_key, references_of

PAGE_SIZE = 200
#: Ids per search of ``_id`` or ``target`` (keeps the query well under a URL's length limit).
CHUNK = 50
#: Types whose Provenance may name them without naming the Patient (photo uploads).
PROVENANCE_TARGETS = ("Media", "Binary", "Consent", "DocumentReference")
#: A Binary is read without its bytes: whose it is and its type are all a plan needs.
BINARY_ELEMENTS = "contentType,securityContext"


def read_client_resources(client: FhirClient, patient_id: str) -> list[dict[str, Any]]:
    """The client's Patient and every resource of theirs (see the module docstring); empty
    when the Patient no longer exists. Raises FhirServerError when the server fails."""
    try:
        patient = client.read("Patient", patient_id)
    except FhirNotFoundError:
        return []
    found: dict[str, dict[str, Any]] = {f"Patient/{patient_id}": patient}
    for resource_type in load_compartment():
        if resource_type in ("Patient", "Binary"):
            continue
        for resource in _search_type(client, resource_type, patient_id):
            found[f"{resource_type}/{resource.get('id')}"] = resource

    binaries = [b for r in found.values() for b in references_of(r)[2]]
    for ids in _chunks(sorted({b.split("/", 1)[1] for b in binaries})):
        params = {"_id": ",".join(ids), "_elements": BINARY_ELEMENTS, "_count": str(CHUNK)}
        for binary in client.search("Binary", params):
            if binary.get("resourceType") == "Binary" and in_compartment(binary, patient_id):
                found[f"Binary/{binary.get('id')}"] = binary

    targets = sorted(k for k in found if k.split("/", 1)[0] in PROVENANCE_TARGETS)
    for refs in _chunks(targets):
        for provenance in client.search("Provenance", {"target": ",".join(refs)}):
            if provenance.get("resourceType") == "Provenance":
                found.setdefault(f"Provenance/{provenance.get('id')}", provenance)
    mine = set(found)
    # Only a Provenance of this client's resources alone: one that also names another
    # client's (or anything not read here) is theirs too, and is left alone.
    return [r for r in found.values() if _provenance_of(r, mine)]


def _provenance_of(resource: dict[str, Any], mine: set[str]) -> bool:
    if resource.get("resourceType") != "Provenance":
        return True
    named = [ref_key(t.get("reference")) for t in resource.get("target") or []]
    return bool(named) and all(n in mine for n in named)


def _search_type(client: FhirClient, resource_type: str, patient_id: str) -> Iterator[dict]:
    params = compartment_search_params(resource_type)
    if not params:
        return
    name = "patient" if "patient" in params else params[0]
    value = patient_id if name in ("patient", "_id") else f"Patient/{patient_id}"
    try:
        results = list(client.search(resource_type, {name: value, "_count": str(PAGE_SIZE)}))
    except (FhirRequestError, FhirNotFoundError):
        # A type this server does not know holds nothing of the client's.
        return
    for resource in results:
        if resource.get("resourceType") == resource_type and in_compartment(resource, patient_id):
            yield resource


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch

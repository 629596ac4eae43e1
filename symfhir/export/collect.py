"""Reading one client's compartment into a Spool: ``Patient/{id}/$everything`` with paging
where the server declares it, else one search per type of ``mappings/patient-compartment.yaml``.

Only resources whose owner element names this client (``in_compartment``) are kept, plus the
Practitioners, PractitionerRoles and Organizations they reference (people and places of the
practice, nobody's record), read when the server lets us. Whatever else a server answers
(another client's resources, a RelatedPerson of another client) is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from symfhir.errors import FhirServerError, NotAllowedError
from symfhir.export.spool import Spool
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import compartment_search_params, in_compartment, load_compartment
from symfhir.workspace.actor import Actor

log = logging.getLogger(__name__)

#: Types a client's resources reference that belong to no client and may go with the export.
REFERENCED_TYPES = ("Practitioner", "PractitionerRole", "Organization")
PAGE_SIZE = 200


@dataclass(frozen=True)
class Collected:
    """How the compartment was read: ``method`` (``$everything`` or ``per-type searches``),
    the types the acting user may not read (left out), and how many resources the server
    answered that were not this client's (dropped)."""

    method: str
    not_read: tuple[str, ...]
    dropped: int


def collect(client: FhirClient, actor: Actor, patient_id: str, spool: Spool) -> Collected:
    """Stage the client's compartment and the practice resources it references in ``spool``.

    Types the actor may not search are left out and named in the result (``not_read``).
    Raises NotAllowedError when the actor may not read the Patient, FhirNotFoundError when
    there is no such Patient, FhirServerError when the server fails a read.
    """
    if not actor.may("Patient", "r"):
        raise NotAllowedError((("Patient", "r"),))
    spool.add(client.read("Patient", patient_id))
    candidates: dict[str, dict[str, Any]] = {}
    referenced: set[str] = set()
    dropped = 0
    not_read: list[str] = []
    if client.capabilities().has_operation("everything", "Patient") and actor.may("Patient", "s"):
        method = "$everything"
        found: Iterator[dict] = client.everything(patient_id, {"_count": PAGE_SIZE})
    else:
        method = "per-type searches"
        found, not_read = _per_type(client, actor, patient_id)
    for resource in found:
        resource_type = resource.get("resourceType")
        if resource_type in REFERENCED_TYPES and isinstance(resource.get("id"), str):
            # Kept aside: it goes in only if a resource of this client references it.
            candidates[f"{resource_type}/{resource['id']}"] = resource
        elif resource_type in load_compartment() and in_compartment(resource, patient_id):
            if spool.add(resource):
                referenced |= practice_references(resource)
        else:
            dropped += 1
    for key in sorted(referenced):
        if spool.has(key):
            continue
        resource = candidates.get(key) or _read_referenced(client, actor, key)
        if resource is not None:
            spool.add(resource)
    return Collected(method, tuple(not_read), dropped)


def _per_type(
    client: FhirClient, actor: Actor, patient_id: str
) -> tuple[Iterator[dict], list[str]]:
    searches: list[tuple[str, str]] = []
    not_read: list[str] = []
    for resource_type in load_compartment():
        params = compartment_search_params(resource_type)
        if resource_type == "Patient" or not params:
            continue  # the Patient is read itself; a Binary is found through what names it
        if not actor.may(resource_type, "s"):
            not_read.append(resource_type)
            continue
        # ``patient`` (or the type's one binding parameter) with the typed reference.
        searches.append((resource_type, params[0]))

    def found() -> Iterator[dict]:
        caps = client.capabilities()
        for resource_type, param in searches:
            if not caps.can(resource_type, "search-type"):
                continue
            query = {param: f"Patient/{patient_id}", "_count": PAGE_SIZE}
            yield from client.search(resource_type, query)

    return found(), not_read


def practice_references(node: Any) -> set[str]:
    """The ``Practitioner/…``, ``PractitionerRole/…`` and ``Organization/…`` relative
    references anywhere in a resource."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            reference = item.get("reference")
            if isinstance(reference, str):
                parts = reference.split("/")
                if len(parts) == 2 and parts[0] in REFERENCED_TYPES and parts[1]:
                    found.add(reference)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return found


def _read_referenced(client: FhirClient, actor: Actor, key: str) -> dict | None:
    resource_type, resource_id = key.split("/")
    if not actor.may(resource_type, "r"):
        return None
    try:
        return client.read(resource_type, resource_id)
    except FhirServerError as exc:
        # "When readable": a practice resource that is gone or refused is left out.
        log.info("export: %s not included: %s", resource_type, exc.log_text)
        return None

"""Statements of disagreement (HIPAA 164.526(d)(4)): a client's statement, kept as a
DocumentReference whose ``context.related`` names the disputed records, is shown wherever
those records are (the summary's "disputed by the client" marker). Here: how one is found on
the server and which records it disputes (pure). ``symfhir.privacy.correction_review``
writes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from symfhir.fhir.paths import check_id

#: DocumentReference.type of a statement: no LOINC or v3 code names one, so a project code.
DOCUMENT_SYSTEM = "http://symfhir.org/fhir/CodeSystem/amendment-document"
DISAGREEMENT_CODE = "statement-of-disagreement"
PAGE_SIZE = 200


def disagreement_search(patient_id: str) -> str:
    """The batch search for the client's statements of disagreement."""
    pid = check_id(patient_id)
    kind = quote(f"{DOCUMENT_SYSTEM}|{DISAGREEMENT_CODE}", safe="")
    return f"DocumentReference?subject=Patient/{pid}&type={kind}&_count={PAGE_SIZE}"


def is_disagreement(resource: dict[str, Any]) -> bool:
    if resource.get("resourceType") != "DocumentReference":
        return False
    return any(
        c.get("system") == DOCUMENT_SYSTEM and c.get("code") == DISAGREEMENT_CODE
        for c in (resource.get("type") or {}).get("coding") or []
    )


def disputed_references(resources: Iterable[dict[str, Any]]) -> frozenset[str]:
    """The records (``Type/id``, versions dropped) the current statements among ``resources``
    dispute; the requests (Tasks) they also name are not records."""
    found = set()
    for resource in resources:
        if not is_disagreement(resource) or resource.get("status") != "current":
            continue
        for related in (resource.get("context") or {}).get("related") or []:
            reference = str((related or {}).get("reference") or "")
            reference = reference.split("/_history/", 1)[0]
            if reference.count("/") == 1 and not reference.startswith("Task/"):
                found.add(reference)
    return frozenset(found)

"""Consents and photos kept as DocumentReferences, read and written like the import does.

A server that cannot create Consent or Media (its CapabilityStatement says so) gets each as a
DocumentReference tagged in ``FALLBACK_SYSTEM`` (``symfhir.mapping.fallback``). The workflows
search those too, in the same batch as the resources themselves, and read them back as the
Consent or Media they stand in for, so the record looks the same whichever way it was stored;
and they adapt what they write by the server's capabilities, as the import does.

A restored resource keeps the DocumentReference's id and version and carries ``FALLBACK_MARK``
in ``meta.tag``: whoever would update it (a withdrawal) knows it is a DocumentReference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from symfhir.errors import FhirValidationError
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.mapping.fallback import (
    CONSENT_TAG,
    FALLBACK_SYSTEM,
    MEDIA_TAG,
    adapt_bundle,
    consent_from_document_reference,
    media_from_document_reference,
)

log = logging.getLogger(__name__)

LABEL = "DocumentReference"
PAGE_SIZE = 200
FALLBACK_MARK = {
    "system": FALLBACK_SYSTEM,
    "code": "restored",
    "display": "Read back from a DocumentReference",
}


def fallback_search(patient_id: str, codes: Iterable[str] = ("consent", "media")) -> str:
    """The batch search for the patient's DocumentReferences standing in for the ``codes``
    (``consent``, ``media``) of ``FALLBACK_SYSTEM``."""
    pid = check_id(patient_id)
    tags = ",".join(quote(f"{FALLBACK_SYSTEM}|{code}", safe="") for code in codes)
    return f"DocumentReference?subject=Patient/{pid}&_tag={tags}&_count={PAGE_SIZE}"


def is_fallback(resource: dict[str, Any]) -> bool:
    """True for a resource read back from a DocumentReference."""
    return FALLBACK_MARK in ((resource.get("meta") or {}).get("tag") or [])


def restore(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``resources`` with each fallback DocumentReference replaced by the Consent or Media it
    stands in for (an unreadable one is left out, with a PHI-free warning); every other
    resource as it is."""
    out = []
    for resource in resources:
        tags = (resource.get("meta") or {}).get("tag") or []
        if resource.get("resourceType") != "DocumentReference":
            out.append(resource)
        elif MEDIA_TAG in tags or CONSENT_TAG in tags:
            restored = _restored(resource, MEDIA_TAG in tags)
            if restored is not None:
                out.append(restored)
        else:
            out.append(resource)
    return out


def _restored(doc: dict[str, Any], media: bool) -> dict[str, Any] | None:
    try:
        resource = (
            media_from_document_reference(doc) if media else consent_from_document_reference(doc)
        )
    except (FhirValidationError, KeyError, IndexError, TypeError, ValueError) as exc:
        log.warning("a fallback DocumentReference could not be read back: %s", type(exc).__name__)
        return None
    # The server resolved the subject; inside the embedded JSON it may be a logical reference.
    owner = "subject" if media else "patient"
    if doc.get("subject"):
        resource[owner] = doc["subject"]
    resource["id"] = doc.get("id")
    meta = dict(resource.get("meta") or {})
    meta.update(
        {k: v for k, v in (doc.get("meta") or {}).items() if k in ("versionId", "lastUpdated")}
    )
    meta["tag"] = [
        *(t for t in meta.get("tag") or [] if t not in (MEDIA_TAG, CONSENT_TAG)),
        FALLBACK_MARK,
    ]
    resource["meta"] = meta
    return resource


def read_fallback(
    client: FhirClient, resource_type: str, resource_id: str
) -> dict[str, Any] | None:
    """The ``resource_type`` (Media or Consent) the DocumentReference ``resource_id`` stands in
    for; None when it is not such a fallback. Raises FhirServerError as ``client.read``."""
    doc = client.read("DocumentReference", resource_id)
    tag = MEDIA_TAG if resource_type == "Media" else CONSENT_TAG
    if tag not in ((doc.get("meta") or {}).get("tag") or []):
        return None
    return _restored(doc, resource_type == "Media")


def adapt_for_server(
    client: FhirClient, bundle: dict[str, Any], purpose: str
) -> tuple[dict[str, Any], dict[str, int]]:
    """``bundle`` with the Media and Consent entries the server cannot create made
    DocumentReferences, by its CapabilityStatement (as the import does); and how many fell
    back, by type. Raises FhirCapabilityError when the server can create neither."""
    caps = client.capabilities()
    return adapt_bundle(bundle, lambda t: caps.can(t, "create"), purpose, purpose)

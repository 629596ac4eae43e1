"""Reading FHIR R4 JSON for display and checks: the one answer to "what does this concept
say", "which codes does it carry", "which resource does this reference name", "what is this
person called", and "what did this batch read".

Resources come from a server and are not trusted to be well formed: every function takes
whatever JSON it is given and answers "" / None / empty rather than raising. Whose record a
resource is lives in ``symfhir.fhir.compartment``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Coding = tuple[str, str]


def _codings_of(concept: object) -> list[Mapping[str, Any]]:
    raw = concept.get("coding") if isinstance(concept, Mapping) else None
    return [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []


def concept_texts(concept: object) -> list[str]:
    """Every text a CodeableConcept shows: its ``text``, then each coding's ``display``."""
    if not isinstance(concept, Mapping):
        return []
    texts = [str(concept["text"])] if concept.get("text") else []
    return texts + [str(c["display"]) for c in _codings_of(concept) if c.get("display")]


def concept_text(concept: object) -> str:
    """What a CodeableConcept says to a reader: its ``text``, else the first coding display,
    else the first code; "" when it carries none of them."""
    texts = concept_texts(concept)
    if texts:
        return texts[0]
    return next((str(c["code"]) for c in _codings_of(concept) if c.get("code")), "")


def codings(concept: object) -> set[Coding]:
    """The (system, code) pairs of a CodeableConcept (a missing system reads "None")."""
    return {(str(c.get("system")), str(c.get("code"))) for c in _codings_of(concept)}


def status_code(resource: Mapping[str, Any], element: str) -> str:
    """The code of a status-like CodeableConcept element (``clinicalStatus``): its first
    coding's code, "" when absent."""
    found = _codings_of(resource.get(element))
    return str(found[0].get("code") or "") if found else ""


def reference_id(reference: object, resource_type: str) -> str | None:
    """The id a reference (a Reference or its string) names for ``resource_type``:
    ``Procedure/7``, ``Procedure/7/_history/2`` and an absolute ``…/Procedure/7`` name ``7``;
    None for any other type, a relative path of more segments, or no reference."""
    if isinstance(reference, Mapping):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference:
        return None
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or parts[-2] != resource_type or not parts[-1]:
        return None
    if len(parts) > 2 and "://" not in reference:
        return None
    return parts[-1]


def human_name(names: object, prefer: str = "official") -> str:
    """How a person (Patient, RelatedPerson, Practitioner ``name``) is called: the first name of
    use ``prefer`` that says anything, else the first that does; its ``text``, else given
    names and family joined. "" when no name says anything."""
    usable = [n for n in names if isinstance(n, Mapping)] if isinstance(names, list) else []
    ordered = [n for n in usable if n.get("use") == prefer] + usable
    for name in ordered:
        given = name.get("given")
        parts = [str(g) for g in given if g] if isinstance(given, list) else []
        text = name.get("text") or " ".join([*parts, str(name.get("family") or "")])
        if str(text).strip():
            return " ".join(str(text).split())
    return ""


def read_batch(urls: Sequence[str]) -> dict[str, Any]:
    """A batch Bundle of GETs, one entry per URL (relative to the server's base), in order."""
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


@dataclass(frozen=True)
class BatchResult:
    """What a batch of reads and searches found."""

    resources: list[dict[str, Any]]
    failed: list[str]  # the labels of the entries that could not be read
    truncated: bool  # a search had more results than its one page


def batch_resources(answer: Mapping[str, Any], labels: Sequence[str]) -> BatchResult:
    """The resources of a batch-response: a read's resource, a search's matches (not its
    OperationOutcome); the labels (``labels[i]`` names entry i) of failed entries; whether a
    search had a next page."""
    found: list[dict[str, Any]] = []
    failed: list[str] = []
    truncated = False
    entries = answer.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        entry = entry if isinstance(entry, Mapping) else {}
        resource = entry.get("resource")
        status = str((entry.get("response") or {}).get("status", ""))
        if not isinstance(resource, dict) or not status.startswith("2"):
            failed.append(labels[index] if index < len(labels) else f"entry {index + 1}")
            continue
        if resource.get("resourceType") != "Bundle":
            found.append(resource)
            continue
        for inner in resource.get("entry") or []:
            item = inner.get("resource") if isinstance(inner, Mapping) else None
            mode = (inner.get("search") or {}).get("mode") if isinstance(inner, Mapping) else None
            if isinstance(item, dict) and mode != "outcome":
                found.append(item)
        links = resource.get("link") or []
        truncated |= any(isinstance(k, Mapping) and k.get("relation") == "next" for k in links)
    return BatchResult(found, failed, truncated)

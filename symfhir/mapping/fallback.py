"""Media and Consent → DocumentReference, for servers that cannot create them.

Follows hl7.org/fhir/R4/documentreference.html (R5 itself folds Media into DocumentReference).
The server's CapabilityStatement is read elsewhere: ``adapt_bundle`` takes a
``can_create(resource_type)`` callable. Each DocumentReference keeps the business identifier,
subject and content of the resource it stands in for, so conditional creates stay idempotent
and references by ``fullUrl`` still resolve. What R4 DocumentReference has no element for rides
in the project extensions ``media-details`` / ``consent-details`` (sub-extensions named after
the R4 element they carry); a Consent also travels whole, as FHIR JSON in an attachment. Every
fallback carries a ``meta.tag`` in ``FALLBACK_SYSTEM`` (``media`` / ``consent``) so it can be
found and converted back. The mapping, element by element: mappings/README.md.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from symfhir.errors import FhirCapabilityError, FhirValidationError
from symfhir.mapping.refs import TAG_SYSTEM as SOURCE_KEY_SYSTEM
from symfhir.validation.references import typed_reference_problems

FALLBACK_SYSTEM = "http://symfhir.org/fhir/CodeSystem/fallback"
MEDIA_TAG = {"system": FALLBACK_SYSTEM, "code": "media", "display": "Stands in for a Media"}
CONSENT_TAG = {"system": FALLBACK_SYSTEM, "code": "consent", "display": "Stands in for a Consent"}
MEDIA_DETAILS = "http://symfhir.org/fhir/StructureDefinition/media-details"
CONSENT_DETAILS = "http://symfhir.org/fhir/StructureDefinition/consent-details"
LOINC = "http://loinc.org"
PATIENT_CONSENT = {"system": LOINC, "code": "59284-0", "display": "Patient Consent"}
# R4 http.html#version: the mime type parameter naming the FHIR version of the JSON.
FHIR_JSON = "application/fhir+json; fhirVersion=4.0"
FALLBACK_TYPES = ("Media", "Consent")

# Media element → (DocumentReference path, wrap the single value in a list).
_MEDIA_MOVES = {
    "identifier": ("identifier", False),
    "type": ("type", False),
    "subject": ("subject", False),
    "operator": ("author", True),
    "encounter": ("context.encounter", True),
    "createdPeriod": ("context.period", False),
    "partOf": ("context.related", False),
}
# Media elements with no DocumentReference element → media-details sub-extensions named after
# the element, typed as R4 types it; a repeating element gives one sub-extension per item.
_MEDIA_DETAILS = {
    "basedOn": "valueReference",
    "status": "valueCode",
    "modality": "valueCodeableConcept",
    "view": "valueCodeableConcept",
    "createdDateTime": "valueDateTime",  # only when not an instant (else DocumentReference.date)
    "issued": "valueInstant",
    "reasonCode": "valueCodeableConcept",
    "bodySite": "valueCodeableConcept",
    "deviceName": "valueString",
    "device": "valueReference",
    "height": "valuePositiveInt",
    "width": "valuePositiveInt",
    "frames": "valuePositiveInt",
    "duration": "valueDecimal",
    "note": "valueAnnotation",
}
_MEDIA_REPEATS = frozenset({"basedOn", "reasonCode", "note"})
# Consent elements copied into consent-details as they are (policy, provision.type and a
# dateTime that is not an instant are added by code).
_CONSENT_COPIES = (
    ("status", "valueCode"),
    ("scope", "valueCodeableConcept"),
    ("policyRule", "valueCodeableConcept"),
)
_COMMON = ("language", "text", "contained", "extension")  # copied as they are
_MEDIA_ELEMENTS = frozenset(
    {"resourceType", "id", "meta", "content", *_COMMON, *_MEDIA_MOVES, *_MEDIA_DETAILS}
)
# They change the meaning of what they sit in: never carried unmarked.
_REFUSED = ("implicitRules", "modifierExtension")
_DOC_STATUS = {
    "completed": "final",  # Media
    "preparation": "preliminary",
    "in-progress": "preliminary",
    "active": "final",  # Consent: a refusal or a withdrawal is a final record too
    "rejected": "final",
    "inactive": "final",
    "draft": "preliminary",
    "proposed": "preliminary",
    "entered-in-error": "entered-in-error",
}
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def media_to_document_reference(media: dict[str, Any]) -> dict[str, Any]:
    """The R4 DocumentReference carrying the same content as ``media``. Pure.

    Raises FhirValidationError when ``media`` has no content, or an element no
    DocumentReference can carry (``implicitRules``, ``modifierExtension``, or one R4 Media
    does not define).
    """
    media = copy.deepcopy(media)
    problems = _refused(media, "Media")
    problems += [
        (f"Media.{k}", "not an R4 Media element") for k in media if k not in _MEDIA_ELEMENTS
    ]
    if not isinstance(media.get("content"), dict):
        problems.append(("Media.content", "required: the attachment to carry"))
    if problems:
        raise FhirValidationError(problems)
    details = []
    for name, value_key in _MEDIA_DETAILS.items():
        value = media.get(name)
        if value is None or (name == "createdDateTime" and _is_instant(value)):
            continue
        details += [
            {"url": name, value_key: v} for v in (value if name in _MEDIA_REPEATS else [value])
        ]
    doc = _start(media, MEDIA_TAG, MEDIA_DETAILS, details)
    for name, (path, wrap) in _MEDIA_MOVES.items():
        if media.get(name):
            _put(doc, path, [media[name]] if wrap else media[name])
    if _is_instant(media.get("createdDateTime")):
        doc["date"] = media["createdDateTime"]
    if media["content"].get("title"):
        doc["description"] = media["content"]["title"]
    doc["content"] = [{"attachment": media["content"]}]
    return _ordered(doc)


def media_from_document_reference(doc: dict[str, Any]) -> dict[str, Any]:
    """The Media a ``media_to_document_reference`` DocumentReference stands in for. Pure."""
    doc = copy.deepcopy(doc)
    media: dict[str, Any] = {"resourceType": "Media"}
    meta = {k: v for k, v in doc.get("meta", {}).items() if k != "tag"}
    tags = [t for t in doc.get("meta", {}).get("tag", []) if t != MEDIA_TAG]
    if meta or tags:
        media["meta"] = {**meta, **({"tag": tags} if tags else {})}
    media.update({k: doc[k] for k in ("language", "text", "contained") if k in doc})
    extensions = [e for e in doc.get("extension", []) if e.get("url") != MEDIA_DETAILS]
    if extensions:
        media["extension"] = extensions
    for extension in doc.get("extension", []):
        for item in extension.get("extension", []) if extension.get("url") == MEDIA_DETAILS else []:
            name, value = item["url"], item[_MEDIA_DETAILS[item["url"]]]
            if name in _MEDIA_REPEATS:
                media.setdefault(name, []).append(value)
            else:
                media[name] = value
    for name, (path, wrap) in _MEDIA_MOVES.items():
        value = _get(doc, path)
        if value:
            media[name] = value[0] if wrap else value
    if "date" in doc:
        media["createdDateTime"] = doc["date"]
    media["content"] = doc["content"][0]["attachment"]
    return media


def consent_to_document_reference(
    consent: dict[str, Any], logical: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The R4 DocumentReference carrying ``consent``: its decision in searchable elements and
    ``consent-details``, the signed form (``sourceAttachment``) first, then the whole Consent
    as FHIR JSON. Pure.

    ``logical`` maps Bundle full URLs to logical references (``type`` + ``identifier``): a
    server resolves ``urn:uuid`` references in elements, never inside an attachment, so the
    embedded JSON names its targets by business identifier instead.
    Raises FhirValidationError for ``implicitRules`` or ``modifierExtension``.
    """
    consent = copy.deepcopy(consent)
    problems = _refused(consent, "Consent")
    if problems:
        raise FhirValidationError(problems)
    provision = consent.get("provision") or {}
    when = consent.get("dateTime")
    details = [{"url": n, v: consent[n]} for n, v in _CONSENT_COPIES if n in consent]
    details += [
        {"url": "policy", "valueUri": p["uri"]} for p in consent.get("policy", []) if "uri" in p
    ]
    if "type" in provision:
        details.append({"url": "provisionType", "valueCode": provision["type"]})
    if when is not None and not _is_instant(when):
        details.append({"url": "dateTime", "valueDateTime": when})
    doc = _start(consent, CONSENT_TAG, CONSENT_DETAILS, details)
    categories = consent.get("category") or []
    loinc = [c for cat in categories for c in cat.get("coding", []) if c.get("system") == LOINC]
    doc["type"] = {"coding": [loinc[0] if loinc else PATIENT_CONSENT]}
    moves = (("category", "category"), ("patient", "subject"), ("performer", "author"))
    doc.update({target: consent[name] for name, target in moves if consent.get(name)})
    if _is_instant(when):
        doc["date"] = when
    if consent.get("organization"):
        doc["custodian"] = consent["organization"][0]  # 0..1 here; the JSON keeps them all
    if "period" in provision:
        _put(doc, "context.period", provision["period"])
    if "sourceReference" in consent:
        _put(doc, "context.related", [consent["sourceReference"]])
    form = consent.pop("sourceAttachment", None)  # stored once: as itself, not in the JSON
    doc["content"] = [{"attachment": form}] if form is not None else []
    doc["content"].append({"attachment": _json_attachment(_logical(consent, logical or {}))})
    return _ordered(doc)


def consent_from_document_reference(doc: dict[str, Any]) -> dict[str, Any]:
    """The Consent a ``consent_to_document_reference`` DocumentReference carries. Pure.

    Raises FhirValidationError when ``doc`` holds no embedded Consent JSON.
    """
    attachments = [c.get("attachment", {}) for c in doc.get("content", [])]
    embedded = [
        a for a in attachments if a.get("contentType", "").startswith("application/fhir+json")
    ]
    if len(embedded) != 1 or "data" not in embedded[0]:
        raise FhirValidationError([("DocumentReference.content", "no embedded Consent JSON")])
    consent = json.loads(base64.b64decode(embedded[0]["data"]))
    forms = [a for a in attachments if a is not embedded[0]]
    if forms:
        consent["sourceAttachment"] = copy.deepcopy(forms[0])
    return consent


def adapt_bundle(
    bundle: dict[str, Any],
    can_create: Callable[[str], bool],
    operation: str = "import",
    purpose: str = "import clients",
) -> tuple[dict[str, Any], dict[str, int]]:
    """``bundle`` with each Media / Consent entry the server cannot create as a DocumentReference.

    Returns the Bundle and how many entries fell back, by type (only types that did: ``{}``
    when none). A Bundle needing no change is returned as is; otherwise a new Bundle whose
    unchanged entries are the input's own (treat both as read-only). Full URLs stay, so
    references to a replaced entry resolve to its DocumentReference. ``can_create`` is asked
    once per resource type. Pure: no I/O, the input is never mutated.

    Raises FhirCapabilityError(``operation``, "server cannot create A, B (needed to
    ``purpose``)") naming every type that cannot be created and has no usable fallback
    (DocumentReference too when a fallback needs it), or naming every element whose R4 target
    types do not admit the DocumentReference standing in for a Media / Consent.
    """
    entries: list[dict[str, Any]] = bundle.get("entry") or []
    answers: dict[str, bool] = {}

    def can(resource_type: str) -> bool:
        if resource_type not in answers:
            answers[resource_type] = bool(can_create(resource_type))
        return answers[resource_type]

    present = [t for t in dict.fromkeys(map(_type_of, entries)) if t is not None]
    falling = [t for t in present if t in FALLBACK_TYPES and not can(t)]
    missing = {t for t in present if t not in FALLBACK_TYPES and not can(t)}
    if falling and not can("DocumentReference"):
        missing |= {*falling, "DocumentReference"}
    if missing:
        reason = f"server cannot create {', '.join(sorted(missing))} (needed to {purpose})"
        if falling and "DocumentReference" in missing:
            reason += f"; {' and '.join(falling)} would fall back to DocumentReference"
        raise FhirCapabilityError(operation, reason)
    if not falling:
        return bundle, {}
    logical = _logical_references(entries)
    counts: dict[str, int] = {}
    replaced: set[Any] = set()
    out = []
    for item in entries:
        kind = _type_of(item)
        if kind in falling:
            item = _fallback_entry(item, kind, logical)
            counts[kind] = counts.get(kind, 0) + 1
            replaced.add(item.get("fullUrl"))
        elif kind == "Provenance":
            item = _fallback_provenance(item)
        out.append(item)
    problems = typed_reference_problems(out, replaced)
    if problems:
        raise FhirCapabilityError(
            operation,
            f"server cannot create {' and '.join(falling)}, and R4 admits no DocumentReference "
            f"in their place at {', '.join(problems)} (needed to {purpose})",
        )
    return {**bundle, "entry": out}, counts


# -- helpers ------------------------------------------------------------------------------


def _fallback_provenance(item: dict[str, Any]) -> dict[str, Any]:
    """The Provenance of a write with fallbacks, keyed apart from the one without.

    Provenance is created once per source key; a server that later gains (or loses) Media
    or Consent gets the other representation, and its Provenance must be its own rather
    than the earlier one, whose targets are the other resources.
    """
    resource = copy.deepcopy(item["resource"])
    tags = (resource.get("meta") or {}).get("tag") or []
    for tag in tags:
        if tag.get("system") == SOURCE_KEY_SYSTEM:
            tag["code"] = f"{tag['code']}-fallback"
    request = dict(item["request"])
    criteria = request.get("ifNoneExist", "")
    if criteria.startswith(f"_tag={SOURCE_KEY_SYSTEM}|"):
        request["ifNoneExist"] = f"{criteria}-fallback"
    return {**item, "resource": resource, "request": request}


def _type_of(item: Any) -> str | None:
    resource = item.get("resource") if isinstance(item, dict) else None
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    return kind if isinstance(kind, str) else None


def _is_instant(value: Any) -> bool:
    return isinstance(value, str) and _INSTANT.fullmatch(value) is not None


def _refused(resource: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    return [
        (f"{kind}.{k}", "a DocumentReference cannot carry it") for k in _REFUSED if k in resource
    ]


def _start(
    source: dict[str, Any], tag: dict[str, str], details_url: str, details: list[dict[str, Any]]
) -> dict[str, Any]:
    """The DocumentReference elements every fallback shares: meta, narrative, extensions,
    identifier and status."""
    doc: dict[str, Any] = {"resourceType": "DocumentReference"}
    # The server keeps versionId and lastUpdated; a Media or Consent profile does not apply.
    meta = {k: v for k, v in source.get("meta", {}).items() if k in ("source", "security", "tag")}
    doc["meta"] = {**meta, "tag": [*meta.get("tag", []), dict(tag)]}
    doc.update({k: source[k] for k in _COMMON if k in source})
    if details:
        doc["extension"] = [*doc.get("extension", []), {"url": details_url, "extension": details}]
    if "identifier" in source:
        doc["identifier"] = source["identifier"]
    status = source.get("status")
    doc["status"] = "entered-in-error" if status == "entered-in-error" else "current"
    if status in _DOC_STATUS:
        doc["docStatus"] = _DOC_STATUS[status]
    return doc


_ORDER = (
    "resourceType", "meta", "language", "text", "contained", "extension", "identifier", "status",
    "docStatus", "type", "category", "subject", "date", "author", "custodian", "description",
    "content", "context",
)  # fmt: skip


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its elements in the order R4 defines them (easier to read)."""
    return {**{k: doc[k] for k in _ORDER if k in doc}, **doc}


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _json_attachment(resource: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return {
        "contentType": FHIR_JSON,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        # R4 defines Attachment.hash as the SHA-1 of the data: an integrity check, not security.
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),  # noqa: S324
        "title": f"{resource.get('resourceType', 'Resource')} as FHIR R4 JSON",
    }


def _logical(value: Any, logical: Mapping[str, dict[str, Any]]) -> Any:
    """``value`` with every reference to a key of ``logical`` made a logical reference."""
    if isinstance(value, list):
        return [_logical(v, logical) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _logical(v, logical) for k, v in value.items()}
    ref = out.get("reference")
    target = logical.get(ref) if isinstance(ref, str) else None
    if target is not None and "identifier" not in out:
        del out["reference"]
        out = {**copy.deepcopy(target), **out}
    return out


def _logical_references(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Full URL → ``{type, identifier}`` for each entry whose resource has an identifier."""
    out: dict[str, dict[str, Any]] = {}
    for item in entries:
        resource = item.get("resource") or {}
        identifiers = resource.get("identifier")
        first = identifiers[0] if isinstance(identifiers, list) and identifiers else identifiers
        if isinstance(first, dict) and "system" in first and "value" in first:
            out[item.get("fullUrl")] = {
                "type": resource["resourceType"],
                "identifier": {"system": first["system"], "value": first["value"]},
            }
    return out


def _fallback_entry(
    item: dict[str, Any], kind: str, logical: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    resource = item["resource"]
    if kind == "Media":
        doc = media_to_document_reference(resource)
    else:
        doc = consent_to_document_reference(resource, logical)
    request = dict(item.get("request") or {})
    url = request.get("url")
    # "Media", or a conditional "Media?identifier=…": the same query, on DocumentReference.
    if isinstance(url, str) and (url == kind or url.startswith(f"{kind}?")):
        request["url"] = "DocumentReference" + url[len(kind) :]
    return {**item, "resource": doc, "request": request}

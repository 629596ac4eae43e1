"""The patient summary for physicians: an International Patient Summary-style document Bundle
built from one client's resources (pure but for a random document id when none is given).

https://hl7.org/fhir/R4/documents.html and hl7.org/fhir/uv/ips: ``type=document``, an
``identifier`` and a ``timestamp``; the first entry a Composition (LOINC 60591-5) whose
sections (``mappings/patient-summary.yaml``) reference the resources they list. The document
stands alone: every resource it references is one of its entries (``urn:uuid`` full URLs,
references rewritten); a reference to anything not embedded keeps only its display. Server ids,
``meta`` and the resources' own narratives are not copied: the Composition's narrative, built
here and escaped, is the text a reader sees.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirValidationError, SharingError
from symfhir.fhir.compartment import in_compartment, owner_field
from symfhir.sharing.summary_embed import embed, embedded, references
from symfhir.sharing.summary_narrative import Block, Paragraph, Table, narrative_xhtml
from symfhir.sharing.summary_sections import (
    HEADERS,
    SectionSpec,
    SummarySpec,
    allergy_row,
    condition_row,
    is_spa_treatment,
    kept,
    load_summary_spec,
    medication_row,
    part_of,
    patient_line,
    procedure_row,
    result_row,
    treatment_row,
)
from symfhir.spa import Spa, load_spa
from symfhir.validation import FastValidator
from symfhir.workspace.consents.status import consent_overview
from symfhir.workspace.contraindications import contraindications

# Fixed: the same document id and input give the same full URLs (reproducible documents).
_NAMESPACE = uuid.UUID("0c5e6a1e-5b0f-5d2b-9a0e-6c1d4f3b2a17")
_SPA_KEY = "Organization/spa"
_VALIDATOR = FastValidator()

Resource = dict[str, Any]


@dataclass
class _Section:
    spec: SectionSpec
    entries: list[str] = field(default_factory=list)  # "Type/id" keys of the resources
    blocks: list[Block] = field(default_factory=list)


def patient_summary(
    resources: Sequence[Mapping[str, Any]],
    *,
    patient_id: str,
    now: datetime,
    author: str,
    document_id: str | None = None,
    period: tuple[date | None, date | None] | None = None,
) -> dict[str, Any]:
    """The summary document of ``patient_id`` from ``resources`` (the Patient and what the share
    lets leave; anything of another client is ignored), dated ``now`` (time-zone aware; time
    windows of the contraindication rules count back from the spa's calendar day). ``author``
    names who prepared it (shown with the spa, which is the Composition's author and custodian);
    ``document_id`` (a UUID) fixes the document's identifier, else a random one is drawn.
    ``period`` (first day, last day; either open) is the date range the share was limited to:
    the Composition's ``event.period`` (the span of care the summary covers, IPS style, its end
    the document's day when open) and a line of the narrative say so.

    Raises SharingError (``now`` without a time zone, ``document_id`` not a UUID, no Patient
    ``patient_id`` among ``resources``), FhirValidationError when the document breaks FHIR R4
    (e.g. a malformed input resource) or names something it does not contain, ConfigError
    when the bundled summary, consent or contraindication data are unusable.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise SharingError("now: a time zone is required")
    doc = _document_uuid(document_id)
    spec, spa = load_summary_spec(), load_spa()
    pool = _pool(resources, patient_id)
    patient = pool.get(f"Patient/{patient_id}")
    if patient is None:
        raise SharingError("resources: the client's Patient resource is missing")
    own = [r for r in pool.values() if in_compartment(r, patient_id)]
    sections = _sections(spec, own, patient_id, now, spa.zone)
    start = [f"Patient/{patient_id}", *(k for s in sections for k in s.entries)]
    keys = embedded(pool, start, spec.not_embedded)
    urls = {key: _full_url(doc, key) for key in [_SPA_KEY, *keys]}
    if period is not None and period[0] and period[1] and period[0] > period[1]:
        raise SharingError("period: the first day is after the last")
    composition = _composition(
        spec, spa, sections, patient, urls, now, author, patient_id, period or (None, None)
    )
    composition_url = _full_url(doc, "Composition/summary")
    composition["id"] = composition_url.removeprefix("urn:uuid:")
    entries = [{"fullUrl": composition_url, "resource": composition}]
    entries.append({"fullUrl": urls[_SPA_KEY], "resource": _organization(spa, urls[_SPA_KEY])})
    known = frozenset(urls.values())
    for key in keys:
        resource = embed(pool[key], urls, known, key, spec.strip)
        entries.append({"fullUrl": urls[key], "resource": resource})
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc}"},
        "type": "document",
        "timestamp": now.isoformat(),
        "entry": entries,
    }
    check_document(bundle)
    return bundle


def check_document(bundle: dict[str, Any]) -> None:
    """Raise FhirValidationError when ``bundle`` breaks FHIR R4 (R4B models, as FHIR JSON) or
    holds a reference that no entry's full URL resolves (a contained ``#id`` resolves)."""
    problems = [(p.path, p.message) for p in _VALIDATOR.validate_fhir_json(bundle)]
    if not problems:
        entries = bundle.get("entry") or []
        first = entries[0].get("resource") if entries else None
        if not isinstance(first, Mapping) or first.get("resourceType") != "Composition":
            problems.append(("Bundle.entry[0]", "a document starts with its Composition"))
        known = {e.get("fullUrl") for e in entries if isinstance(e, Mapping)}
        for path, reference in references(bundle, "Bundle"):
            if not reference.startswith("#") and reference not in known:
                problems.append((path, "reference not resolvable inside the document"))
    if problems:
        raise FhirValidationError(problems)


# --- what the document holds -------------------------------------------------------------


def _document_uuid(document_id: str | None) -> str:
    if document_id is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(document_id)))
    except ValueError:
        raise SharingError("document_id: not a UUID") from None


def _full_url(doc: str, key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{doc}|{key}')}"


def _pool(resources: Sequence[Mapping[str, Any]], patient_id: str) -> dict[str, Resource]:
    """Usable resources by "Type/id": the client's own, and those in no one's compartment
    (practitioners, organizations) that a listed resource may name."""
    pool: dict[str, Resource] = {}
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        kind, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str) or not isinstance(rid, str) or not rid:
            continue
        if owner_field(kind) is None or in_compartment(resource, patient_id):
            pool.setdefault(f"{kind}/{rid}", resource)
    return pool


# --- sections -----------------------------------------------------------------------------


def _key(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _by_date(rows: list[tuple[str, tuple[str, ...]]], column: int) -> list:
    return sorted(rows, key=lambda item: item[1][column], reverse=True)


def _by_name(rows: list[tuple[str, tuple[str, ...]]]) -> list:
    return sorted(rows, key=lambda item: item[1][0].casefold())


def _sections(
    spec: SummarySpec, own: list[Resource], patient_id: str, now: datetime, zone: tzinfo
) -> list[_Section]:
    by_type: dict[str, list[Resource]] = {}
    for resource in own:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    specs = {s.key: s for s in spec.sections}

    def of(section: SectionSpec) -> list[Resource]:
        return [r for r in by_type.get(section.resource or "", []) if kept(r, section)]

    treatments: list[Resource] = []
    if "treatments" in specs:
        treatments = [
            p
            for p in of(specs["treatments"])
            if is_spa_treatment(p, patient_id, spec.treatment_system)
        ]
    treatment_ids = {str(p.get("id")) for p in treatments}
    observations = of(specs["results"]) if "results" in specs else []
    with_treatment: dict[str, list[Resource]] = {}
    for obs in observations:
        for pid in part_of(obs):
            if pid in treatment_ids:
                with_treatment.setdefault(pid, []).append(obs)

    out = []
    for section in spec.sections:
        rows: list[tuple[str, tuple[str, ...]]]  # (entry key or "", row)
        if section.key == "allergies":
            rows = _by_name([(_key(r), allergy_row(r)) for r in of(section)])
        elif section.key == "medications":
            rows = _by_name([(_key(r), medication_row(r)) for r in of(section)])
        elif section.key == "problems":
            rows = _by_name([(_key(r), condition_row(r)) for r in of(section)])
        elif section.key == "procedures":
            rows = _by_date([(_key(r), procedure_row(r, patient_id)) for r in of(section)], 1)
        elif section.key == "results":
            rows = _by_date(
                [
                    (_key(o), result_row(o))
                    for o in observations
                    if not set(part_of(o)) & treatment_ids
                ],
                2,
            )
        elif section.key == "treatments":
            rows = []
            for p in treatments:
                found = with_treatment.get(str(p.get("id")), [])
                rows.append((_key(p), treatment_row(p, found)))
                rows.extend((_key(o), ()) for o in found)  # entries, no row of their own
            rows = _by_date([r for r in rows if r[1]], 1) + [r for r in rows if not r[1]]
        elif section.key == "contraindications":
            today = now.astimezone(zone).date()
            rows = [("", (w.label, w.source, w.risk)) for w in contraindications(own, today)]
        elif section.key == "consents":
            rows = _consent_rows(by_type.get("Consent", []), section.kinds, zone)
        else:
            raise SharingError(f"patient summary section {section.key}: not one symfhir builds")
        table = [row for _, row in rows if row]
        blocks: list[Block] = [Paragraph(section.empty_text)]
        if table:
            blocks = [Table(HEADERS[section.key], tuple(table))]
        out.append(_Section(section, [k for k, _ in rows if k], blocks))
    return out


def _consent_rows(
    consents: list[Resource], kinds: tuple[str, ...], zone: tzinfo
) -> list[tuple[str, tuple[str, ...]]]:
    """One row per consent kind of ``kinds`` the client was asked about: its current answer
    (the consents workspace's rule), the entry being that Consent."""
    rows = []
    for kind in consent_overview(consents, load_consent_kinds(), zone):
        current = kind.current
        if current is None or kind.key not in kinds:
            continue
        rows.append(
            (
                f"Consent/{current.id}",
                (kind.label, current.status, current.date, current.policy_version),
            )
        )
    return rows


# --- the Composition ----------------------------------------------------------------------


def _organization(spa: Spa, full_url: str) -> Resource:
    return {
        "resourceType": "Organization",
        "id": full_url.removeprefix("urn:uuid:"),
        "identifier": [{"system": spa.identifier_system, "value": spa.identifier_value}],
        "name": spa.name,
    }


def _composition(
    spec: SummarySpec,
    spa: Spa,
    sections: list[_Section],
    patient: Mapping[str, Any],
    urls: Mapping[str, str],
    now: datetime,
    author: str,
    patient_id: str,
    period: tuple[date | None, date | None],
) -> Resource:
    local = now.astimezone(spa.zone)
    author = " ".join(author.split())
    if author.casefold() == spa.name.casefold():
        author = ""  # the spa is the author already
    prepared = f"Prepared by {spa.name} on {local.date().isoformat()}" + (
        f" ({author})" if author else ""
    )
    intro: list[Block] = [
        Paragraph(f"{spec.title}: {patient_line(patient)}"),
        Paragraph(prepared),
    ]
    first, last = period
    if first or last:
        span = f"from {first.isoformat()}" if first else ""
        span += f"{' ' if span else ''}until {last.isoformat()}" if last else ""
        intro.append(Paragraph(f"Records dated {span} only, as the client agreed to share."))
    covered: dict[str, str] = {"end": (last or local.date()).isoformat()}
    if first:
        covered = {"start": first.isoformat(), **covered}
    authors: list[dict[str, str]] = [{"reference": urls[_SPA_KEY], "display": spa.name}]
    if author:
        authors.append({"display": author})
    return {
        "resourceType": "Composition",
        "text": {"status": "generated", "div": narrative_xhtml(intro)},
        "status": "final",
        "type": {"coding": [dict(spec.document_type)], "text": spec.document_type["display"]},
        "subject": {"reference": urls[f"Patient/{patient_id}"]},
        "date": now.isoformat(),
        "author": authors,
        "title": spec.title,
        "confidentiality": spec.confidentiality,
        "custodian": {"reference": urls[_SPA_KEY], "display": spa.name},
        "event": [{"code": [{"coding": [dict(spec.event_code)]}], "period": covered}],
        "section": [_section(spec, s, urls) for s in sections],
    }


def _section(spec: SummarySpec, section: _Section, urls: Mapping[str, str]) -> Resource:
    out: Resource = {
        "title": section.spec.title,
        "code": {"coding": [dict(section.spec.code)]},
        "text": {"status": "generated", "div": narrative_xhtml(section.blocks)},
    }
    entries = [{"reference": urls[k]} for k in dict.fromkeys(section.entries) if k in urls]
    if entries:
        out["entry"] = entries
    elif section.spec.empty_reason:
        code = section.spec.empty_reason
        out["emptyReason"] = {
            "coding": [
                {
                    "system": spec.empty_reason_system,
                    "code": code,
                    "display": spec.empty_reasons[code],
                }
            ]
        }
    return out

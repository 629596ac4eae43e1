"""The sections of the patient summary (``mappings/patient-summary.yaml``) and what each lists:
which resources, and the row a reader sees for each (pure).

Rows say what the record says (the concept's text, its status, dates as recorded); they
never add a clinical judgment of their own. ``symfhir.fhir.reading`` answers "what does this
concept say" and "what is this person called".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.fhir.reading import concept_text, human_name, reference_id, status_code
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

SPEC_FILE = "patient-summary.yaml"
PRODUCT_EXTENSION = "http://symfhir.org/fhir/StructureDefinition/treatment-product"

Resource = Mapping[str, Any]


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    code: Mapping[str, str]
    resource: str | None
    empty_reason: str | None
    empty_text: str
    skip: Mapping[str, frozenset[str]]
    kinds: tuple[str, ...] = ()  # consents: the consent kinds shown


@dataclass(frozen=True)
class SummarySpec:
    document_type: Mapping[str, str]
    event_code: Mapping[str, str]
    title: str
    confidentiality: str
    treatment_system: str
    empty_reason_system: str
    empty_reasons: Mapping[str, str]  # code -> display
    not_embedded: frozenset[str]
    strip: Mapping[str, tuple[tuple[str, ...], ...]]  # type -> dotted paths, split
    sections: tuple[SectionSpec, ...]


def _coding(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(value.get(k), str) and value.get(k) for k in ("system", "code", "display")
    ):
        raise ConfigError(f"{SPEC_FILE}: {where} needs a system, code and display")
    return {k: str(value[k]) for k in ("system", "code", "display")}


def parse_spec(data: Mapping[str, Any]) -> SummarySpec:
    """The spec of the YAML document. Raises ConfigError naming the entry at fault."""
    document = data.get("document")
    sections = data.get("sections")
    reasons = data.get("empty_reasons")
    if not isinstance(document, Mapping) or not isinstance(sections, Mapping) or not sections:
        raise ConfigError(f"{SPEC_FILE}: 'document' and 'sections' are required")
    if not isinstance(reasons, Mapping):
        raise ConfigError(f"{SPEC_FILE}: 'empty_reasons' must map codes to displays")
    specs = []
    for key, raw in sections.items():
        if not isinstance(raw, Mapping) or not isinstance(raw.get("title"), str):
            raise ConfigError(f"{SPEC_FILE}: section {key} needs a title")
        reason = raw.get("empty_reason")
        if reason is not None and reason not in reasons:
            raise ConfigError(f"{SPEC_FILE}: section {key}: unknown empty_reason {reason!r}")
        skip = raw.get("skip") or {}
        if not isinstance(skip, Mapping) or not all(isinstance(v, list) for v in skip.values()):
            raise ConfigError(f"{SPEC_FILE}: section {key}: 'skip' maps elements to lists")
        kinds = raw.get("kinds") or []
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ConfigError(f"{SPEC_FILE}: section {key}: 'kinds' must be a list of names")
        specs.append(
            SectionSpec(
                key=str(key),
                title=str(raw["title"]),
                code=_coding(raw.get("code"), f"section {key} code"),
                resource=str(raw["resource"]) if raw.get("resource") else None,
                empty_reason=str(reason) if reason else None,
                empty_text=str(raw.get("empty_text") or ""),
                skip={str(k): frozenset(map(str, v)) for k, v in skip.items()},
                kinds=tuple(kinds),
            )
        )
    return SummarySpec(
        document_type=_coding(document.get("type"), "document type"),
        event_code=_coding(document.get("event"), "document event"),
        title=str(document.get("title") or "Patient summary"),
        confidentiality=str(document.get("confidentiality") or "N"),
        treatment_system=str(document.get("treatment_system") or ""),
        empty_reason_system=str(data.get("empty_reason_system") or ""),
        empty_reasons={str(k): str(v) for k, v in reasons.items()},
        not_embedded=frozenset(map(str, data.get("not_embedded") or [])),
        strip=_strip(data.get("strip") or {}),
        sections=tuple(specs),
    )


def _strip(raw: object) -> dict[str, tuple[tuple[str, ...], ...]]:
    if not isinstance(raw, Mapping) or not all(isinstance(v, list) for v in raw.values()):
        raise ConfigError(f"{SPEC_FILE}: 'strip' maps resource types to lists of paths")
    return {str(k): tuple(tuple(str(p).split(".")) for p in v) for k, v in raw.items()}


@lru_cache(maxsize=4)
def load_summary_spec(path: Path | None = None) -> SummarySpec:
    """Load ``mappings/patient-summary.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / SPEC_FILE
    return parse_spec(read_mapping_file(path, "patient summary"))


# --- which resources a section lists ----------------------------------------------------


def kept(resource: Resource, section: SectionSpec) -> bool:
    """False when a status element of the resource is one the section skips."""
    for element, codes in section.skip.items():
        value = resource.get(element)
        code = status_code(resource, element) if isinstance(value, Mapping) else value
        if isinstance(code, str) and code in codes:
            return False
    return True


def is_spa_treatment(procedure: Resource, patient_id: str, treatment_system: str) -> bool:
    """A treatment the spa performed: coded in the spa's treatment CodeSystem and not a
    procedure the client reported (``asserter`` the client)."""
    if reference_id(procedure.get("asserter"), "Patient") == patient_id:
        return False
    coding = (procedure.get("code") or {}).get("coding") if isinstance(procedure, Mapping) else []
    return any(
        isinstance(c, Mapping) and c.get("system") == treatment_system
        for c in (coding if isinstance(coding, list) else [])
    )


def part_of(observation: Resource) -> list[str]:
    """The Procedure ids an Observation is part of."""
    found = observation.get("partOf")
    refs = found if isinstance(found, list) else []
    ids = [reference_id(r, "Procedure") for r in refs]
    return [i for i in ids if i]


# --- rows ---------------------------------------------------------------------------------


def day(value: object) -> str:
    """The date part of a FHIR date or dateTime ("" for anything else)."""
    return str(value)[:10] if isinstance(value, str) else ""


def _period(value: object) -> str:
    if not isinstance(value, Mapping):
        return ""
    start, end = day(value.get("start")), day(value.get("end"))
    return f"{start} to {end}" if start and end else (f"since {start}" if start else end)


def _when(resource: Resource, prefix: str) -> str:
    for suffix in ("DateTime", "Date", "Instant", "String"):
        value = resource.get(prefix + suffix)
        if isinstance(value, str):
            return day(value) if suffix != "String" else value
    return _period(resource.get(prefix + "Period"))


def _texts(concepts: object) -> str:
    items = concepts if isinstance(concepts, list) else []
    return ", ".join(t for t in (concept_text(c) for c in items) if t)


def _notes(resource: Resource) -> str:
    notes = resource.get("note")
    items = notes if isinstance(notes, list) else []
    return " ".join(str(n["text"]) for n in items if isinstance(n, Mapping) and n.get("text"))


def _display(reference: object) -> str:
    if not isinstance(reference, Mapping):
        return ""
    return str(reference.get("display") or "")


def quantity_text(quantity: object) -> str:
    if not isinstance(quantity, Mapping) or quantity.get("value") is None:
        return ""
    value = quantity["value"]
    number = f"{value:g}" if isinstance(value, float) else str(value)
    unit = quantity.get("unit") or quantity.get("code") or ""
    return f"{quantity.get('comparator', '')}{number} {unit}".strip()


def value_text(observation: Resource) -> str:
    """What an Observation's value (or its absence) says."""
    for key, value in observation.items():
        if not key.startswith("value"):
            continue
        if key == "valueCodeableConcept":
            return concept_text(value)
        if key == "valueQuantity":
            return quantity_text(value)
        if key == "valueBoolean":
            return "yes" if value else "no"
        if key == "valuePeriod":
            return _period(value)
        if isinstance(value, str | int | float):
            return str(value)
    if isinstance(observation.get("component"), list):
        parts = [
            f"{concept_text(c.get('code'))}: {value_text(c)}"
            for c in observation["component"]
            if isinstance(c, Mapping)
        ]
        return "; ".join(parts)
    absent = concept_text(observation.get("dataAbsentReason"))
    return f"({absent})" if absent else ""


def allergy_row(allergy: Resource) -> tuple[str, ...]:
    reactions = [
        concept_text(m)
        for r in allergy.get("reaction") or []
        if isinstance(r, Mapping)
        for m in r.get("manifestation") or []
    ]
    return (
        concept_text(allergy.get("code")) or "Unnamed substance",
        status_code(allergy, "clinicalStatus") or "active",
        str(allergy.get("criticality") or ""),
        ", ".join(r for r in reactions if r),
        day(allergy.get("recordedDate")) or _when(allergy, "onset"),
    )


def medication_row(statement: Resource) -> tuple[str, ...]:
    dosage = statement.get("dosage")
    first = dosage[0] if isinstance(dosage, list) and dosage else {}
    what = concept_text(statement.get("medicationCodeableConcept")) or _display(
        statement.get("medicationReference")
    )
    return (
        what or "Unnamed medication",
        concept_text(statement.get("category")),
        str(statement.get("status") or ""),
        str(first.get("text") or "") if isinstance(first, Mapping) else "",
        _when(statement, "effective") or day(statement.get("dateAsserted")),
    )


def condition_row(condition: Resource) -> tuple[str, ...]:
    return (
        concept_text(condition.get("code")) or "Unnamed condition",
        status_code(condition, "clinicalStatus") or "active",
        _when(condition, "onset") or day(condition.get("recordedDate")),
        _notes(condition),
    )


def _performers(procedure: Resource) -> str:
    performers = procedure.get("performer")
    names = [
        _display(p.get("actor"))
        for p in (performers if isinstance(performers, list) else [])
        if isinstance(p, Mapping)
    ]
    return ", ".join(n for n in names if n)


def procedure_row(procedure: Resource, patient_id: str) -> tuple[str, ...]:
    by = _performers(procedure)
    if reference_id(procedure.get("asserter"), "Patient") == patient_id:
        by = "reported by the client" + (f" ({by})" if by else "")
    location = _display(procedure.get("location"))
    return (
        concept_text(procedure.get("code")) or "Unnamed procedure",
        _when(procedure, "performed"),
        _texts(procedure.get("bodySite")),
        ", ".join(p for p in (by, location) if p),
    )


def _product(procedure: Resource) -> str:
    parts: dict[str, str] = {}
    for ext in procedure.get("extension") or []:
        if not isinstance(ext, Mapping) or ext.get("url") != PRODUCT_EXTENSION:
            continue
        for part in ext.get("extension") or []:
            if not isinstance(part, Mapping):
                continue
            value = part.get("valueString") or quantity_text(part.get("valueQuantity"))
            if value:
                parts[str(part.get("url"))] = str(value)
    if not parts:
        return _texts(procedure.get("usedCode"))
    text = parts.get("name", "")
    if parts.get("amount"):
        text = f"{text} {parts['amount']}".strip()
    if parts.get("lot"):
        text = f"{text} (lot {parts['lot']})".strip()
    return text


def treatment_row(procedure: Resource, observations: Sequence[Resource]) -> tuple[str, ...]:
    findings = "; ".join(
        f"{concept_text(o.get('code'))}: {value_text(o)}".strip(": ") for o in observations
    )
    notes = " ".join(p for p in (_notes(procedure), findings) if p)
    return (
        concept_text(procedure.get("code")) or "Unnamed treatment",
        _when(procedure, "performed"),
        _texts(procedure.get("bodySite")),
        _product(procedure),
        _performers(procedure),
        notes,
    )


def result_row(observation: Resource) -> tuple[str, ...]:
    return (
        concept_text(observation.get("code")) or "Unnamed finding",
        value_text(observation),
        _when(observation, "effective") or day(observation.get("issued")),
        str(observation.get("status") or ""),
    )


HEADERS: Mapping[str, tuple[str, ...]] = {
    "allergies": ("Substance", "Status", "Criticality", "Reactions", "Recorded"),
    "medications": ("Medication", "Kind", "Status", "Dosage", "When"),
    "problems": ("Condition", "Status", "Onset", "Notes"),
    "procedures": ("Procedure", "Date", "Body site", "Performed by / where"),
    "results": ("Finding", "Value", "Date", "Status"),
    "treatments": ("Treatment", "Date", "Areas", "Product", "Practitioner", "Notes"),
    "contraindications": ("Warning", "Found in the record", "Why it matters"),
    "consents": ("Consent", "Status", "Date", "Policy version"),
}


def patient_line(patient: Resource) -> str:
    """The Patient as a reader identifies them: name, birth date, gender."""
    name = human_name(patient.get("name")) or "Unnamed client"
    parts = [name]
    if patient.get("birthDate"):
        parts.append(f"born {patient['birthDate']}")
    if patient.get("gender"):
        parts.append(str(patient["gender"]))
    return ", ".join(parts)

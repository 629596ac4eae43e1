"""Pure shaping of the client summary: FHIR R4 resources in, a view model out (no Flask, no
I/O). Observation codes follow mappings/intake-questionnaire.json (SDC extraction);
contraindication warnings come from ``symfhir.workspace.contraindications``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from symfhir.consent_kinds import ConsentKinds
from symfhir.workspace.consents import consent_status, policy_version
from symfhir.workspace.contraindications import Contraindication, Rule, contraindications

INTAKE_OBS = "http://symfhir.org/fhir/CodeSystem/intake-observation"
CONSENT_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"
MEDICATION_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/medication-kind"


@dataclass(frozen=True)
class Banner:
    name: str
    birth_date: str | None
    gender: str | None


@dataclass(frozen=True)
class Item:
    text: str
    detail: str = ""
    date: str = ""


@dataclass(frozen=True)
class ConsentRow:
    key: str
    label: str
    status: str  # given | declined | withdrawn | never asked
    date: str
    policy_version: str


@dataclass
class Summary:
    banner: Banner | None
    allergies: list[Item] = field(default_factory=list)
    medications: list[Item] = field(default_factory=list)
    supplements: list[Item] = field(default_factory=list)
    conditions: list[Item] = field(default_factory=list)
    skin_type: str | None = None
    skin_concerns: list[str] = field(default_factory=list)
    warnings: list[Contraindication] = field(default_factory=list)
    treatments: list[Item] = field(default_factory=list)
    consents: list[ConsentRow] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    resources: list[dict[str, Any]]
    failed: list[str]  # the entries' resource types that could not be read
    truncated: bool  # a search had more results than its one page


def batch_resources(answer: dict[str, Any], labels: list[str]) -> BatchResult:
    """The resources of a batch-response: a read's resource, a search's matches; the labels
    (``labels[i]`` names entry i) of failed entries; whether a search had a next page."""
    found: list[dict[str, Any]] = []
    failed: list[str] = []
    truncated = False
    for index, entry in enumerate(answer.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        status = str(((entry or {}).get("response") or {}).get("status", ""))
        if not isinstance(resource, dict) or not status.startswith("2"):
            failed.append(labels[index] if index < len(labels) else f"entry {index + 1}")
            continue
        if resource.get("resourceType") == "Bundle":
            for inner in resource.get("entry") or []:
                item = inner.get("resource") if isinstance(inner, dict) else None
                mode = (inner.get("search") or {}).get("mode") if isinstance(inner, dict) else None
                if isinstance(item, dict) and mode != "outcome":
                    found.append(item)
            truncated |= any(link.get("relation") == "next" for link in resource.get("link", []))
        else:
            found.append(resource)
    return BatchResult(found, failed, truncated)


def build_summary(
    resources: list[dict[str, Any]],
    patient_id: str,
    kinds: ConsentKinds,
    *,
    today: date,
    rules: tuple[Rule, ...] | None = None,
) -> Summary:
    """The view model of the launched patient's record on ``today`` (time windows of the
    contraindication ``rules``, default the bundled ones, count back from it). Resources of
    other patients (should a server return any) are ignored. Raises ConfigError when the
    bundled rules are unusable."""
    own = [r for r in resources if _belongs(r, patient_id)]
    patient = next((r for r in own if r.get("resourceType") == "Patient"), None)
    summary = Summary(banner=_banner(patient) if patient else None)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in own:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    for allergy in by_type.get("AllergyIntolerance", []):
        if _status(allergy, "clinicalStatus") in ("inactive", "resolved"):
            continue
        reactions = [
            concept_text(m)
            for reaction in allergy.get("reaction", [])
            for m in reaction.get("manifestation", [])
        ]
        detail = ", ".join(r for r in reactions if r)
        if allergy.get("criticality") == "high":
            detail = ("high criticality; " + detail).rstrip("; ")
        summary.allergies.append(Item(concept_text(allergy.get("code")), detail))
    for statement in by_type.get("MedicationStatement", []):
        if statement.get("status") in ("stopped", "entered-in-error", "completed"):
            continue
        item = Item(
            concept_text(statement.get("medicationCodeableConcept"))
            or str((statement.get("medicationReference") or {}).get("display", "")),
            _dosage(statement),
        )
        kinds_of = {
            c.get("code")
            for c in (statement.get("category") or {}).get("coding", [])
            if c.get("system") == MEDICATION_KIND_SYSTEM
        }
        (summary.supplements if "supplement" in kinds_of else summary.medications).append(item)
    for condition in by_type.get("Condition", []):
        if _status(condition, "clinicalStatus") in ("inactive", "resolved", "remission"):
            continue
        summary.conditions.append(
            Item(concept_text(condition.get("code")), date=_date(condition, "onsetDateTime"))
        )
    _observations(by_type.get("Observation", []), summary)
    procedures = [
        Item(
            concept_text(p.get("code")),
            concept_text((p.get("bodySite") or [None])[0]),
            _date(p, "performedDateTime") or _period_start(p.get("performedPeriod")),
        )
        for p in by_type.get("Procedure", [])
        if p.get("status") != "entered-in-error"
    ]
    summary.treatments = sorted(procedures, key=lambda i: i.date, reverse=True)
    summary.consents = consent_rows(by_type.get("Consent", []), kinds)
    summary.warnings = contraindications(own, today, rules)
    for items in (summary.allergies, summary.medications, summary.supplements):
        items.sort(key=lambda i: i.text.lower())
    return summary


def _observations(observations: list[dict[str, Any]], summary: Summary) -> None:
    latest_skin_type: tuple[str, str] | None = None
    for obs in observations:
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        codes = _codes(obs.get("code"))
        value = obs.get("valueCodeableConcept")
        when = _date(obs, "effectiveDateTime")
        if (INTAKE_OBS, "skin-type") in codes and value:
            if latest_skin_type is None or when > latest_skin_type[0]:
                latest_skin_type = (when, concept_text(value))
        elif (INTAKE_OBS, "skin-concern") in codes and value:
            summary.skin_concerns.append(concept_text(value))
    summary.skin_type = latest_skin_type[1] if latest_skin_type else None
    summary.skin_concerns = sorted(set(summary.skin_concerns))


def consent_rows(consents: list[dict[str, Any]], kinds: ConsentKinds) -> list[ConsentRow]:
    """One row per consent kind, from its latest Consent (by dateTime): given (active
    permit), declined (rejected, or a deny provision), withdrawn (inactive), or never asked."""
    latest: dict[str, dict[str, Any]] = {}
    for consent in consents:
        if consent.get("status") in ("entered-in-error", "draft", "proposed"):
            continue
        for category in consent.get("category", []):
            for kind in _codes(category):
                if kind[0] != CONSENT_KIND_SYSTEM or kind[1] not in kinds.kinds:
                    continue
                current = latest.get(kind[1])
                if current is None or str(consent.get("dateTime", "")) >= str(
                    current.get("dateTime", "")
                ):
                    latest[kind[1]] = consent
    rows = []
    for key, kind in kinds.kinds.items():
        consent = latest.get(key)
        if consent is None:
            rows.append(ConsentRow(key, kind.label, "never asked", "", ""))
            continue
        rows.append(
            ConsentRow(
                key,
                kind.label,
                consent_status(consent),
                str(consent.get("dateTime", ""))[:10],
                policy_version(consent),
            )
        )
    return rows


def concept_text(concept: dict[str, Any] | None) -> str:
    if not concept:
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display"):
            return str(coding["display"])
    codings = concept.get("coding") or [{}]
    return str(codings[0].get("code", ""))


def _codes(concept: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(str(c.get("system")), str(c.get("code"))) for c in (concept or {}).get("coding", [])}


def _status(resource: dict[str, Any], name: str) -> str:
    codings = (resource.get(name) or {}).get("coding") or [{}]
    return str(codings[0].get("code", ""))


def _date(resource: dict[str, Any], name: str) -> str:
    return str(resource.get(name) or "")[:10]


def _period_start(period: dict[str, Any] | None) -> str:
    return str((period or {}).get("start") or "")[:10]


def _dosage(statement: dict[str, Any]) -> str:
    dosages = statement.get("dosage") or []
    return str(dosages[0].get("text", "")) if dosages else ""


def _banner(patient: dict[str, Any]) -> Banner:
    names = patient.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    text = (
        official.get("text")
        or " ".join([*official.get("given", []), str(official.get("family", ""))]).strip()
    )
    return Banner(text or "Unnamed client", patient.get("birthDate"), patient.get("gender"))


def _belongs(resource: dict[str, Any], patient_id: str) -> bool:
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    target = f"Patient/{patient_id}"
    for name in ("patient", "subject"):
        reference = (resource.get(name) or {}).get("reference")
        if reference is not None:
            return reference == target or reference.endswith("/" + target)
    return False

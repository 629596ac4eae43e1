"""The client summary: one FHIR batch reading the client's record (``read_summary``), and its
shaping into a view model (``build_summary``: pure).

A batch rather than ``Patient?_id=…&_revinclude=…``: a Patient search needs
``patient/Patient.s``, which a launch reading the record need not have (reading needs only
``.r``); in a batch each entry is checked against its own type's scope. Observation codes
follow mappings/intake-questionnaire.json (SDC extraction); contraindication warnings come
from ``symfhir.workspace.contraindications``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.consent_kinds import ConsentKinds, load_consent_kinds
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import (
    batch_resources,
    codings,
    concept_text,
    human_name,
    read_batch,
    status_code,
)
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.status import consent_overview
from symfhir.workspace.contraindications import Contraindication, Rule, contraindications
from symfhir.workspace.disputes import disagreement_search, disputed_references
from symfhir.workspace.fallbacks import LABEL as FALLBACK_LABEL
from symfhir.workspace.fallbacks import fallback_search, restore

INTAKE_OBS = "http://symfhir.org/fhir/CodeSystem/intake-observation"
MEDICATION_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/medication-kind"

# (type, the search parameter naming the patient, sort): one batch entry each.
SEARCHES = (
    ("AllergyIntolerance", "patient", None),
    ("MedicationStatement", "subject", None),
    ("Condition", "subject", None),
    ("Observation", "subject", "-date"),
    ("Procedure", "subject", "-date"),
    ("Consent", "patient", "-date"),
)
PAGE_SIZE = 200  # one page per search; a fuller record shows the "more records" notice
LABELS = ["Patient", *(t for t, _, _ in SEARCHES)]
READ_TYPES = ", ".join(LABELS)


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
    #: ``Type/id`` of the record shown, to mark it disputed by the client.
    ref: str = ""


@dataclass(frozen=True)
class ConsentRow:
    key: str
    label: str
    status: str  # given | declined | withdrawn | never asked
    date: str
    policy_version: str
    #: Given under a privacy policy older than its latest significant change (policy §13).
    reconsent_needed: bool = False


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
    #: Records (``Type/id``) a statement of disagreement of the client disputes (HIPAA
    #: 164.526(d)): shown with a "disputed by the client" marker.
    disputed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SummaryRead:
    """What ``read_summary`` found: the view model, the types that could not be read, and
    whether a search had more than its one page."""

    summary: Summary
    failed: list[str]
    truncated: bool


def summary_batch(patient_id: str, fallbacks: bool = False) -> dict[str, Any]:
    """The batch Bundle reading the patient and what refers to them (ids need no escaping:
    ``check_id`` allows only [A-Za-z0-9.-]; it raises FhirRequestError for anything else);
    with ``fallbacks``, also the Consents kept as DocumentReferences."""
    pid = check_id(patient_id)
    urls = [f"Patient/{pid}"]
    for resource_type, parameter, sort in SEARCHES:
        url = f"{resource_type}?{parameter}=Patient/{pid}&_count={PAGE_SIZE}"
        urls.append(f"{url}&_sort={sort}" if sort else url)
    if fallbacks:
        urls.append(fallback_search(pid, ["consent"]))
        urls.append(disagreement_search(pid))
    return read_batch(urls)


def read_summary(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> SummaryRead:
    """The summary of the client's record as of ``now`` (default: the clock), read in one
    batch and audited as one read. Time windows of the warnings count back from the spa's
    calendar day. Raises FhirServerError when the batch itself fails (an entry that fails is
    named in ``failed``), ConfigError when the bundled rules or consent kinds are unusable.
    Consents kept as DocumentReferences are read too when ``actor`` may search them."""
    fallbacks = actor.may("DocumentReference", "s")
    answer = client.batch(summary_batch(patient_id, fallbacks))
    labels = [*LABELS, FALLBACK_LABEL, FALLBACK_LABEL] if fallbacks else LABELS
    found = batch_resources(answer, labels)
    read = f"{READ_TYPES}, {FALLBACK_LABEL}" if fallbacks else READ_TYPES
    audit("read", description=f"summary view read {read}")
    zone = load_spa().zone
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    summary = build_summary(
        restore(found.resources), patient_id, load_consent_kinds(), today=today, zone=zone
    )
    return SummaryRead(summary, found.failed, found.truncated)


def build_summary(
    resources: list[dict[str, Any]],
    patient_id: str,
    kinds: ConsentKinds,
    *,
    today: date,
    rules: tuple[Rule, ...] | None = None,
    zone: tzinfo | None = None,
) -> Summary:
    """The view model of the launched patient's record on ``today`` (time windows of the
    contraindication ``rules``, default the bundled ones, count back from it). Resources of
    other patients (should a server return any) are ignored. Raises ConfigError when the
    bundled rules are unusable."""
    own = [r for r in resources if in_compartment(r, patient_id)]
    patient = next((r for r in own if r.get("resourceType") == "Patient"), None)
    summary = Summary(banner=_banner(patient) if patient else None)
    summary.disputed = disputed_references(own)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in own:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    for allergy in by_type.get("AllergyIntolerance", []):
        if status_code(allergy, "clinicalStatus") in ("inactive", "resolved"):
            continue
        if status_code(allergy, "verificationStatus") == "entered-in-error":
            continue  # e.g. marked so by an accepted correction: struck, not shown
        reactions = [
            concept_text(m)
            for reaction in allergy.get("reaction", [])
            for m in reaction.get("manifestation", [])
        ]
        detail = ", ".join(r for r in reactions if r)
        if allergy.get("criticality") == "high":
            detail = ("high criticality; " + detail).rstrip("; ")
        summary.allergies.append(Item(concept_text(allergy.get("code")), detail, ref=_ref(allergy)))
    for statement in by_type.get("MedicationStatement", []):
        if statement.get("status") in ("stopped", "entered-in-error", "completed"):
            continue
        item = Item(
            concept_text(statement.get("medicationCodeableConcept"))
            or str((statement.get("medicationReference") or {}).get("display", "")),
            _dosage(statement),
            ref=_ref(statement),
        )
        kinds_of = {
            c.get("code")
            for c in (statement.get("category") or {}).get("coding", [])
            if c.get("system") == MEDICATION_KIND_SYSTEM
        }
        (summary.supplements if "supplement" in kinds_of else summary.medications).append(item)
    for condition in by_type.get("Condition", []):
        if status_code(condition, "clinicalStatus") in ("inactive", "resolved", "remission"):
            continue
        if status_code(condition, "verificationStatus") == "entered-in-error":
            continue
        summary.conditions.append(
            Item(
                concept_text(condition.get("code")),
                date=_date(condition, "onsetDateTime"),
                ref=_ref(condition),
            )
        )
    _observations(by_type.get("Observation", []), summary)
    procedures = [
        Item(
            concept_text(p.get("code")),
            concept_text((p.get("bodySite") or [None])[0]),
            _date(p, "performedDateTime") or _period_start(p.get("performedPeriod")),
            ref=_ref(p),
        )
        for p in by_type.get("Procedure", [])
        if p.get("status") != "entered-in-error"
    ]
    summary.treatments = sorted(procedures, key=lambda i: i.date, reverse=True)
    summary.consents = consent_rows(by_type.get("Consent", []), kinds, zone)
    summary.warnings = contraindications(own, today, rules)
    for items in (summary.allergies, summary.medications, summary.supplements):
        items.sort(key=lambda i: i.text.lower())
    return summary


def _observations(observations: list[dict[str, Any]], summary: Summary) -> None:
    latest_skin_type: tuple[str, str] | None = None
    for obs in observations:
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        codes = codings(obs.get("code"))
        value = obs.get("valueCodeableConcept")
        when = _date(obs, "effectiveDateTime")
        if (INTAKE_OBS, "skin-type") in codes and value:
            if latest_skin_type is None or when > latest_skin_type[0]:
                latest_skin_type = (when, concept_text(value))
        elif (INTAKE_OBS, "skin-concern") in codes and value:
            summary.skin_concerns.append(concept_text(value))
    summary.skin_type = latest_skin_type[1] if latest_skin_type else None
    summary.skin_concerns = sorted(set(summary.skin_concerns))


def consent_rows(
    consents: list[dict[str, Any]], kinds: ConsentKinds, zone: tzinfo | None = None
) -> list[ConsentRow]:
    """One row per consent kind from its latest Consent, by the consents workspace's rule
    (``consent_overview``: newest by instant, shown as the spa's local day): given, declined,
    withdrawn, or never asked."""
    rows = []
    for kind in consent_overview(consents, kinds, zone):
        current = kind.current
        if current is None:
            rows.append(ConsentRow(kind.key, kind.label, "never asked", "", ""))
        else:
            rows.append(
                ConsentRow(
                    kind.key,
                    kind.label,
                    current.status,
                    current.date,
                    current.policy_version,
                    kind.reconsent_needed,
                )
            )
    return rows


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _date(resource: dict[str, Any], name: str) -> str:
    return str(resource.get(name) or "")[:10]


def _period_start(period: dict[str, Any] | None) -> str:
    return str((period or {}).get("start") or "")[:10]


def _dosage(statement: dict[str, Any]) -> str:
    dosages = statement.get("dosage") or []
    return str(dosages[0].get("text", "")) if dosages else ""


def _banner(patient: dict[str, Any]) -> Banner:
    name = human_name(patient.get("name"))
    return Banner(name or "Unnamed client", patient.get("birthDate"), patient.get("gender"))

"""Health history → AllergyIntolerance, MedicationStatement, Condition, Procedure.

Follows hl7.org/fhir/R4/allergyintolerance.html, medicationstatement.html,
condition.html and procedure.html. Everything here is client-reported at
intake, so verification status is ``unconfirmed`` and the Patient is the
information source. Each resource is ``derivedFrom``/linked to the intake.

The per-item functions (``allergy``, ``medication``, ``condition``, ``prior_treatment``)
map one reported fact; the importer calls them for each item of a record, and the
practitioner's intake form (``symfhir.workspace.intake.history``) for each answered row,
so both give the same resource and business identifier for the same client and text.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, identifier
from symfhir.model import SpaRecord
from symfhir.model.health import Allergy, Medication, PriorTreatment

ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def _concept(ctx: MappingContext, valueset: str, text: str) -> dict[str, Any]:
    """Free text, with a standard coding when the text names a known key."""
    key = text.strip().casefold().replace(" ", "_").replace("-", "_")
    if ctx.terminology.has(valueset, key):
        return {"coding": [ctx.coding(valueset, key)], "text": text}
    return {"text": text}


def allergy(
    item: Allergy, client_id: str, intake_date: date, patient: Entry, ctx: MappingContext
) -> Entry:
    """One reported allergy; identified by the client and the substance."""
    ident = identifier(ctx, "allergy", digest(client_id, item.substance))
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "identifier": [ident],
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "unconfirmed"}]},
        "code": {"text": item.substance},
        "patient": patient.reference,
        "recordedDate": intake_date.isoformat(),
        "asserter": patient.reference,
    }
    if item.category:
        resource["category"] = [ctx.coding("allergy_category", item.category)["code"]]
    if item.reaction or item.severity:
        reaction: dict[str, Any] = {
            "manifestation": [{"text": item.reaction or "reaction not described"}]
        }
        if item.severity:
            reaction["severity"] = ctx.coding("allergy_severity", item.severity)["code"]
        resource["reaction"] = [reaction]
    return entry(resource, ident)


def medication(
    item: Medication,
    client_id: str,
    intake_date: date,
    patient: Entry,
    intake: Entry,
    ctx: MappingContext,
) -> Entry:
    """One reported medication or supplement; identified by the client and its name."""
    ident = identifier(ctx, "medication-statement", digest(client_id, item.name))
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "identifier": [ident],
        "status": "active",
        "category": ctx.concept("medication_kind", item.kind),
        "medicationCodeableConcept": {"text": item.name},
        "subject": patient.reference,
        "dateAsserted": intake_date.isoformat(),
        "informationSource": patient.reference,
        "derivedFrom": [intake.reference],
    }
    if item.dose:
        resource["dosage"] = [{"text": item.dose}]
    return entry(resource, ident)


def condition(
    text: str, client_id: str, intake_date: date, patient: Entry, ctx: MappingContext
) -> Entry:
    """One reported condition; identified by the client and its text."""
    ident = identifier(ctx, "condition", digest(client_id, text))
    resource = {
        "resourceType": "Condition",
        "identifier": [ident],
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
        "verificationStatus": {
            "coding": [{"system": CONDITION_VERIFICATION, "code": "unconfirmed"}]
        },
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}],
        "code": {"text": text},
        "subject": patient.reference,
        "recordedDate": intake_date.isoformat(),
        "asserter": patient.reference,
    }
    return entry(resource, ident)


def prior_treatment(
    item: PriorTreatment, client_id: str, patient: Entry, ctx: MappingContext
) -> Entry:
    """One treatment done before (often elsewhere), as reported by the client."""
    ident = identifier(ctx, "procedure", digest(client_id, "prior", item.what, item.when or ""))
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "identifier": [ident],
        "status": "completed",
        "code": _concept(ctx, "treatment", item.what),
        "subject": patient.reference,
        "asserter": patient.reference,
    }
    if item.when:
        resource["performedDateTime"] = item.when
    if item.where:
        resource["location"] = {"display": item.where}
    resource["note"] = [{"text": "Reported by the client at intake."}]
    return entry(resource, ident)


def allergies(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    health, cid = record.health, record.client.client_id
    return [allergy(a, cid, health.intake_date, patient, ctx) for a in health.allergies]


def medications(
    record: SpaRecord, patient: Entry, intake: Entry, ctx: MappingContext
) -> list[Entry]:
    health, cid = record.health, record.client.client_id
    return [
        medication(m, cid, health.intake_date, patient, intake, ctx) for m in health.medications
    ]


def conditions(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    health, cid = record.health, record.client.client_id
    return [condition(t, cid, health.intake_date, patient, ctx) for t in health.conditions]


def prior_treatments(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    """Treatments done before (often elsewhere), as reported by the client."""
    health, cid = record.health, record.client.client_id
    return [prior_treatment(p, cid, patient, ctx) for p in health.prior_treatments]

"""Health history → AllergyIntolerance, MedicationStatement, Condition, Procedure.

Follows hl7.org/fhir/R4/allergyintolerance.html, medicationstatement.html,
condition.html and procedure.html. Everything here is client-reported at
intake, so verification status is ``unconfirmed`` and the Patient is the
information source. Each resource is ``derivedFrom``/linked to the intake.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, identifier
from symfhir.model import SpaRecord

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


def allergies(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    out = []
    cid = record.client.client_id
    for allergy in record.health.allergies:
        ident = identifier(ctx, "allergy", digest(cid, allergy.substance))
        resource: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "identifier": [ident],
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {
                "coding": [{"system": ALLERGY_VERIFICATION, "code": "unconfirmed"}]
            },
            "code": {"text": allergy.substance},
            "patient": patient.reference,
            "recordedDate": record.health.intake_date.isoformat(),
            "asserter": patient.reference,
        }
        if allergy.category:
            resource["category"] = [ctx.coding("allergy_category", allergy.category)["code"]]
        if allergy.reaction or allergy.severity:
            reaction: dict[str, Any] = {
                "manifestation": [{"text": allergy.reaction or "reaction not described"}]
            }
            if allergy.severity:
                reaction["severity"] = ctx.coding("allergy_severity", allergy.severity)["code"]
            resource["reaction"] = [reaction]
        out.append(entry(resource, ident))
    return out


def medications(
    record: SpaRecord, patient: Entry, intake: Entry, ctx: MappingContext
) -> list[Entry]:
    out = []
    cid = record.client.client_id
    for med in record.health.medications:
        ident = identifier(ctx, "medication-statement", digest(cid, med.name))
        resource: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "identifier": [ident],
            "status": "active",
            "category": ctx.concept("medication_kind", med.kind),
            "medicationCodeableConcept": {"text": med.name},
            "subject": patient.reference,
            "dateAsserted": record.health.intake_date.isoformat(),
            "informationSource": patient.reference,
            "derivedFrom": [intake.reference],
        }
        if med.dose:
            resource["dosage"] = [{"text": med.dose}]
        out.append(entry(resource, ident))
    return out


def conditions(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    out = []
    cid = record.client.client_id
    for text in record.health.conditions:
        ident = identifier(ctx, "condition", digest(cid, text))
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
            "recordedDate": record.health.intake_date.isoformat(),
            "asserter": patient.reference,
        }
        out.append(entry(resource, ident))
    return out


def prior_treatments(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    """Treatments done before (often elsewhere), as reported by the client."""
    out = []
    cid = record.client.client_id
    for prior in record.health.prior_treatments:
        ident = identifier(ctx, "procedure", digest(cid, "prior", prior.what, prior.when or ""))
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "identifier": [ident],
            "status": "completed",
            "code": _concept(ctx, "treatment", prior.what),
            "subject": patient.reference,
            "asserter": patient.reference,
        }
        if prior.when:
            resource["performedDateTime"] = prior.when
        if prior.where:
            resource["location"] = {"display": prior.where}
        resource["note"] = [{"text": "Reported by the client at intake."}]
        out.append(entry(resource, ident))
    return out

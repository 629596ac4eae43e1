"""A small synthetic record (no real person) for the fake FHIR server and shaping tests."""

from __future__ import annotations

from typing import Any

INTAKE = "http://symfhir.org/fhir/CodeSystem/intake-observation"
KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"


def _obs(pid: str, code: str, value: dict[str, Any], when: str = "2026-11-01") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": INTAKE, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueCodeableConcept": value,
    }


def _consent(pid: str, kind: str, status: str, when: str, version: str, deny: bool = False):
    return {
        "resourceType": "Consent",
        "status": status,
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": when,
        "category": [{"coding": [{"system": KIND, "code": kind}]}],
        "policy": [{"uri": f"http://symfhir.org/fhir/policy/doc/{version}"}],
        "provision": {"type": "deny" if deny else "permit"},
    }


def sample_resources(pid: str = "p1") -> list[dict[str, Any]]:
    ref = {"reference": f"Patient/{pid}"}
    return [
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"use": "official", "given": ["Ada"], "family": "Testperson"}],
            "birthDate": "1990-04-01",
            "gender": "female",
        },
        {
            "resourceType": "AllergyIntolerance",
            "patient": ref,
            "criticality": "high",
            "code": {"text": "Lidocaine"},
            "reaction": [{"manifestation": [{"text": "Hives"}]}],
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": ref,
            "medicationCodeableConcept": {"text": "Tretinoin cream"},
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": ref,
            "category": {
                "coding": [
                    {
                        "system": "http://symfhir.org/fhir/CodeSystem/medication-kind",
                        "code": "supplement",
                    }
                ]
            },
            "medicationCodeableConcept": {"text": "Fish oil"},
        },
        {
            "resourceType": "Condition",
            "subject": ref,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": "Rosacea"},
        },
        _obs(pid, "skin-type", {"text": "Skin phototype III"}, "2026-11-01"),
        _obs(pid, "skin-type", {"text": "Skin phototype II"}, "2025-01-01"),
        _obs(pid, "skin-concern", {"text": "Melasma"}),
        _obs(pid, "contraindication", {"text": "Isotretinoin within the last 6 months"}),
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": ref,
            "code": {"text": "Chemical peel"},
            "performedDateTime": "2026-06-01",
        },
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": ref,
            "code": {"text": "Microneedling"},
            "performedPeriod": {"start": "2026-09-10T10:00:00-05:00"},
        },
        _consent(pid, "treatment", "active", "2026-11-01T10:00:00Z", "2026-01"),
        _consent(pid, "photos_website", "rejected", "2026-11-01T10:00:00Z", "2026-01", True),
        _consent(pid, "marketing_email", "active", "2026-01-01T10:00:00Z", "2025-06"),
        _consent(pid, "marketing_email", "inactive", "2026-10-01T10:00:00Z", "2026-01"),
        # Another patient's resource: must never show.
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": "Patient/other"},
            "code": {"text": "Peanut"},
        },
    ]


ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"


def _related(pid: str, rid: str, name: str, codes: list[tuple[str, str, str]], **extra: Any):
    return {
        "resourceType": "RelatedPerson",
        "id": rid,
        "meta": {"versionId": "1"},
        "identifier": [{"system": "https://symetrie.example/id/related-person", "value": rid}],
        "active": True,
        "patient": {"reference": f"Patient/{pid}"},
        "relationship": [{"coding": [{"system": s, "code": c}], "text": t} for s, c, t in codes],
        "name": [{"text": name}],
        **extra,
    }


def guardian_resources(pid: str = "p1") -> list[dict[str, Any]]:
    """RelatedPersons as the import writes them: the guardian (a mother), an emergency contact
    who is a spouse (not one who may sign for a minor), an inactive guardian, and another
    patient's guardian (must never be offered or referenced)."""
    return [
        _related(
            pid,
            "rp-mother",
            "Grace Testperson",
            [(ROLE, "GUARD", "guardian"), (ROLE, "MTH", "mother")],
        ),
        _related(
            pid,
            "rp-spouse",
            "Sam Testperson",
            [(CONTACT_ROLE, "C", "Emergency Contact"), (ROLE, "SPS", "spouse")],
        ),
        _related(pid, "rp-old", "Old Guardian", [(ROLE, "GUARD", "guardian")], active=False),
        _related(
            "other",
            "rp-other",
            "Zed Elsewhere",
            [(ROLE, "GUARD", "guardian"), (ROLE, "FTH", "father")],
        ),
    ]

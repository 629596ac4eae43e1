"""A synthetic client record for the patient summary tests (no real person)."""

from __future__ import annotations

from typing import Any

PID = "p1"
SPA_TREATMENT = "http://symfhir.org/fhir/CodeSystem/spa-treatment"
INTAKE_OBS = "http://symfhir.org/fhir/CodeSystem/intake-observation"
CONSENT_KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
SUBJECT = {"reference": f"Patient/{PID}"}


def record(name: str = "Avery Quillfeather") -> list[dict[str, Any]]:
    """The Patient, an allergy, a medication, a condition, a reported procedure, a spa treatment
    with an Observation of it, an intake Observation, a treatment, a physician-sharing
    (naming the Practitioner and one not given) and a marketing consent, a
    Practitioner, and
    resources of another client that must never appear."""
    given, _, family = name.partition(" ")
    return [
        {
            "resourceType": "Patient",
            "id": PID,
            "meta": {"versionId": "3", "lastUpdated": "2026-11-30T10:00:00Z"},
            "name": [{"given": [given], "family": family}],
            "birthDate": "1990-04-02",
            "gender": "female",
            "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo="}],
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": SUBJECT,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"text": "Lidocaine"},
            "criticality": "high",
            "reaction": [{"manifestation": [{"text": "Hives"}]}],
            "recordedDate": "2026-10-01",
        },
        {
            "resourceType": "MedicationStatement",
            "id": "m1",
            "status": "active",
            "subject": SUBJECT,
            "medicationCodeableConcept": {"text": "Warfarin 5 mg"},
            "dosage": [{"text": "once daily"}],
            "informationSource": {"reference": "Practitioner/dr1"},
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": SUBJECT,
            "code": {"text": "History of keloids"},
            "onsetDateTime": "2015-06-01",
        },
        {
            "resourceType": "Procedure",
            "id": "pr-prior",
            "status": "completed",
            "subject": SUBJECT,
            "asserter": SUBJECT,
            "code": {"text": "Laser resurfacing"},
            "performedDateTime": "2024-02-01",
            "location": {"display": "Another clinic"},
        },
        {
            "resourceType": "Procedure",
            "id": "pr1",
            "status": "completed",
            "subject": SUBJECT,
            "code": {
                "coding": [
                    {
                        "system": SPA_TREATMENT,
                        "code": "dermal-filler",
                        "display": "Dermal filler injection",
                    }
                ]
            },
            "performedDateTime": "2026-11-20T15:00:00-06:00",
            "performer": [
                {"actor": {"reference": "Practitioner/dr1", "display": "Dr Ines Okafor"}}
            ],
            "bodySite": [{"text": "Lips"}],
            "extension": [
                {
                    "url": "http://symfhir.org/fhir/StructureDefinition/treatment-product",
                    "extension": [
                        {"url": "name", "valueString": "HA filler"},
                        {"url": "lot", "valueString": "L123"},
                        {"url": "amount", "valueQuantity": {"value": 1.0, "unit": "mL"}},
                    ],
                }
            ],
        },
        {
            "resourceType": "Observation",
            "id": "o-tx",
            "status": "final",
            "subject": SUBJECT,
            "partOf": [{"reference": "Procedure/pr1"}],
            "code": {"text": "Bruising"},
            "valueString": "mild",
            "effectiveDateTime": "2026-11-20",
        },
        {
            "resourceType": "Observation",
            "id": "o-skin",
            "status": "final",
            "subject": SUBJECT,
            "code": {"coding": [{"system": INTAKE_OBS, "code": "skin-type"}], "text": "Skin type"},
            "valueCodeableConcept": {"text": "Fitzpatrick III"},
            "effectiveDateTime": "2026-10-01",
            "derivedFrom": [{"reference": "QuestionnaireResponse/qr1"}],
        },
        {
            "resourceType": "Consent",
            "id": "k1",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "treatment",
                    }
                ]
            },
            "category": [{"coding": [{"system": CONSENT_KIND, "code": "treatment"}]}],
            "patient": SUBJECT,
            "dateTime": "2026-10-01T10:00:00Z",
            "policy": [{"uri": "http://symfhir.org/fhir/policy/treatment-consent/2026-01-01"}],
            "sourceAttachment": {"contentType": "image/png", "data": "iVBORw0KGgo="},
        },
        {
            "resourceType": "Consent",
            "id": "k-physician",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": CONSENT_KIND, "code": "physician_sharing"}]}],
            "patient": SUBJECT,
            "dateTime": "2026-11-01T10:00:00Z",
            "provision": {
                "type": "permit",
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP",
                                }
                            ]
                        },
                        "reference": {"reference": "Practitioner/dr1"},
                    },
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP",
                                }
                            ]
                        },
                        "reference": {"reference": "Practitioner/elsewhere"},
                    },
                ],
            },
        },
        {
            "resourceType": "Consent",
            "id": "k-marketing",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": CONSENT_KIND, "code": "marketing_email"}]}],
            "patient": SUBJECT,
            "dateTime": "2026-10-01T10:00:00Z",
        },
        {
            "resourceType": "Practitioner",
            "id": "dr1",
            "name": [{"given": ["Ines"], "family": "Okafor"}],
        },
        # another client's records: never in this client's summary
        {"resourceType": "Patient", "id": "p2", "name": [{"family": "Otherperson"}]},
        {
            "resourceType": "AllergyIntolerance",
            "id": "a-other",
            "patient": {"reference": "Patient/p2"},
            "code": {"text": "Peanut"},
        },
    ]

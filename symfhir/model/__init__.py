"""The spa record model: typed, validated records of what the spa collects."""

from symfhir.model.client import Address, Client, ContactPerson, Physician
from symfhir.model.consent import ConsentRecord, SignedForm
from symfhir.model.health import (
    Allergy,
    ConsultationNote,
    HealthHistory,
    Medication,
    PriorTreatment,
    TreatmentRecord,
)
from symfhir.model.record import SpaRecord, age_on

__all__ = [
    "Address",
    "Allergy",
    "Client",
    "ConsentRecord",
    "ConsultationNote",
    "ContactPerson",
    "HealthHistory",
    "Medication",
    "Physician",
    "PriorTreatment",
    "SignedForm",
    "SpaRecord",
    "TreatmentRecord",
    "age_on",
]

"""The client's own physician → Practitioner, and PractitionerRole for the physician's practice.

Follows hl7.org/fhir/R4/practitioner.html and practitionerrole.html. The Practitioner carries
the NPI as its identifier (system ``http://hl7.org/fhir/sid/us-npi``) and is created
conditionally on it, so every client of one physician, in any export, names the same
Practitioner (and one the EHR already holds is reused); without an NPI it is created on a
source identifier of the client's record. The practice (organization name) is a
PractitionerRole linking the Practitioner to ``organization.display``: a practice known only
by its name has no identifier an Organization could be created conditionally on.
``Patient.generalPractitioner`` and the physician-sharing Consent reference the Practitioner.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, identifier
from symfhir.model import Physician

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def practitioner(physician: Physician, client_id: str, ctx: MappingContext) -> Entry:
    """The physician as a Practitioner (conditional create on the NPI, else on
    ``<client id>-physician``)."""
    if physician.npi:
        ident = {"system": NPI_SYSTEM, "value": physician.npi}
    else:
        ident = identifier(ctx, "physician", f"{client_id}-physician")
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [ident],
        "active": True,
        "name": [{"text": physician.name}],
    }
    telecom = []
    if physician.phone:
        telecom.append({"system": "phone", "value": physician.phone, "use": "work"})
    if physician.email:
        telecom.append({"system": "email", "value": physician.email, "use": "work"})
    if telecom:
        resource["telecom"] = telecom
    return entry(resource, ident)


def practitioner_role(physician: Physician, doctor: Entry, ctx: MappingContext) -> Entry | None:
    """The physician's practice as a PractitionerRole, or None when no practice is named.

    Its identifier is a digest of the Practitioner's identifier and the practice name: the
    same physician at the same practice is one PractitionerRole."""
    if not physician.organization:
        return None
    (doctor_ident,) = doctor.resource["identifier"]
    key = digest(doctor_ident["system"], doctor_ident["value"], physician.organization)
    ident = identifier(ctx, "physician-role", key)
    resource = {
        "resourceType": "PractitionerRole",
        "identifier": [ident],
        "active": True,
        "practitioner": reference(doctor, physician),
        "organization": {"display": physician.organization},
    }
    return entry(resource, ident)


def reference(doctor: Entry, physician: Physician) -> dict[str, str]:
    """A Reference to the Practitioner that also names the physician."""
    return {**doctor.reference, "display": physician.name}

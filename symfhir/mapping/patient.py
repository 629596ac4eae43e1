"""Client → Patient, RelatedPerson (emergency contact, guardian) and the spa's Organization.

Follows hl7.org/fhir/R4/patient.html and relatedperson.html. The client's physician is a
Practitioner (``symfhir.mapping.practitioner``) the Patient names in ``generalPractitioner``.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.practitioner import reference
from symfhir.mapping.refs import Entry, entry, identifier
from symfhir.model import Client, ContactPerson

GENDER_IDENTITY_URL = "http://hl7.org/fhir/StructureDefinition/patient-genderIdentity"


def organization(ctx: MappingContext) -> Entry:
    spa = ctx.spa
    ident = {"system": spa.identifier_system, "value": spa.identifier_value}
    resource = {
        "resourceType": "Organization",
        "identifier": [ident],
        "active": True,
        "name": spa.name,
    }
    return entry(resource, ident)


def _telecom(client: Client) -> list[dict[str, Any]]:
    telecom: list[dict[str, Any]] = [
        {"system": "phone", "value": number, "use": use} for use, number in client.phones.items()
    ]
    if client.email:
        telecom.append({"system": "email", "value": client.email})
    return telecom


def patient(client: Client, ctx: MappingContext, physician: Entry | None = None) -> Entry:
    """The Patient; ``physician`` is the Practitioner of ``client.physician``."""
    ident = identifier(ctx, "client-id", client.client_id)
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"use": "usual", **ident}],
        "active": True,
        "name": [{"use": "official", "family": client.family_name, "given": [client.given_name]}],
        "birthDate": client.birth_date.isoformat(),
    }
    telecom = _telecom(client)
    if telecom:
        resource["telecom"] = telecom
    if client.sex:
        resource["gender"] = ctx.coding("sex", client.sex)["code"]
    if client.gender_identity:
        resource["extension"] = [
            {"url": GENDER_IDENTITY_URL, "valueCodeableConcept": {"text": client.gender_identity}}
        ]
    if client.address:
        address: dict[str, Any] = {"use": "home", "type": "postal"}
        for key, name in (
            ("lines", "line"),
            ("city", "city"),
            ("state", "state"),
            ("postal_code", "postalCode"),
            ("country", "country"),
        ):
            value = getattr(client.address, key)
            if value:
                address[name] = value
        resource["address"] = [address]
    if client.preferred_language:
        resource["communication"] = [
            {
                "language": ctx.concept("language", client.preferred_language),
                "preferred": True,
            }
        ]
    if client.physician and physician is not None:
        resource["generalPractitioner"] = [reference(physician, client.physician)]
    elif client.physician:
        resource["generalPractitioner"] = [{"display": client.physician.name}]
    return entry(resource, ident)


def related_person(
    person: ContactPerson, role: str, client: Client, patient_entry: Entry, ctx: MappingContext
) -> Entry:
    """An emergency contact (role ``emergency``) or guardian (role ``guardian``)."""
    ident = identifier(ctx, "related-person", f"{client.client_id}-{role}")
    relationship = [ctx.concept("contact_role", role)]
    relationship.append(ctx.concept("relationship", person.relationship))
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "identifier": [ident],
        "active": True,
        "patient": patient_entry.reference,
        "relationship": relationship,
        "name": [{"text": person.name}],
    }
    telecom = []
    if person.phone:
        telecom.append({"system": "phone", "value": person.phone})
    if person.email:
        telecom.append({"system": "email", "value": person.email})
    if telecom:
        resource["telecom"] = telecom
    return entry(resource, ident)

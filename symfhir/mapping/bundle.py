"""One client's record (and photos) → one FHIR transaction Bundle.

hl7.org/fhir/R4/http.html#transaction: entries use ``urn:uuid`` full URLs the
server resolves, and every create is conditional (``ifNoneExist``) so replaying
the Bundle never duplicates anything.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping import (
    consent,
    extract,
    history,
    intake,
    patient,
    photos,
    practitioner,
    treatments,
)
from symfhir.mapping.context import MappingContext
from symfhir.mapping.photos import PhotoInput
from symfhir.mapping.provenance import provenance
from symfhir.mapping.refs import Entry
from symfhir.model import SpaRecord


def client_entries(
    record: SpaRecord, ctx: MappingContext, source: str, photo_inputs: list[PhotoInput] = ()
) -> list[Entry]:
    """Every resource for one client, Provenance last. Pure: no I/O, no clock."""
    client = record.client
    org = patient.organization(ctx)
    doctor = None
    if client.physician:
        doctor = practitioner.practitioner(client.physician, client.client_id, ctx)
    pat = patient.patient(client, ctx, doctor)
    entries = [org, pat]
    if client.physician and doctor is not None:
        entries.append(doctor)
        role = practitioner.practitioner_role(client.physician, doctor, ctx)
        if role is not None:
            entries.append(role)
    guardian = None
    if client.emergency_contact:
        entries.append(
            patient.related_person(client.emergency_contact, "emergency", client, pat, ctx)
        )
    if client.guardian:
        guardian = patient.related_person(client.guardian, "guardian", client, pat, ctx)
        entries.append(guardian)
    qr = intake.questionnaire_response(record, pat, ctx)
    entries.append(qr)
    entries += extract.observations(ctx.questionnaire, qr.resource, qr, client.client_id, ctx)
    entries += history.allergies(record, pat, ctx)
    entries += history.medications(record, pat, qr, ctx)
    entries += history.conditions(record, pat, ctx)
    entries += history.prior_treatments(record, pat, ctx)
    done = treatments.treatments(record, pat, ctx)
    entries += done.values()
    entries += treatments.notes(record, pat, ctx)
    entries += consent.consents(record, pat, guardian, org, ctx, doctor)
    entries += photos.photo_entries(client.client_id, list(photo_inputs), pat, done, ctx)
    practitioners = sorted({t.practitioner for t in record.treatments if t.practitioner})
    entries.append(provenance(entries[1:], source, client.client_id, org, ctx, practitioners))
    return entries


def bundle_entry(item: Entry) -> dict[str, Any]:
    return {
        "fullUrl": item.full_url,
        "resource": item.resource,
        "request": {
            "method": "POST",
            "url": item.resource["resourceType"],
            "ifNoneExist": item.if_none_exist,
        },
    }


def transaction(entries: list[Entry]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [bundle_entry(e) for e in entries],
    }

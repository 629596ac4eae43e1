"""The spa's own treatment records → Procedure; consultation notes → DocumentReference.

Follows hl7.org/fhir/R4/procedure.html and documentreference.html. R4 Procedure
has no element for the product's lot and amount, so they ride in the project
extension ``treatment-product`` (documented in mappings/README.md).
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, identifier, organization_ref
from symfhir.model import SpaRecord

PRODUCT_EXTENSION = "http://symfhir.org/fhir/StructureDefinition/treatment-product"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def _when(value: date | datetime, ctx: MappingContext) -> str:
    """A treatment time becomes an aware instant; a bare date stays a date."""
    return ctx.instant(value) if isinstance(value, datetime) else value.isoformat()


def treatments(record: SpaRecord, patient: Entry, ctx: MappingContext) -> dict[str, Entry]:
    """Procedures keyed by the treatment id (photos link to them)."""
    out: dict[str, Entry] = {}
    for t in record.treatments:
        ident = identifier(ctx, "treatment", f"{record.client.client_id}-{t.id}")
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "identifier": [ident],
            "status": "completed",
            "code": ctx.concept("treatment", t.treatment),
            "subject": patient.reference,
            "performedDateTime": _when(t.date, ctx),
        }
        if t.practitioner or t.practitioner_npi:
            actor: dict[str, Any] = {}
            if t.practitioner:
                actor["display"] = t.practitioner
            if t.practitioner_npi:
                actor["identifier"] = {"system": NPI_SYSTEM, "value": t.practitioner_npi}
            resource["performer"] = [{"actor": actor, "onBehalfOf": organization_ref(ctx)}]
        if t.body_sites:
            resource["bodySite"] = [ctx.concept("body_site", s) for s in t.body_sites]
        if t.product:
            resource["usedCode"] = [{"text": t.product}]
        product_parts: list[dict[str, Any]] = []
        if t.product:
            product_parts.append({"url": "name", "valueString": t.product})
        if t.lot:
            product_parts.append({"url": "lot", "valueString": t.lot})
        if t.amount is not None:
            quantity: dict[str, Any] = {"value": float(t.amount)}
            if t.unit:
                unit = ctx.coding("unit", t.unit)
                quantity.update(
                    unit=unit.get("display", t.unit), system=unit["system"], code=unit["code"]
                )
            product_parts.append({"url": "amount", "valueQuantity": quantity})
        if product_parts:
            resource["extension"] = [{"url": PRODUCT_EXTENSION, "extension": product_parts}]
        if t.notes:
            resource["note"] = [{"text": t.notes}]
        out[t.id] = entry(resource, ident)
    return out


def notes(record: SpaRecord, patient: Entry, ctx: MappingContext) -> list[Entry]:
    out = []
    cid = record.client.client_id
    for note in record.notes:
        when = ctx.instant(note.date)
        ident = identifier(ctx, "note", digest(cid, when, note.text))
        data = base64.b64encode(note.text.encode("utf-8")).decode("ascii")
        resource: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "identifier": [ident],
            "status": "current",
            "type": ctx.concept("document_type", "consultation_note"),
            "subject": patient.reference,
            "date": when,
            "custodian": organization_ref(ctx),
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": data,
                        "title": "Consultation note",
                        "creation": when,
                    }
                }
            ],
        }
        if note.author:
            resource["author"] = [{"display": note.author}]
        out.append(entry(resource, ident))
    return out

"""The intake as answered: SpaRecord → QuestionnaireResponse for the intake Questionnaire.

The response mirrors the Questionnaire in ``mappings/intake-questionnaire.json``
(hl7.org/fhir/R4/questionnaireresponse.html): same linkIds, same nesting, no
item for an unanswered question. Extraction of Observations from it lives in
``extract.py``.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, entry, identifier
from symfhir.model import ContactPerson, SpaRecord

Answers = dict[str, Any]  # linkId → list of answer dicts, or list of Answers for repeating groups


def _s(value: str | None) -> list[dict[str, Any]]:
    return [{"valueString": value}] if value else []


def _c(ctx: MappingContext, valueset: str, key: str | None) -> list[dict[str, Any]]:
    return [{"valueCoding": ctx.coding(valueset, key)}] if key else []


def _person(prefix: str, person: ContactPerson | None, ctx: MappingContext) -> Answers:
    if person is None:
        return {}
    return {
        f"{prefix}.name": _s(person.name),
        f"{prefix}.relationship": _c(ctx, "relationship", person.relationship),
        f"{prefix}.phone": _s(person.phone),
    }


def record_answers(record: SpaRecord, ctx: MappingContext) -> Answers:
    """The record's intake answers keyed by linkId."""
    client, health = record.client, record.health
    phone = next(iter(client.phones.values()), None)
    address = None
    if client.address:
        a = client.address
        address = ", ".join(p for p in [*a.lines, a.city, a.state, a.postal_code, a.country] if p)
    answers: Answers = {
        "client.given": _s(client.given_name),
        "client.family": _s(client.family_name),
        "client.birth_date": [{"valueDate": client.birth_date.isoformat()}],
        "client.sex": _c(ctx, "sex", client.sex),
        "client.email": _s(client.email),
        "client.phone": _s(phone),
        "client.address": _s(address),
        "client.language": _c(ctx, "language", client.preferred_language),
        **_person("emergency", client.emergency_contact, ctx),
        **_person("guardian", client.guardian, ctx),
        "history.conditions": [{"valueString": c} for c in health.conditions],
        "history.medications": [
            {
                "medication.name": _s(m.name),
                "medication.kind": _c(ctx, "medication_kind", m.kind),
                "medication.dose": _s(m.dose),
            }
            for m in health.medications
        ],
        "history.allergies": [
            {
                "allergy.substance": _s(a.substance),
                "allergy.reaction": _s(a.reaction),
                "allergy.severity": _c(ctx, "allergy_severity", a.severity),
            }
            for a in health.allergies
        ],
        "history.prior_treatments": [
            {
                "prior.what": _s(p.what),
                "prior.when": [{"valueDate": p.when}] if p.when else [],
                "prior.where": _s(p.where),
            }
            for p in health.prior_treatments
        ],
        "skin.type": _c(ctx, "skin_type", health.skin_type),
        "skin.concerns": [
            {"valueCoding": ctx.coding("skin_concern", k)} for k in health.skin_concerns
        ],
        "safety.pregnancy": _c(ctx, "pregnancy_status", health.pregnancy),
        "safety.breastfeeding": _c(ctx, "breastfeeding", health.breastfeeding),
        "safety.smoking": _c(ctx, "smoking", health.smoking),
        "safety.contraindications": [
            {"valueCoding": ctx.coding("contraindication", k)} for k in health.contraindications
        ],
    }
    return answers


def _response_items(items: list[dict[str, Any]], answers: Answers) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        link_id = item["linkId"]
        if item.get("type") == "group":
            if item.get("repeats"):
                for instance in answers.get(link_id, []):
                    children = _response_items(item.get("item", []), instance)
                    if children:
                        out.append({"linkId": link_id, "text": item.get("text"), "item": children})
            else:
                children = _response_items(item.get("item", []), answers)
                if children:
                    out.append({"linkId": link_id, "text": item.get("text"), "item": children})
            continue
        given = answers.get(link_id) or []
        if given:
            out.append({"linkId": link_id, "text": item.get("text"), "answer": list(given)})
    for node in out:
        if node["text"] is None:
            del node["text"]
    return out


def questionnaire_response(record: SpaRecord, patient: Entry, ctx: MappingContext) -> Entry:
    """The intake QuestionnaireResponse; unanswered questions are left out, as SDC expects."""
    q = ctx.questionnaire
    client_id = record.client.client_id
    intake = record.health.intake_date.isoformat()
    ident = identifier(ctx, "intake", f"{client_id}-{intake}")
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "identifier": ident,
        "questionnaire": f"{q['url']}|{q['version']}" if q.get("version") else q["url"],
        "status": "completed",
        "subject": patient.reference,
        "authored": intake,
        "author": patient.reference,
        "source": patient.reference,
        "item": _response_items(q.get("item", []), record_answers(record, ctx)),
    }
    return entry(resource, ident)

"""ConsentRecord → Consent, one per kind, declined and withdrawn ones included.

Follows hl7.org/fhir/R4/consent.html with the templates of
``mappings/consent-kinds.yaml``. A declined consent is stored as ``rejected``
(with a ``deny`` provision), never omitted; a withdrawal is status
``inactive`` with the provision's period ending on the withdrawal date.
"""

from __future__ import annotations

import base64
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, entry, identifier
from symfhir.model import ConsentRecord, SpaRecord

STATUS = {"given": "active", "declined": "rejected", "withdrawn": "inactive"}


def _concept(coding: dict[str, Any] | list[Any]) -> dict[str, Any]:
    codings = coding if isinstance(coding, list) else [coding]
    return {"coding": [{k: str(v) for k, v in c.items()} for c in codings]}


def _actor_ref(who: str, record: SpaRecord, org: Entry) -> dict[str, Any]:
    if who == "physician":
        physician = record.client.physician
        return {"display": physician.name if physician else "the client's physician"}
    if who == "public":
        return {"display": "the public (website, social media, publications)"}
    return org.reference


def _provision(
    consent: ConsentRecord,
    template: dict[str, Any],
    record: SpaRecord,
    org: Entry,
    ctx: MappingContext,
) -> dict[str, Any]:
    spec = template.get("provision") or {}
    provision: dict[str, Any] = {"type": "deny" if consent.status == "declined" else "permit"}
    period: dict[str, str] = {"start": consent.date.isoformat()}
    if consent.withdrawn_on:
        period["end"] = consent.withdrawn_on.isoformat()
    provision["period"] = period
    actors = []
    for actor in spec.get("actor", []):
        actors.append(
            {
                "role": _concept(actor["role"]),
                "reference": _actor_ref(actor.get("who", "organization"), record, org),
            }
        )
    if actors:
        provision["actor"] = actors
    if spec.get("action"):
        provision["action"] = [_concept(a) for a in spec["action"]]
    if spec.get("purpose"):
        provision["purpose"] = [{k: str(v) for k, v in p.items()} for p in spec["purpose"]]
    if spec.get("class"):
        provision["class"] = [{k: str(v) for k, v in c.items()} for c in spec["class"]]
    if spec.get("code"):
        provision["code"] = [_concept(c) for c in spec["code"]]
    return provision


def consents(
    record: SpaRecord, patient: Entry, guardian: Entry | None, org: Entry, ctx: MappingContext
) -> list[Entry]:
    out = []
    for kind, consent in record.consents.items():
        spec = ctx.consent_kinds.kinds[kind]
        template = spec.template
        ident = identifier(ctx, "consent", f"{record.client.client_id}-{kind}-{consent.date}")
        signer = guardian if consent.signer == "guardian" and guardian else patient
        resource: dict[str, Any] = {
            "resourceType": "Consent",
            "identifier": [ident],
            "status": STATUS[consent.status],
            "scope": _concept(template["scope"]),
            "category": [_concept(c) for c in template.get("category", [])],
            "patient": patient.reference,
            "dateTime": ctx.instant(consent.date),
            "performer": [signer.reference],
            "organization": [org.reference],
            "policy": [{"uri": ctx.consent_kinds.policy_uri_for(kind, consent.policy_version)}],
            "provision": _provision(consent, template, record, org, ctx),
        }
        if template.get("policy_rule"):
            resource["policyRule"] = _concept(template["policy_rule"])
        if consent.form is not None:
            resource["sourceAttachment"] = {
                "contentType": consent.form.content_type,
                "data": _b64(consent.form.data),
                "size": consent.form.size,
                "hash": consent.form.sha1_b64,
                "title": f"Signed form: {spec.label}",
                "creation": ctx.instant(consent.date),
            }
        out.append(entry(resource, ident))
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

"""ConsentRecord → Consent, one per kind, declined and withdrawn ones included.

Follows hl7.org/fhir/R4/consent.html with the templates of
``mappings/consent-kinds.yaml``. A declined consent is stored as ``rejected``
(with a ``deny`` provision), never omitted; a withdrawal is status
``inactive`` with the provision's period ending on the withdrawal date.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from symfhir.mapping.context import MappingContext
from symfhir.mapping.derived import Derived
from symfhir.mapping.refs import Entry, entry, identifier
from symfhir.model import ConsentRecord, SpaRecord

STATUS = {"given": "active", "declined": "rejected", "withdrawn": "inactive"}


def _concept(coding: dict[str, Any] | list[Any]) -> dict[str, Any]:
    codings = coding if isinstance(coding, list) else [coding]
    return {"coding": [{k: str(v) for k, v in c.items()} for c in codings]}


def _actor_ref(who: str, record: SpaRecord, org: Entry, physician: Entry | None) -> dict[str, Any]:
    if who == "physician":
        # The Practitioner on file, so that sharing knows whom the client agreed to.
        named = record.client.physician
        if physician is not None:
            ref = dict(physician.reference)
            if named:
                ref["display"] = named.name
            return ref
        return {"display": named.name if named else "the client's physician"}
    if who == "public":
        return {"display": "the public (website, social media, publications)"}
    return org.reference


class _Parts:
    """A consent kind's fixed parts, built once: the codes every Consent of the kind repeats.

    Kept as JSON bytes and parsed for each Consent (orjson, in C): each resource gets
    its own dicts, at a fraction of the cost of rebuilding them from the template.
    """

    def __init__(self, template: dict[str, Any]) -> None:
        spec = template.get("provision") or {}
        fixed: dict[str, Any] = {
            "scope": _concept(template["scope"]),
            "category": [_concept(c) for c in template.get("category", [])],
            "roles": [_concept(actor["role"]) for actor in spec.get("actor", [])],
            "provision": {},
        }
        if spec.get("action"):
            fixed["provision"]["action"] = [_concept(a) for a in spec["action"]]
        if spec.get("purpose"):
            purpose = [{k: str(v) for k, v in p.items()} for p in spec["purpose"]]
            fixed["provision"]["purpose"] = purpose
        if spec.get("class"):
            fixed["provision"]["class"] = [{k: str(v) for k, v in c.items()} for c in spec["class"]]
        if spec.get("code"):
            fixed["provision"]["code"] = [_concept(c) for c in spec["code"]]
        if template.get("policy_rule"):
            fixed["policyRule"] = _concept(template["policy_rule"])
        self.json = orjson.dumps(fixed)
        self.actors = [actor.get("who", "organization") for actor in spec.get("actor", [])]

    def fresh(self) -> dict[str, Any]:
        return orjson.loads(self.json)


_parts: Derived[dict[str, Any], _Parts] = Derived(_Parts, limit=64)


def _provision(
    consent: ConsentRecord,
    parts: _Parts,
    fixed: dict[str, Any],
    record: SpaRecord,
    org: Entry,
    physician: Entry | None,
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny" if consent.status == "declined" else "permit"}
    period: dict[str, str] = {"start": consent.date.isoformat()}
    if consent.withdrawn_on:
        period["end"] = consent.withdrawn_on.isoformat()
    provision["period"] = period
    actors = [
        {"role": role, "reference": _actor_ref(who, record, org, physician)}
        for role, who in zip(fixed["roles"], parts.actors, strict=True)
    ]
    if actors:
        provision["actor"] = actors
    provision.update(fixed["provision"])
    return provision


def consents(
    record: SpaRecord,
    patient: Entry,
    guardian: Entry | None,
    org: Entry,
    ctx: MappingContext,
    physician: Entry | None = None,
) -> list[Entry]:
    """One Consent per kind of ``record``; ``physician`` (the client's Practitioner) is the
    information recipient (IRCP) of a physician-sharing Consent."""
    out = []
    for kind, consent in record.consents.items():
        spec = ctx.consent_kinds.kinds[kind]
        parts = _parts(spec.template)
        fixed = parts.fresh()
        ident = identifier(ctx, "consent", f"{record.client.client_id}-{kind}-{consent.date}")
        signer = guardian if consent.signer == "guardian" and guardian else patient
        resource: dict[str, Any] = {
            "resourceType": "Consent",
            "identifier": [ident],
            "status": STATUS[consent.status],
            "scope": fixed["scope"],
            "category": fixed["category"],
            "patient": patient.reference,
            "dateTime": ctx.instant(consent.date),
            "performer": [signer.reference],
            "organization": [org.reference],
            "policy": [{"uri": ctx.consent_kinds.policy_uri_for(kind, consent.policy_version)}],
            "provision": _provision(consent, parts, fixed, record, org, physician),
        }
        if "policyRule" in fixed:
            resource["policyRule"] = fixed["policyRule"]
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

"""The entries of one intake submission: QuestionnaireResponse, Observations, Provenance."""

from __future__ import annotations

from typing import Any

from symfhir.mapping import extract
from symfhir.mapping.context import MappingContext
from symfhir.mapping.patient import organization
from symfhir.mapping.provenance import AGENT_TYPE, provenance
from symfhir.mapping.refs import Entry, entry, identifier, organization_ref


def submission_entries(
    questionnaire: dict[str, Any],
    response: dict[str, Any],
    patient_id: str,
    ctx: MappingContext,
) -> list[Entry]:
    """QuestionnaireResponse, its extracted Observations (SDC observation-based extraction, as
    the importer does) and a Provenance naming the practitioner, for one transaction.

    Every entry is about ``Patient/patient_id``; the Provenance targets only urn:uuids of the
    same Bundle; the spa Organization is named by identifier (a patient-scoped launch may not
    create it)."""
    ident = identifier(ctx, "intake", f"{patient_id}-{response['authored']}")
    qr = entry({**response, "identifier": ident}, ident)
    observations = extract.observations(questionnaire, qr.resource, qr, patient_id, ctx)
    org = organization(ctx)
    prov = provenance([qr, *observations], "symfhir intake form", patient_id, org, ctx)
    org_ref = organization_ref(ctx)
    for agent in prov.resource["agent"]:
        for key in ("who", "onBehalfOf"):
            if agent.get(key) == org.reference:
                agent[key] = org_ref
    author = response.get("author")
    if author:
        prov.resource["agent"].append(
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "author"}]},
                "who": dict(author),
                "onBehalfOf": org_ref,
            }
        )
    prov.resource["entity"][0]["what"]["display"] = "intake form entered in symfhir"
    return [qr, *observations, prov]

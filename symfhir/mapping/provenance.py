"""Provenance: which source record produced these resources, by whom, and when.

Follows hl7.org/fhir/R4/provenance.html. Provenance has no identifier element,
so its conditional create keys on a tag derived from the source record.
"""

from __future__ import annotations

from typing import Any

from symfhir.mapping.context import SYMFHIR_VERSION, MappingContext
from symfhir.mapping.refs import Entry, digest, tagged_entry

AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
SOURCE_SYSTEM = "http://symfhir.org/fhir/sid/source-record"


def provenance(
    targets: list[Entry],
    source: str,
    client_id: str,
    org: Entry,
    ctx: MappingContext,
    practitioners: list[str] | None = None,
) -> Entry:
    """One Provenance for everything mapped from ``source`` (e.g. ``clients.csv row 4``)."""
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": AGENT_TYPE, "code": "assembler"}]},
            "who": {"display": f"symfhir {SYMFHIR_VERSION}"},
            "onBehalfOf": org.reference,
        },
        {
            "type": {"coding": [{"system": AGENT_TYPE, "code": "custodian"}]},
            "who": org.reference,
        },
    ]
    for name in practitioners or []:
        agents.append(
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "performer"}]},
                "who": {"display": name},
                "onBehalfOf": org.reference,
            }
        )
    resource = {
        "resourceType": "Provenance",
        "target": [t.reference for t in targets],
        "recorded": ctx.now.isoformat(),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE"}]},
        "agent": agents,
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": SOURCE_SYSTEM, "value": source},
                    "display": "spa export record",
                },
            }
        ],
    }
    key = digest(client_id, *sorted(t.full_url for t in targets))
    return tagged_entry(resource, f"provenance-{key}")

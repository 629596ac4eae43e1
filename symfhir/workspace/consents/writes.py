"""What every consent write carries: the practitioner's Provenance, and an R4 check (pure)."""

from __future__ import annotations

from typing import Any

from symfhir.errors import FhirValidationError
from symfhir.mapping.context import SYMFHIR_VERSION, MappingContext
from symfhir.mapping.provenance import AGENT_TYPE, DATA_OPERATION
from symfhir.mapping.refs import Entry, organization_ref, tagged_entry
from symfhir.validation import FastValidator

_VALIDATOR = FastValidator()


def provenance_entry(
    targets: list[dict[str, Any]],
    activity: str,
    fhir_user: str | None,
    ctx: MappingContext,
    *,
    key: str,
) -> Entry:
    """A Provenance (hl7.org/fhir/R4/provenance.html) of a workspace write: the practitioner
    (fhirUser) as author, symfhir as assembler, the spa as custodian."""
    author: dict[str, Any] = {
        "type": {"coding": [{"system": AGENT_TYPE, "code": "author", "display": "Author"}]},
        "who": {"reference": fhir_user} if fhir_user else {"display": "unknown practitioner"},
    }
    resource = {
        "resourceType": "Provenance",
        "target": targets,
        "recorded": ctx.now.isoformat(),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": activity}]},
        "agent": [
            author,
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "assembler"}]},
                "who": {"display": f"symfhir {SYMFHIR_VERSION}"},
            },
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "custodian"}]},
                "who": organization_ref(ctx),
            },
        ],
    }
    return tagged_entry(resource, key)


def check_valid(resources: list[dict[str, Any]]) -> None:
    """Raise FhirValidationError when any resource is not valid R4 (FastValidator)."""
    problems = [
        (f"{r.get('resourceType')}.{p.path}", p.message)
        for r in resources
        for p in _VALIDATOR.validate(r)
    ]
    if problems:
        raise FhirValidationError(problems)

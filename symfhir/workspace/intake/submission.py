"""One intake submission as one transaction: the QuestionnaireResponse, its extracted
Observations and history resources, the versioned updates of history resources, a Provenance.

Observations follow SDC observation-based extraction (``symfhir.mapping.extract``); the
history resources SDC definition-based extraction (``history``), compared with the server's
(``reconcile``). hl7.org/fhir/R4/http.html#transaction: everything or nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from symfhir.mapping import extract
from symfhir.mapping.bundle import bundle_entry
from symfhir.mapping.context import MappingContext
from symfhir.mapping.patient import organization
from symfhir.mapping.provenance import AGENT_TYPE, provenance
from symfhir.mapping.refs import Entry, digest, entry, identifier, organization_ref
from symfhir.workspace.intake.history import Extracted, history_entries
from symfhir.workspace.intake.reconcile import Changes, Update, reconcile


@dataclass(frozen=True)
class HistoryState:
    """What the history extraction is compared with: the client's key (the Patient's spa
    client id, else its server id), the previous intake's facts and the server's resources."""

    client_key: str
    previous: list[Extracted] = field(default_factory=list)
    found: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Submission:
    """The transaction's parts: conditional creates, versioned updates, the Provenance."""

    creates: list[Entry]
    updates: list[Update]
    provenance: Entry

    @property
    def entries(self) -> list[Entry]:
        """The created entries, Provenance last."""
        return [*self.creates, self.provenance]

    def types(self, method: str) -> list[str]:
        """The resource types this submission creates (``c``) or updates (``u``)."""
        if method == "u":
            found = [u.resource["resourceType"] for u in self.updates]
        else:
            found = [e.resource["resourceType"] for e in self.entries]
        return sorted(set(found))

    def resources(self) -> list[dict[str, Any]]:
        return (
            [e.resource for e in self.creates]
            + [u.resource for u in self.updates]
            + [self.provenance.resource]
        )

    def bundle(self) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                *(bundle_entry(e) for e in self.creates),
                *(u.bundle_entry() for u in self.updates),
                bundle_entry(self.provenance),
            ],
        }


def submission(
    questionnaire: dict[str, Any],
    response: dict[str, Any],
    patient_id: str,
    ctx: MappingContext,
    facts: Sequence[Extracted] = (),
    state: HistoryState | None = None,
) -> Submission:
    """The QuestionnaireResponse, its Observations (as the importer extracts them), the history
    ``facts`` (``history.extract_history``) not yet on the server, the updates ``reconcile``
    finds against ``state`` (None: nothing known on the server), and a Provenance naming the
    practitioner that targets all of them, with a ``revision`` entity per update saying what
    changed.

    Every entry is about ``Patient/patient_id``; the spa Organization is named by identifier
    (a patient-scoped launch may not create it)."""
    # Keyed by time and answers: a double submit of one form stores one response, two
    # different saves within the same second store two.
    answers = orjson.dumps(response.get("item", []), option=orjson.OPT_SORT_KEYS).decode()
    ident = identifier(
        ctx, "intake", f"{patient_id}-{response['authored']}-{digest(patient_id, answers)}"
    )
    qr = entry({**response, "identifier": ident}, ident)
    observations = extract.observations(questionnaire, qr.resource, qr, patient_id, ctx)
    state = state or HistoryState(patient_id)
    patient = Entry({}, f"Patient/{patient_id}", "")
    day = date.fromisoformat(str(response["authored"])[:10])
    listed = history_entries(list(facts), state.client_key, day, patient, qr, ctx)
    previous = history_entries(state.previous, state.client_key, day, patient, qr, ctx)
    changes: Changes = reconcile(listed, previous, state.found, patient_id)
    creates = [qr, *observations, *changes.creates]
    prov = _provenance(creates, changes.updates, response, patient_id, ctx)
    return Submission(creates, changes.updates, prov)


def _provenance(
    creates: list[Entry],
    updates: list[Update],
    response: dict[str, Any],
    patient_id: str,
    ctx: MappingContext,
) -> Entry:
    org = organization(ctx)
    prov = provenance(creates, "symfhir intake form", patient_id, org, ctx)
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
    for update in updates:
        prov.resource["target"].append(update.reference)
        # The version it replaces: a target with a revision entity was updated, else created.
        prov.resource["entity"].append(
            {
                "role": "revision",
                "what": {
                    "reference": f"{update.path}/_history/{update.version}",
                    "display": update.change,
                },
            }
        )
    return prov

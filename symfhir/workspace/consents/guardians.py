"""Who signs for a minor: the parents and guardians on file, the choice made, a new one (pure).

The guardian is a RelatedPerson (hl7.org/fhir/R4/relatedperson.html), as
``symfhir.mapping.patient.related_person`` writes it at import: ``patient`` links it to the
client, ``relationship`` carries the contact role (v3-RoleCode GUARD) and the relationship
(mother, father, parent, guardian...). A guardian chosen at the desk must be one the page read
for the launched client; "someone else" becomes a new RelatedPerson, a conditional create in
the capture's transaction, with a business identifier that names no one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from symfhir.cardnumbers import has_card_number
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.reading import human_name
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, identifier
from symfhir.workspace.consents.signature import CARD_NUMBER, checked_name

#: The form's value for "someone else" (a chosen RelatedPerson is ``RelatedPerson/<id>``).
NEW = "new"
#: Relationships a new guardian may have (keys of terminology ``relationship``), as labelled.
NEW_RELATIONSHIPS: dict[str, str] = {"parent": "Parent", "guardian": "Legal guardian"}
#: Relationships (keys of terminology ``relationship``) that make a RelatedPerson on file one
#: who may sign for a minor; the contact role ``guardian`` counts too. Anyone else (a
#: spouse, a friend as emergency contact) is not offered.
SIGNING_RELATIONSHIPS = ("guardian", "parent", "mother", "father")


@dataclass(frozen=True)
class Guardian:
    """A parent or guardian: on file (``id`` set, ``relationship`` its label) or new (``id``
    empty, ``relationship`` a key of NEW_RELATIONSHIPS)."""

    name: str
    relationship: str
    id: str = ""

    @property
    def on_file(self) -> bool:
        return bool(self.id)

    @property
    def choice(self) -> str:
        """The value of this guardian's option in the capture form."""
        return f"RelatedPerson/{self.id}" if self.id else NEW


def _signing_codes(ctx: MappingContext) -> set[tuple[str, str]]:
    codings = [ctx.coding("relationship", key) for key in SIGNING_RELATIONSHIPS]
    codings.append(ctx.coding("contact_role", "guardian"))
    return {(c["system"], c["code"]) for c in codings}


def _relationship_label(concepts: Iterable[Any]) -> str:
    labels: list[str] = []
    for concept in concepts:
        if not isinstance(concept, Mapping):
            continue
        codings = [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]
        label = concept.get("text") or next((c.get("display") for c in codings), "")
        if label and label not in labels:
            labels.append(str(label))
    return ", ".join(labels)


def guardians_on_file(
    resources: Iterable[Mapping[str, Any]], patient_id: str, ctx: MappingContext
) -> list[Guardian]:
    """The RelatedPersons of ``patient_id`` whose relationship is a parent or guardian kind
    (SIGNING_RELATIONSHIPS or the contact role guardian), by name; inactive ones and those of
    another patient are left out."""
    codes = _signing_codes(ctx)
    out = []
    for resource in resources:
        if resource.get("resourceType") != "RelatedPerson" or not resource.get("id"):
            continue
        if resource.get("active") is False or not in_compartment(resource, patient_id):
            continue
        concepts = [c for c in resource.get("relationship") or [] if isinstance(c, Mapping)]
        found = {
            (str(c.get("system")), str(c.get("code")))
            for concept in concepts
            for c in concept.get("coding") or []
            if isinstance(c, Mapping)
        }
        if not found & codes:
            continue
        name = human_name(resource.get("name")) or "(no name on file)"
        out.append(Guardian(name, _relationship_label(concepts), str(resource["id"])))
    return sorted(out, key=lambda g: (g.name.casefold(), g.id))


def parse_guardian(
    form: Mapping[str, str], guardians: Sequence[Guardian], *, may_add: bool = True
) -> tuple[Guardian | None, dict[str, str]]:
    """The guardian who signs: (Guardian, {}) or (None, {field: message}).

    Fields: guardian (``RelatedPerson/<id>`` of one of ``guardians``, or ``new``), and for a
    new one guardian_name and guardian_relationship (a key of NEW_RELATIONSHIPS). A choice not
    among ``guardians`` (another client's, or one never read) is an error, never a write;
    ``may_add`` False (the session may not create a RelatedPerson) refuses a new one.
    """
    choice = (form.get("guardian") or "").strip()
    if choice != NEW:
        chosen = next((g for g in guardians if g.choice == choice), None)
        if chosen is not None:
            return chosen, {}
        if not choice:
            return None, {"guardian": "Choose the parent or guardian who signs."}
        return None, {
            "guardian": "That person is not a parent or guardian on this client's record: "
            "choose one from the list, or someone else."
        }
    errors: dict[str, str] = {}
    if not may_add:
        errors["guardian"] = (
            "This session may not add a parent or guardian to the record: choose one on file."
        )
    name = checked_name(form.get("guardian_name"))
    if name is None:
        errors["guardian-name"] = "The name has control characters or is too long."
    elif not name:
        errors["guardian-name"] = "Enter the parent's or guardian's full name."
    elif has_card_number(name):
        errors["guardian-name"] = CARD_NUMBER
    relationship = (form.get("guardian_relationship") or "").strip()
    if relationship not in NEW_RELATIONSHIPS:
        errors["guardian-relationship"] = "Choose parent or legal guardian."
    if errors or not name:
        return None, errors
    return Guardian(name, relationship), {}


def guardian_entry(guardian: Guardian, patient_id: str, ctx: MappingContext) -> Entry:
    """A new guardian as a RelatedPerson of the patient, built like the import's
    (``symfhir.mapping.patient.related_person``): contact role guardian and the relationship.
    Its identifier is a digest of the patient, name and relationship (a name in an
    ``ifNoneExist`` URL would be PHI in server logs): the same person entered twice is one
    RelatedPerson."""
    key = digest(f"Patient/{patient_id}", guardian.name, guardian.relationship)
    ident = identifier(ctx, "related-person", f"{patient_id}-guardian-{key}")
    relationship = [ctx.concept("contact_role", "guardian")]
    kind = ctx.concept("relationship", guardian.relationship)
    if kind["coding"] != relationship[0]["coding"]:
        relationship.append(kind)
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "identifier": [ident],
        "active": True,
        "patient": {"reference": f"Patient/{patient_id}"},
        "relationship": relationship,
        "name": [{"text": guardian.name}],
    }
    return entry(resource, ident)

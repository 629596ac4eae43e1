"""Capture of a consent at the desk: the checked form, the Consent and its Provenance (pure).

The Consent itself is built by ``symfhir.mapping.consent`` from a ``ConsentRecord`` (the
templates of ``mappings/consent-kinds.yaml``); a capture adds what an import has not: the
exact capture instant (``ctx.now``), who signed, and the signed form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from symfhir.cardnumbers import has_card_number
from symfhir.consent_kinds import ConsentKinds
from symfhir.mapping import consent as consent_mapping
from symfhir.mapping.bundle import transaction
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest, entry, organization_ref
from symfhir.model import ConsentRecord, SpaRecord
from symfhir.model.age import ADULT_AGE
from symfhir.model.client import Client
from symfhir.model.consent import SignedForm
from symfhir.sharing.scopes import load_sharing
from symfhir.workspace.consents.guardians import Guardian, guardian_entry, parse_guardian
from symfhir.workspace.consents.sharing_terms import (
    SharingTerms,
    apply_terms,
    parse_sharing_terms,
    physician_entries,
)
from symfhir.workspace.consents.signature import CARD_NUMBER, checked_name, signature_form
from symfhir.workspace.consents.status import current_policy_version, is_minor
from symfhir.workspace.consents.writes import check_valid, provenance_entry

# A policy version ends up in Consent.policy.uri: keep it to URL-safe characters.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")

#: Policy §9 serves adults, and a minor only with a guardian's consent: who must sign is
#: settled before anyone signs.
UNKNOWN_AGE = (
    "The client's date of birth is not on file in full (Patient.birthDate), so it is not "
    'known whether a parent or guardian must sign: record the client\'s "Date of birth" '
    "(Intake) before a consent is signed."
)

#: The kind whose capture also records scopes, a date range and the physician.
KIND_SHARING = "physician_sharing"

Decision = Literal["given", "declined"]
Signer = Literal["client", "guardian"]
DECISIONS: tuple[str, ...] = ("given", "declined")
SIGNERS: tuple[str, ...] = ("client", "guardian")


@dataclass(frozen=True)
class Capture:
    """A validated capture form."""

    kind: str
    decision: Decision
    signer: Signer
    signer_name: str
    policy_version: str
    form: SignedForm
    typed: bool  # the signature was typed, not drawn
    guardian: Guardian | None = None  # who signs when the signer is the guardian
    #: A given physician-sharing consent's scopes, date range and (new) physician.
    sharing: SharingTerms | None = None


def parse_capture(
    form: Mapping[str, str],
    kinds: ConsentKinds,
    ctx: MappingContext,
    age: int | None,
    guardians: Sequence[Guardian] = (),
    *,
    may_add_guardian: bool = True,
    physician_on_file: bool = False,
) -> tuple[Capture | None, dict[str, str]]:
    """The capture form's fields, checked: (Capture, {}) or (None, {field: message}).

    Fields: kind, decision (given|declined), signer (client|guardian), signer_name (the
    client's, when the client signs), signature_data (a PNG data URL drawn on the pad) or
    typed_signature (a typed name, rendered to a PNG), policy_version (default: the kind's
    current version; any other must be one of the kind's ``earlier_versions``). ``age`` is
    ``status.patient_age``'s: unknown (None) is refused until the birth date is on file; a
    minor (``age`` < 18) must be signed for by the guardian: one of ``guardians`` (those on file
    for the client) or someone else, named with a relationship (``guardians.parse_guardian``).
    A given physician-sharing consent also has its scopes, date range and, when no
    physician is on file (``physician_on_file``), the physician
    (``sharing_terms.parse_sharing_terms``).
    Error keys are the ids' suffixes of the page's error spans (``err-<key>``).
    """
    errors: dict[str, str] = {}
    kind = (form.get("kind") or "").strip()
    if kind not in kinds.kinds:
        errors["kind"] = "Choose a consent kind."
    decision = (form.get("decision") or "").strip()
    if decision not in DECISIONS:
        errors["decision"] = "Choose whether the consent is given or declined."
    signer = (form.get("signer") or "").strip()
    name = checked_name(form.get("signer_name"))
    if signer not in SIGNERS:
        errors["signer"] = "Choose who signs: the client or a parent or guardian."
    elif age is None:
        errors["signer"] = UNKNOWN_AGE
    elif is_minor(age) and signer != "guardian":
        errors["signer"] = f"The client is under {ADULT_AGE}: a parent or guardian must sign."
    if name is None:
        errors["signer-name"] = "The name has control characters or is too long."
    elif has_card_number(name):
        errors["signer-name"] = CARD_NUMBER
    guardian = None
    if signer == "guardian":
        guardian, problems = parse_guardian(form, guardians, may_add=may_add_guardian)
        errors.update(problems)
    version = (form.get("policy_version") or "").strip()
    if not version and kind in kinds.kinds:
        version = current_policy_version(kinds.kinds[kind], ctx)
    if not _VERSION.fullmatch(version):
        errors["policy-version"] = (
            "Enter the policy version (letters, digits, dots, dashes; up to 40 characters)."
        )
    elif kind in kinds.kinds:
        known = kinds.kinds[kind].known_versions(ctx.spa.privacy_policy_version)
        if version not in known:
            errors["policy-version"] = (
                f"{kinds.kinds[kind].label} has no policy version {version}: "
                f"use {' or '.join(known)}."
            )
    signed, typed, problem = signature_form(
        form.get("signature_data") or "", form.get("typed_signature") or ""
    )
    if problem:
        errors["signature"] = problem
    terms = None
    if kind == KIND_SHARING and decision == "given":
        terms, problems = parse_sharing_terms(
            form, load_sharing(), physician_on_file=physician_on_file
        )
        errors.update(problems)
    if errors or signed is None:
        return None, errors
    return (
        Capture(
            kind=kind,
            decision=decision,  # type: ignore[arg-type]  # checked against DECISIONS
            signer=signer,  # type: ignore[arg-type]  # checked against SIGNERS
            signer_name=guardian.name if guardian else name or "",
            policy_version=version,
            form=signed,
            typed=typed,
            guardian=guardian,
            sharing=terms,
        ),
        {},
    )


@dataclass(frozen=True)
class _Logical(Entry):
    """An Entry for a resource that is not in the Bundle: its reference is given as is."""

    ref: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> dict[str, Any]:
        return self.ref


def capture_entries(
    capture: Capture,
    patient_id: str,
    fhir_user: str | None,
    kinds: ConsentKinds,
    ctx: MappingContext,
    basis: str = "",
    physician: Mapping[str, Any] | None = None,
) -> list[Entry]:
    """The Consent (built by ``symfhir.mapping.consent`` from a ConsentRecord) and its
    Provenance, as conditional creates: a double submit of the same form writes nothing new.
    ``basis`` names the kind's current Consent as the page showed it (``id/version``): the
    same consent given again after a withdrawal is a new Consent, not the withdrawn one.
    A guardian who signs is the performer by reference: ``RelatedPerson/<id>`` when on file,
    else a new RelatedPerson (first entry, ``guardians.guardian_entry``) by its urn:uuid.
    ``physician`` is a Reference to the client's Practitioner (``status.physician_on_file``):
    the information recipient of a physician-sharing Consent, else "the client's physician".
    A physician-sharing capture's terms (``capture.sharing``) set the Consent's scopes, types
    and date range; a physician entered with them is written first (Practitioner and
    PractitionerRole, conditional creates) and is the recipient instead.

    Raises FhirValidationError when a resource is not valid R4.
    """
    record = ConsentRecord.model_validate(
        {
            "kind": capture.kind,
            "status": capture.decision,
            "date": ctx.today,
            "signer": capture.signer,
            "policy_version": capture.policy_version,
            "form": capture.form,
        },
        context={"today": ctx.today, "consent_kinds": kinds},
    )
    # Only the client id (for the identifier) and physician (an actor of physician_sharing)
    # are read by the mapping; the rest of a spa record has no part in one consent.
    client = Client.model_construct(client_id=patient_id, physician=None)
    spa_record = SpaRecord.model_construct(client=client, consents={capture.kind: record})
    patient = Entry({}, f"Patient/{patient_id}", "")
    org = _Logical({}, "", "", ref=organization_ref(ctx))
    mapping_ctx = replace(ctx, consent_kinds=kinds)
    terms = capture.sharing if capture.kind == KIND_SHARING else None
    new_doctor, new_ref = physician_entries(terms, patient_id, ctx) if terms else ([], None)
    physician = new_ref or physician
    doctor = _Logical({}, "", "", ref=dict(physician)) if physician else None
    (mapped,) = consent_mapping.consents(spa_record, patient, None, org, mapping_ctx, doctor)
    resource = dict(mapped.resource)
    if terms is not None:
        resource = apply_terms(resource, terms, load_sharing())
    captured_at = ctx.now.isoformat()
    guardian = capture.guardian if capture.signer == "guardian" else None
    new_guardian = (
        guardian_entry(guardian, patient_id, ctx) if guardian and not guardian.id else None
    )
    parts = [capture.kind, capture.decision, capture.signer, capture.form.sha1_b64, basis]
    if guardian is not None:  # only then: a client's consent keeps the identifier it had
        parts.append(new_guardian.full_url if new_guardian else guardian.choice)
    if terms is not None:  # another choice of scopes, dates or physician is a new Consent
        parts.append(terms.key)
    key = digest(*parts)
    ident = dict(resource["identifier"][0])
    ident["value"] = f"{ident['value']}-{key}"
    resource["identifier"] = [ident]
    resource["dateTime"] = captured_at
    resource["performer"] = [_performer(capture, patient_id, new_guardian)]
    attachment = dict(resource["sourceAttachment"])
    attachment["creation"] = captured_at
    if capture.typed:
        attachment["title"] = f"{attachment['title']} (typed signature)"
    resource["sourceAttachment"] = attachment
    consent_entry = entry(resource, ident)
    written = [*new_doctor, *([new_guardian] if new_guardian else [])]
    prov = provenance_entry(
        [consent_entry.reference, *(e.reference for e in written)],
        "CREATE",
        fhir_user,
        ctx,
        key=f"consent-capture-{digest(ident['value'])}",
    )
    entries = [*written, consent_entry, prov]
    check_valid([e.resource for e in entries])
    return entries


def _performer(capture: Capture, patient_id: str, new_guardian: Entry | None) -> dict[str, Any]:
    if capture.signer == "guardian":
        performer: dict[str, Any] = {
            "type": "RelatedPerson",
            "display": f"{capture.signer_name} (parent or guardian)",
        }
        if new_guardian is not None:
            performer["reference"] = new_guardian.full_url
        elif capture.guardian is not None:
            performer["reference"] = capture.guardian.choice
        return performer
    performer = {"reference": f"Patient/{patient_id}", "type": "Patient"}
    if capture.signer_name:
        performer["display"] = capture.signer_name
    return performer


def capture_bundle(entries: list[Entry]) -> dict[str, Any]:
    """The transaction Bundle of a capture (conditional creates)."""
    return transaction(entries)

"""The consent workflows: the client's consents read (``read_consents``), a consent captured
(``capture_consent``: given or declined, signed by the client or a guardian) and a consent
withdrawn (``withdraw_consent``). Each write is one FHIR transaction and one audited access.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from symfhir.audit import AuditTrail
from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirConflictError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources, read_batch
from symfhir.mapping.context import MappingContext
from symfhir.model.client import Physician
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.capture import (
    KIND_SHARING,
    capture_bundle,
    capture_entries,
    parse_capture,
)
from symfhir.workspace.consents.guardians import Guardian, guardians_on_file
from symfhir.workspace.consents.status import (
    KindStatus,
    basis_of,
    consent_overview,
    is_minor,
    patient_age,
    physician_on_file,
)
from symfhir.workspace.consents.withdrawal import (
    CHANGED_MEANWHILE,
    find_withdrawable,
    withdrawal_bundle,
)
from symfhir.workspace.fallbacks import LABEL as FALLBACK_LABEL
from symfhir.workspace.fallbacks import adapt_for_server, fallback_search, is_fallback, restore

if TYPE_CHECKING:
    from symfhir.store import Store

log = logging.getLogger(__name__)

PAGE_SIZE = 200
RELATED_PAGE_SIZE = 50
LABELS = ["Patient", "Consent", "RelatedPerson"]
NO_PHYSICIAN_CREATE = (
    "This session may not add a physician to the record: choose the client's physician in "
    "the EHR first."
)
NO_PRACTICE_CREATE = (
    "This session may not record the physician's practice: leave it empty, or record it in the EHR."
)
FALLBACK_WITHDRAWAL = (
    "This consent is kept as a document on this EHR (it cannot store consents as such): "
    "withdraw it in the EHR."
)


@dataclass(frozen=True)
class ConsentRecord:
    """The client's consents as one batch read them: every kind with its history, the
    client's age, the guardians on file who may sign, and what could not be read."""

    overview: list[KindStatus]
    consents: dict[str, dict[str, Any]]
    age: int | None
    age_known: bool
    guardians: list[Guardian]
    guardians_read: bool
    may_add_guardian: bool
    failed: list[str]
    truncated: bool
    default_version: str
    #: The client's Practitioner (Patient.generalPractitioner), named by a physician-sharing
    #: consent; None when the Patient names none.
    physician: dict[str, str] | None = None

    @property
    def minor(self) -> bool:
        return is_minor(self.age)


@dataclass(frozen=True)
class CaptureResult:
    """``saved`` (one transaction: the Consent, and a new guardian's RelatedPerson) or
    ``invalid`` (``errors`` by form field, nothing written). ``decision`` and ``kind`` name
    what was recorded."""

    outcome: Literal["saved", "invalid"]
    record: ConsentRecord
    kind: str = ""
    decision: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    fallback: bool = False  # stored as a DocumentReference: the server cannot store Consent


@dataclass(frozen=True)
class WithdrawResult:
    """``withdrawn``; ``refused`` (nothing to withdraw: ``problem`` says why); or ``changed``
    (the consent changed since it was shown: nothing written, ``record`` is read again).
    ``links_stopped``: the client's shared links a physician-sharing withdrawal stopped."""

    outcome: Literal["withdrawn", "refused", "changed"]
    record: ConsentRecord
    problem: str = ""
    links_stopped: int = 0


def consents_batch(
    patient_id: str, related: bool = True, fallbacks: bool = False
) -> dict[str, Any]:
    """One batch: the Patient (for the birth date), the patient's Consents, newest first,
    (``related``) the patient's RelatedPersons, the parents and guardians who may sign, and
    (``fallbacks``) the Consents kept as DocumentReferences."""
    pid = check_id(patient_id)
    urls = [
        f"Patient/{pid}",
        f"Consent?patient=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
    ]
    if related:
        urls.append(f"RelatedPerson?patient=Patient/{pid}&_count={RELATED_PAGE_SIZE}")
    if fallbacks:
        urls.append(fallback_search(pid, ["consent"]))
    return read_batch(urls)


def read_record(
    client: FhirClient, actor: Actor, patient_id: str, ctx: MappingContext
) -> ConsentRecord:
    """The consents batch, read and shaped (not audited: the caller's workflow is).

    The RelatedPersons are searched only when ``actor`` may search them (without that, none
    are on file; a new guardian still needs RelatedPerson create)."""
    related = actor.may("RelatedPerson", "s")
    fallbacks = actor.may(FALLBACK_LABEL, "s")
    labels = [*LABELS[: 3 if related else 2], *([FALLBACK_LABEL] if fallbacks else [])]
    found = batch_resources(client.batch(consents_batch(patient_id, related, fallbacks)), labels)
    own = [r for r in restore(found.resources) if in_compartment(r, patient_id)]
    patient = next((r for r in own if r.get("resourceType") == "Patient"), None)
    consents = [r for r in own if r.get("resourceType") == "Consent"]
    age = patient_age(patient, ctx.today)
    return ConsentRecord(
        overview=consent_overview(consents, load_consent_kinds(), ctx.spa.zone),
        consents={str(c.get("id")): c for c in consents},
        age=age,
        age_known=patient is not None and age is not None,
        guardians=guardians_on_file(own, patient_id, ctx),
        guardians_read=related and "RelatedPerson" not in found.failed,
        may_add_guardian=actor.may("RelatedPerson", "c"),
        failed=found.failed,
        truncated=found.truncated,
        default_version=ctx.spa.privacy_policy_version,
        physician=physician_on_file(patient),
    )


def _physician_permits(actor: Actor, physician: Physician | None) -> dict[str, str]:
    # A physician entered at capture is written with the Consent: refused up front (with the
    # field to blame) when the session may not create it, rather than failing the transaction.
    if physician is None:
        return {}
    if not actor.may("Practitioner", "c"):
        return {"physician-name": NO_PHYSICIAN_CREATE}
    if physician.organization and not actor.may("PractitionerRole", "c"):
        return {"physician-organization": NO_PRACTICE_CREATE}
    return {}


def _read_types(actor: Actor) -> str:
    types = ["Patient", "Consent"]
    types += [t for t in ("RelatedPerson", FALLBACK_LABEL) if actor.may(t, "s")]
    return ", ".join(types)


def read_consents(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> ConsentRecord:
    """The client's consents, audited as one read."""
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    audit("read", description=f"consents view read {_read_types(actor)}")
    return record


def capture_consent(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    form: Mapping[str, str],
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> CaptureResult:
    """Record the consent ``form`` describes (kind, decision, signer, signature, policy
    version, guardian; for physician sharing, the scopes, dates and a physician entered when
    none is on file, written in the same transaction: ``sharing_terms``).

    On a server that cannot create Consent (its CapabilityStatement), the Consent is stored
    as a DocumentReference, as the import does (``fallback`` says so).

    Raises NotAllowedError in a read-only session (before anything is read),
    FhirValidationError when the built Consent breaks the FHIR rules (nothing written),
    FhirCapabilityError when the server can store neither Consent nor DocumentReference,
    FhirServerError when the transaction fails.
    """
    actor.require(())
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    kinds = load_consent_kinds()
    parsed, errors = parse_capture(
        form,
        kinds,
        ctx,
        record.age,
        record.guardians,
        may_add_guardian=record.may_add_guardian,
        physician_on_file=record.physician is not None,
    )
    if parsed is not None and parsed.sharing is not None:
        errors = _physician_permits(actor, parsed.sharing.physician)
        parsed = None if errors else parsed
    if parsed is None:
        return CaptureResult("invalid", record, errors=errors)
    basis = basis_of(record.overview, parsed.kind)
    entries = capture_entries(
        parsed, patient_id, actor.fhir_user, kinds, ctx, basis, physician=record.physician
    )
    bundle, fell_back = adapt_for_server(client, capture_bundle(entries), "record consents")
    client.transaction(bundle)
    guardian = parsed.guardian
    what = " and a RelatedPerson" if guardian is not None and not guardian.on_file else ""
    if parsed.sharing is not None and parsed.sharing.physician is not None:
        what += " and the physician (Practitioner)"
    audit("create", description=f"consents page recorded a {parsed.kind} Consent{what}")
    return CaptureResult("saved", record, parsed.kind, parsed.decision, fallback=bool(fell_back))


def withdraw_consent(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    kind: str,
    shown: tuple[str, str] = ("", ""),
    *,
    audit: AuditTrail,
    now: datetime | None = None,
    store: Store | None = None,
) -> WithdrawResult:
    """Withdraw the client's current consent of ``kind``; ``shown`` is the (id, version) of
    the Consent the practitioner saw (("", "") when not known): if it has changed since,
    nothing is written.

    Withdrawing a physician-sharing consent stops every active shared link of the client at
    once when ``store`` (the app's own, where links live) is given; the link service also
    re-checks the consent at every access, so a link stops even where no store is at hand.

    Raises NotAllowedError in a read-only session (before anything is read),
    FhirValidationError when the built Consent breaks the FHIR rules, FhirServerError when
    the transaction fails other than by a version conflict.
    """
    actor.require(())
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    current, problem = find_withdrawable(record.overview, kind)
    if current is None:
        return WithdrawResult("refused", record, problem)
    if shown != ("", "") and shown != (current.id, current.version):
        return WithdrawResult("changed", record, CHANGED_MEANWHILE)
    if is_fallback(record.consents[current.id]):
        return WithdrawResult("refused", record, FALLBACK_WITHDRAWAL)
    bundle = withdrawal_bundle(
        record.consents[current.id], current.version, patient_id, actor.fhir_user, ctx
    )
    try:
        client.transaction(bundle)
    except FhirConflictError:
        log.info("consent withdrawal: version conflict")
        again = read_record(client, actor, patient_id, ctx)
        return WithdrawResult("changed", again, CHANGED_MEANWHILE)
    audit("update", description=f"consents page withdrew a {kind} Consent")
    stopped = 0
    if kind == KIND_SHARING and store is not None:
        # Imported here: the sharing package reads consents through this module.
        from symfhir.sharing.workflow import stop_shares

        stopped = stop_shares(store, patient_id, now=ctx.now, audit=audit)
    return WithdrawResult("withdrawn", record, links_stopped=stopped)

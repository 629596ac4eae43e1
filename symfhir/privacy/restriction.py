"""A restriction request (policy §6, HIPAA 164.522): the consents the client names are
withdrawn, each a versioned update of its Consent (never a delete), by the consents
workflow the app's Consents page uses (``withdraw_consent``).

Every use reads consents live from the server (the gallery's and the marketing lists' photo
checks, ``symfhir.workspace.photos.consents``), so a withdrawn photo consent takes the
client's photos off every marketing list at once: nothing is cached to clear. A withdrawn
physician-sharing consent stops every shared link of the client at once when the app's store
is given (and the link service re-checks the consent at every access in any case).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from symfhir.audit import AuditTrail, DisclosureTo
from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import PrivacyRequestError
from symfhir.fhir import FhirClient
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    PARTIALLY_COMPLETED,
    Outcome,
    PrivacyRequest,
    TaskOutput,
)
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import FALLBACK_WITHDRAWAL, withdraw_consent

if TYPE_CHECKING:
    from symfhir.store import Store

#: The request's input naming the consents: consent-kind keys, comma-separated.
CONSENTS_INPUT = "consents"
REPORT = "restriction-report"
DENIAL = "denial-reason"

# What became of each consent named, as the report says it (kind keys only: no PHI).
WITHDRAWN = "withdrawn"
NOT_GIVEN = "nothing to withdraw"  # never asked, declined or already withdrawn
IN_EHR = "kept as a document: withdraw it in the EHR"
UNKNOWN = "not a consent kind"
CHANGED = "changed meanwhile: not withdrawn"


def requested_kinds(request: PrivacyRequest) -> list[str]:
    """The consent-kind keys of the request's ``consents`` input, in order, without repeats.
    Raises PrivacyRequestError when it names none."""
    raw = request.inputs.get(CONSENTS_INPUT, "")
    kinds = list(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    if not kinds:
        raise PrivacyRequestError("a restriction request names the consents to withdraw")
    return kinds


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
    store: Store | None = None,
) -> Outcome:
    """Withdraw each consent the request names (a physician-sharing one also stops the
    client's shared links in ``store``, when given); the Outcome is ``completed`` when every one is
    withdrawn or had nothing to withdraw, ``partially-completed`` when some could not be,
    ``denied`` when none of the names is a consent kind.

    Raises PrivacyRequestError for a request not matched to a client, not verified, or naming
    no consent; NotAllowedError in a read-only session; FhirServerError when a write fails
    (the consents withdrawn before it stay withdrawn: each is its own transaction, and a
    re-run finds them withdrawn and moves on).
    """
    if request.patient_id is None:
        raise PrivacyRequestError("the request is not matched to a client yet")
    # The request's own workflow verifies identity first; a handler still refuses to change
    # anything for a request that has not reached that step (deny by default).
    if request.business_status not in (IDENTITY_VERIFIED, IN_PROGRESS) or not request.verifications:
        raise PrivacyRequestError("the requester's identity is not verified yet")
    known = load_consent_kinds().kinds
    audit = _naming_client(audit, request.patient_id)
    results: dict[str, str] = {}
    for kind in requested_kinds(request):
        if kind not in known:
            results[kind] = UNKNOWN
            continue
        results[kind] = _withdraw(client, actor, request.patient_id, kind, now, audit, store)
    # Known kinds by key; anything else only counted: it is the requester's own text.
    lines = [f"{k}: {v}" for k, v in results.items() if v != UNKNOWN]
    unknown = sum(v == UNKNOWN for v in results.values())
    if unknown:
        lines.append(f"{unknown} other name{'s' if unknown > 1 else ''}: {UNKNOWN}")
    report = TaskOutput(REPORT, text="\n".join(lines))
    done = [k for k, v in results.items() if v in (WITHDRAWN, NOT_GIVEN)]
    if len(done) == len(results):
        withdrawn = sum(v == WITHDRAWN for v in results.values())
        return Outcome(COMPLETED, (report,), f"{withdrawn} of {len(results)} consents withdrawn")
    if all(v == UNKNOWN for v in results.values()):
        reason = "none of the consents named is one the spa records"
        return Outcome(DENIED, (report, TaskOutput(DENIAL, text=reason)), reason)
    left = len(results) - len(done)
    return Outcome(
        PARTIALLY_COMPLETED, (report,), f"{left} of {len(results)} consents not withdrawn"
    )


def _naming_client(audit: AuditTrail, patient_id: str) -> AuditTrail:
    """``audit`` with the client named on every event: a request's own trail is not bound to
    one client (it may be unmatched when it begins), and a withdrawal is an access to theirs."""

    def trail(
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        named = list(resources)
        if f"Patient/{patient_id}" not in named:
            named.insert(0, f"Patient/{patient_id}")
        audit(
            subtype,
            success=success,
            description=description,
            resources=named,
            disclosure=disclosure,
        )

    return trail


def _withdraw(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    kind: str,
    now: datetime,
    audit: AuditTrail,
    store: Store | None,
) -> str:
    # A consent changed between the read and the write (the desk, at the same moment) is
    # read again once: the withdrawal is what the client asked for, whatever changed.
    for _ in range(2):
        result = withdraw_consent(
            client, actor, patient_id, kind, audit=audit, now=now, store=store
        )
        if result.outcome == "withdrawn":
            return WITHDRAWN
        if result.outcome == "refused":
            return IN_EHR if result.problem == FALLBACK_WITHDRAWAL else NOT_GIVEN
    return CHANGED

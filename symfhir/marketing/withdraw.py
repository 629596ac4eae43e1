"""The marketing opt-out workflows: a channel's marketing consent withdrawn for one client
(``opt_out``: the e-mail link, the desk, a privacy request) or for the client a phone number
or e-mail address belongs to (``opt_out_by_contact``: an SMS STOP, a mailto unsubscribe).

A withdrawal is ``symfhir.workspace.consents.recording.withdraw_consent``: a versioned update
of the Consent to ``inactive``, never a delete, with its Provenance, in one transaction, and
one AuditEvent. A contact shared by several clients changes nothing: the privacy officer
matches it by hand (one PHI-free warning naming the Patient ids, and a failed AuditEvent on
each of their records).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from symfhir.audit import AuditTrail, DisclosureTo
from symfhir.contacts import patients_with_contact
from symfhir.errors import FhirConflictError
from symfhir.fhir import FhirClient
from symfhir.marketing.rules import load_marketing_rules
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import withdraw_consent

log = logging.getLogger(__name__)

#: How an opt-out reached symfhir (the AuditEvent's words).
VIAS = ("email-link", "sms", "desk", "privacy-request", "mailto")

OptOutStatus = Literal["withdrawn", "not-given", "changed"]


@dataclass(frozen=True)
class OptOut:
    """One channel's opt-out: ``withdrawn`` now; ``not-given`` (nothing to withdraw: never
    asked, declined or already withdrawn, so a repeat changes nothing); ``changed`` (the
    Consent kept changing under us: nothing written, try again)."""

    patient_id: str
    channel: str
    status: OptOutStatus

    @property
    def changed_now(self) -> bool:
        return self.status == "withdrawn"


@dataclass(frozen=True)
class ContactOptOut:
    """An opt-out by contact: ``done`` (``opt_out`` says what happened), ``unknown`` (no
    client has this contact) or ``ambiguous`` (several do: nothing changed)."""

    outcome: Literal["done", "unknown", "ambiguous"]
    opt_out: OptOut | None = None
    matches: int = 0


def opt_out(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    channel: str,
    *,
    via: str,
    now: datetime,
    audit: AuditTrail,
) -> OptOut:
    """Withdraw ``patient_id``'s marketing consent of ``channel`` (email | sms | phone).

    A version conflict (someone changed the Consent meanwhile) is retried once on the fresh
    record. Raises ConfigError for an unknown channel, NotAllowedError in a read-only session,
    FhirServerError when the server fails.
    """
    kind = load_marketing_rules().channel(channel).consent_kind
    if via not in VIAS:
        raise ValueError(f"unknown opt-out route {via!r}")

    def described(
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        # withdraw_consent speaks of the consents page; the record says how the client asked.
        audit(
            subtype,
            success=success,
            description=f"marketing opt-out ({via}) withdrew the {kind} Consent",
            resources=[f"Patient/{patient_id}", *resources],
            disclosure=disclosure,
        )

    for _attempt in range(2):
        try:
            result = withdraw_consent(client, actor, patient_id, kind, audit=described, now=now)
        except FhirConflictError:
            continue
        if result.outcome == "withdrawn":
            return OptOut(patient_id, channel, "withdrawn")
        if result.outcome == "refused":
            return OptOut(patient_id, channel, "not-given")
    log.info("marketing opt-out (%s): the consent kept changing; nothing written", via)
    return OptOut(patient_id, channel, "changed")


def opt_out_by_contact(
    client: FhirClient,
    actor: Actor,
    channel: str,
    contact: str,
    *,
    via: str,
    now: datetime,
    audit: AuditTrail,
    by_client: bool = False,
) -> ContactOptOut:
    """Withdraw the ``channel`` marketing consent of the one client whose Patient.telecom has
    ``contact`` (exact match after normalizing). Several matches change nothing (see the
    module docstring). ``by_client``: the client asked themselves (a text from their phone),
    so the withdrawal's Provenance names them rather than ``actor``. Raises as ``opt_out``."""
    telecom = load_marketing_rules().channel(channel).telecom
    matches = patients_with_contact(client, telecom, contact)
    if not matches:
        return ContactOptOut("unknown")
    if len(matches) > 1:
        shown = ", ".join(f"Patient/{pid}" for pid in matches[:10])
        log.warning(
            "marketing opt-out (%s, %s): the contact belongs to %d clients (%s); nothing "
            "changed: the privacy officer withdraws it by hand (symfhir marketing opt-out "
            "--patient ID --channel %s)",
            via,
            channel,
            len(matches),
            shown,
            channel,
        )
        for pid in matches:
            audit(
                "search",
                success=False,
                description=(
                    f"marketing opt-out ({via}, {channel}) from a contact shared by "
                    f"{len(matches)} clients: not applied, left to the privacy officer"
                ),
                resources=[f"Patient/{pid}"],
            )
        return ContactOptOut("ambiguous", matches=len(matches))
    if by_client:
        actor = replace(actor, fhir_user=f"Patient/{matches[0]}", display=None)
    done = opt_out(client, actor, matches[0], channel, via=via, now=now, audit=audit)
    return ContactOptOut("done", done, matches=1)

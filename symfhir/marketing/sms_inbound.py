"""An inbound text message, as the SMS provider's webhook posts it (``From``, ``Body``): an
opt-out withdraws the sender's marketing-by-text consent within the same request, and gets
at most one confirmation text: only the message that changed the consent is answered, so a
repeated STOP (or a STOP from a number no client has) gets no second text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from symfhir.audit import AuditTrail
from symfhir.fhir import FhirClient
from symfhir.marketing.rules import load_marketing_rules
from symfhir.marketing.sms_optout import is_opt_out
from symfhir.marketing.withdraw import opt_out_by_contact
from symfhir.workspace.actor import Actor

CHANNEL = "sms"


@dataclass(frozen=True)
class InboundSms:
    """What an inbound message led to: ``ignored`` (not an opt-out), ``opted-out`` (the
    consent was withdrawn now), ``repeat`` (nothing was given: already withdrawn or never
    given), ``unknown`` (no client has the number), ``ambiguous`` (several do: nothing
    changed), ``retry`` (the consent kept changing: the provider may post again); ``reply``
    is the one confirmation text, or None."""

    outcome: Literal["ignored", "opted-out", "repeat", "unknown", "ambiguous", "retry"]
    reply: str | None = None


def receive_sms(
    client: FhirClient,
    actor: Actor,
    form: Mapping[str, str],
    *,
    now: datetime,
    audit: AuditTrail,
) -> InboundSms:
    """Act on one inbound message (the webhook's form: ``From`` the sender's number, ``Body``
    the text), whose signature the caller has checked. Raises FhirServerError when the server
    fails (the provider then retries the webhook)."""
    body = form.get("Body", "")
    sender = form.get("From", "")
    if not is_opt_out(body) or not sender:
        return InboundSms("ignored")
    found = opt_out_by_contact(
        client, actor, CHANNEL, sender, via="sms", now=now, audit=audit, by_client=True
    )
    if found.outcome != "done" or found.opt_out is None:
        return InboundSms(found.outcome)
    if found.opt_out.status == "withdrawn":
        return InboundSms("opted-out", load_marketing_rules().sms.confirmation)
    if found.opt_out.status == "changed":
        return InboundSms("retry")
    return InboundSms("repeat")

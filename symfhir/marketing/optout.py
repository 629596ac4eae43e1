"""The handler of the privacy-request kinds ``opt-out`` (privacy policy §6: withdraw the
client's marketing consents) and ``ccpa-opt-out-of-sale`` (CCPA "do not sell or share":
recorded and answered; symfhir sells nothing and shares nothing for cross-context
advertising, so nothing else changes unless the client also asked to stop marketing).

Inputs read from the request: ``channels`` (comma-separated email, sms, phone): the channels
to opt out of; for ``opt-out`` every channel when absent, for ``ccpa-opt-out-of-sale`` none
when absent.
"""

from __future__ import annotations

from datetime import datetime

from symfhir.audit import AuditTrail
from symfhir.fhir import FhirClient
from symfhir.marketing.rules import load_marketing_rules
from symfhir.marketing.withdraw import OptOut, opt_out
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    PARTIALLY_COMPLETED,
    Outcome,
    PrivacyRequest,
    TaskOutput,
)
from symfhir.workspace.actor import Actor

OPT_OUT = "opt-out"
NO_SALE = "ccpa-opt-out-of-sale"
REPORT = "opt-out-report"
NO_SALE_ANSWER = "ccpa-no-sale"
DENIAL = "denial-reason"
_WORDS = {
    "withdrawn": "withdrawn",
    "not-given": "nothing to withdraw (not given)",
    "changed": "not changed: the consent changed meanwhile, process the request again",
}


def _channels(request: PrivacyRequest, default_all: bool) -> tuple[list[str], list[str]]:
    """(known channels asked for, unknown names given)."""
    known = load_marketing_rules().channels
    raw = request.inputs.get("channels", "")
    asked = [c.strip().lower() for c in raw.split(",") if c.strip()]
    if not asked:
        return (list(known) if default_all else []), []
    return [c for c in dict.fromkeys(asked) if c in known], [c for c in asked if c not in known]


def _report(done: list[OptOut]) -> str:
    rules = load_marketing_rules()
    kinds = {c.key: c.consent_kind for c in rules.channels.values()}
    return "; ".join(
        f"marketing by {o.channel} ({kinds[o.channel]}): {_WORDS[o.status]}" for o in done
    )


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Outcome:
    """Answer an ``opt-out`` or ``ccpa-opt-out-of-sale`` request of a matched client.

    Raises ValueError for another kind, NotAllowedError in a read-only session,
    FhirServerError when the server fails (nothing half-written: each withdrawal is one
    transaction, and processing again withdraws only what is still given).
    """
    if request.kind not in (OPT_OUT, NO_SALE):
        raise ValueError(f"symfhir.marketing.optout handles {OPT_OUT} and {NO_SALE} only")
    if request.patient_id is None:
        reason = "The request is not matched to a client yet."
        return Outcome(DENIED, (TaskOutput(DENIAL, text=reason),), reason)
    channels, unknown = _channels(request, default_all=request.kind == OPT_OUT)
    done = [
        opt_out(client, actor, request.patient_id, c, via="privacy-request", now=now, audit=audit)
        for c in channels
    ]
    outputs: list[TaskOutput] = []
    if request.kind == NO_SALE:
        answer = load_marketing_rules().ccpa_no_sale
        outputs.append(TaskOutput(NO_SALE_ANSWER, text=answer))
        audit(
            "update",
            description="CCPA opt-out of sale or sharing recorded (nothing is sold or shared)",
            resources=[f"Patient/{request.patient_id}"],
        )
    if done:
        outputs.append(TaskOutput(REPORT, text=_report(done)))
    if unknown:
        outputs.append(
            TaskOutput(REPORT, text=f"unknown channels left alone: {', '.join(unknown)}")
        )
    failed = any(o.status == "changed" for o in done) or bool(unknown)
    status = PARTIALLY_COMPLETED if failed else COMPLETED
    withdrawn = sum(o.status == "withdrawn" for o in done)
    if request.kind == NO_SALE:
        summary = "Recorded: nothing is sold or shared."
        if done:
            summary += f" Marketing consents withdrawn: {withdrawn}."
    else:
        summary = f"Marketing consents withdrawn: {withdrawn} of {len(done)} channels."
    return Outcome(status, tuple(outputs), summary)

"""One privacy request's page, shared by the client's Privacy tab and the officer's dashboard:
its details (kind, requester as given, verifications, due date, extension, outputs) and its
actions, each a CSRF-protected POST carrying the Task version the page showed, parsed here and
handed to ONE workflow of ``symfhir.privacy``:

    verify    requests.record_verification   identity seen in person by the signed-in user
    match     matching.match_patient         automatic, else the candidates are shown
    assign    matching.assign_patient        a person's pick among them (recorded)
    process   processing.process_request     the kind's handler; its outcome lands on the Task
    transfer  transfer.transfer_request      a portability request's record to another
              provider, pushed or behind a long-term link (``smart_app.request_transfer``)
    extend    extension.extend_and_notify    once, the reason e-mailed to the requester
    deny      requests.deny                  closed as denied, with a reason (a correction:
              correction_review.deny_correction, the reason sent with the requester's
              rights: to file a statement of disagreement, to complain)
    complete  requests.complete              closed by hand (completed / partially)

A page whose version is no longer current is refused (409) and shown as it is now. In a
patient launch (``patient_id`` set) only that client's requests open: another's is refused
with 403 and audited, before anything is shown or done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import redirect, render_template, request, url_for

from smart_app.consents import links_store
from smart_app.errors import AppError
from smart_app.fhir_access import PatientAccess
from symfhir.errors import (
    ExportError,
    FhirConflictError,
    FhirNotFoundError,
    NotAllowedError,
    PrivacyRequestError,
    RecordError,
)
from symfhir.privacy.extension import extend_and_notify
from symfhir.privacy.handover import can_hand_over
from symfhir.privacy.matching import Candidate, assign_patient, match_patient
from symfhir.privacy.model import (
    COMPLETED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    KINDS,
    PARTIALLY_COMPLETED,
    RECEIVED,
    Outcome,
    Verification,
)
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import complete, deny, get_request, record_verification
from symfhir.privacy.tasks import TrackedRequest
from symfhir.spa import load_spa
from symfhir.terminology import load_terminology

#: How a person at the desk proved who they are (kept with the verification).
VERIFIED_WITH = {
    "photo-id": "Government photo ID",
    "known": "Known to staff (returning client seen in person)",
    "guardian-id": "Guardian's photo ID and proof of guardianship",
}
ACTIONS = ("verify", "match", "assign", "process", "extend", "deny", "complete")
CLOSE_AS = {COMPLETED: "Completed", PARTIALLY_COMPLETED: "Partially completed"}
DONE = {
    "verify": "Identity verification recorded.",
    "match": "Matched to the client automatically.",
    "assign": "Matched to the client you picked (your choice is recorded).",
    "process": "Processed: the outcome is below.",
    "extend": "Extended: the requester was e-mailed the reason and the new due date.",
    "extend-not-emailed": "Extended, but the requester could not be e-mailed: tell them the "
    "reason and the new due date another way.",
    "deny": "Closed as denied: the reason is kept for the requester.",
    "deny-correction": "Closed as denied: the requester was e-mailed the reason and their "
    "rights (to file a statement of disagreement, to complain).",
    "deny-correction-not-emailed": "Closed as denied, with the requester's rights kept for "
    "them, but they could not be e-mailed: tell them the reason and their rights.",
    "complete": "Closed by hand.",
}
STALE = (
    "This request changed since you opened it (someone else acted on it). It is shown below "
    "as it is now: check it and try again."
)


@dataclass(frozen=True)
class RequestPage:
    """Where the page is served: the session's access, the blueprint whose routes it uses,
    and the launched client (None in the officer's user-level session)."""

    access: PatientAccess
    blueprint: str
    patient_id: str | None

    def url(self, task_id: str, **query: str) -> str:
        return url_for(f"{self.blueprint}.request_page", task_id=task_id, **query)


def now() -> datetime:
    return datetime.now(load_spa().zone)


def load(page: RequestPage, task_id: str) -> TrackedRequest:
    """The request (an audited read); AppError 404 for a Task that is not a privacy request,
    403 (audited) for another client's request in a patient launch."""
    access = page.access
    try:
        item = get_request(access.client, access.actor, task_id, now=now(), audit=access.audit)
    except (PrivacyRequestError, FhirNotFoundError):
        raise AppError(
            404, "not_a_request", "No such privacy request", "There is no such privacy request."
        ) from None
    owner = item.request.patient_id
    if page.patient_id is not None and owner != page.patient_id:
        if owner:
            access.check_patient(owner)  # audits the refusal, raises 403
        access.audit(
            "read",
            success=False,
            description="refused: a privacy request not matched to the launched client",
            resources=(f"Task/{task_id}",),
        )
        raise AppError(
            403,
            "wrong_patient",
            "This request is not this client's",
            "The Privacy tab shows only the requests of the client whose chart launched it.",
        )
    return item


def render(
    page: RequestPage,
    task_id: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    problem: str = "",
    stale: bool = False,
    candidates: tuple[Candidate, ...] | None = None,
    form: dict[str, str] | None = None,
    transfer_form: dict[str, str] | None = None,
    transfer: dict[str, Any] | None = None,
) -> tuple[str, int]:
    # The transfer's view imports this module: imported here, not at the top.
    from smart_app import request_transfer

    item = load(page, task_id)
    terms = load_terminology()
    kinds = {kind: terms.coding("privacy_request", kind)["display"] for kind in KINDS}
    request_ = item.request
    html = render_template(
        "privacy_request.html",
        item=item,
        kinds=kinds,
        blueprint=page.blueprint,
        officer=page.patient_id is None,
        # A session that may not update the Task (AuditEvent create alone is no write) acts
        # on nothing here: no form is offered.
        writable=page.access.writable and page.access.actor.may("Task", "u"),
        can_verify=request_.is_open and request_.business_status == RECEIVED,
        can_match=request_.is_open
        and not request_.patient_id
        and request_.business_status != RECEIVED,
        can_process=request_.is_open
        and bool(request_.patient_id)
        and request_.business_status in (IDENTITY_VERIFIED, IN_PROGRESS),
        can_extend=request_.is_open and request_.extended_reason is None,
        can_download=page.patient_id is not None and can_hand_over(item),
        verified_with=VERIFIED_WITH,
        close_as=CLOSE_AS,
        done=DONE.get(request.args.get("done", ""), ""),
        errors=errors or {},
        problem=problem,
        stale=stale,
        stale_text=STALE,
        candidates=candidates,
        form=form or {"verified_at": now().strftime("%Y-%m-%dT%H:%M")},
        can_transfer=request_transfer.can_transfer(request_),
        transfer_form=transfer_form or request_transfer.defaults(request_),
        transfer_how=request_transfer.HOW,
        push_modes=request_transfer.PUSH_MODES,
        link_limits=request_transfer.load_link_settings(),
        transfer=transfer,
    )
    return html, status


def act(page: RequestPage, task_id: str, action: str) -> Any:
    """Run ``action`` on the request and re-render: a redirect to the page on success, the
    page with the reason otherwise (400 bad input or a step the request cannot take, 403 not
    allowed, 409 stale)."""
    if action not in ACTIONS:
        raise AppError(404, "no_such_action", "No such action", "This action does not exist.")
    form = {k: (v or "").strip() for k, v in request.form.items()}
    if page.patient_id is not None:
        load(page, task_id)  # another client's request is refused before anything is done
    try:
        outcome = _run(page, task_id, action, form)
    except FhirConflictError:
        return render(page, task_id, status=409, stale=True)
    except NotAllowedError as exc:
        text = (
            "This session is read-only: the EHR did not grant symfhir permission to change records."
            if exc.read_only
            else "This session may not do this: the EHR did not grant "
            + ", ".join(f"{t}.{i}" for t, i in exc.missing)
            + "."
        )
        return render(page, task_id, status=403, problem=text)
    except (PrivacyRequestError, ExportError) as exc:
        return render(page, task_id, status=400, problem=_sentence(str(exc)))
    except RecordError as exc:
        return render(page, task_id, status=400, errors={exc.field: f"This {exc.reason}."})
    if isinstance(outcome, tuple):  # the form was refused, or there are candidates to show
        errors, candidates = outcome
        status = 400 if errors else 200
        return render(page, task_id, status=status, errors=errors, candidates=candidates, form=form)
    return redirect(page.url(task_id, done=outcome) + "#action-done", 303)


def _deny_correction(client: Any, actor: Any, task_id: str, reason: str, kw: dict[str, Any]) -> str:
    # A correction's denial carries the requester's HIPAA rights (164.526(d)) and is e-mailed
    # to them, as the Privacy tab's Deny does.
    from smart_app.privacy_corrections import tell_requester
    from symfhir.privacy.correction_review import deny_correction

    result = deny_correction(client, actor, task_id, reason=reason, **kw)
    told = tell_requester(result)
    return "deny-correction" if told == "emailed" else "deny-correction-not-emailed"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _run(
    page: RequestPage, task_id: str, action: str, form: dict[str, str]
) -> str | tuple[dict[str, str], tuple[Candidate, ...] | None]:
    """The workflow of ``action``: what the page says next (a DONE key), or (field errors,
    candidates to pick from)."""
    access = page.access
    client, actor = access.client, access.actor
    moment = now()
    version = form.get("version") or None
    kw: dict[str, Any] = {"now": moment, "audit": access.audit, "version": version}
    if action == "verify":
        errors: dict[str, str] = {}
        if form.get("verified_with") not in VERIFIED_WITH:
            errors["verified_with"] = "Say how the requester's identity was checked."
        when = None
        try:
            when = datetime.fromisoformat(form.get("verified_at", "")).replace(tzinfo=moment.tzinfo)
        except ValueError:
            errors["verified_at"] = "Enter when the identity was checked."
        if form.get("confirm") != "yes":
            errors["confirm"] = "Confirm that you checked the requester's identity in person."
        if errors or when is None:
            return errors, None
        verification = Verification("in-person", access.fhir_user, when)
        how = VERIFIED_WITH[form["verified_with"]]
        record_verification(client, actor, task_id, verification, how=how, **kw)
        return "verify"
    if action == "match":
        result = match_patient(client, actor, task_id, **kw)
        return "match" if result.matched else ({}, result.candidates)
    if action == "assign":
        if not form.get("patient_id"):
            return {"patient_id": "Pick the client this request is about."}, ()
        assign_patient(client, actor, task_id, form["patient_id"], **kw)
        return "assign"
    if action == "process":
        # A restriction that withdraws a physician-sharing consent stops the shared links.
        process_request(client, actor, task_id, store=links_store(), **kw)
        return "process"
    if action == "extend":
        if not form.get("reason"):
            return {"extend_reason": "Give the reason (it is sent to the requester)."}, None
        from symfhir.notify.email import EmailSender

        def send(to: str, subject: str, text: str) -> object:
            return EmailSender.from_config().send(to, subject, text)

        extended = extend_and_notify(client, actor, task_id, form["reason"], send=send, **kw)
        return "extend" if extended.emailed else "extend-not-emailed"
    if action == "deny":
        if not form.get("reason"):
            return {"deny_reason": "Give the reason (it is sent to the requester)."}, None
        kind = get_request(client, actor, task_id, now=moment, audit=access.audit).request.kind
        if kind == "correction":
            return _deny_correction(client, actor, task_id, form["reason"], kw)
        deny(client, actor, task_id, form["reason"], **kw)
        return "deny"
    # complete
    errors = {}
    if form.get("close_as") not in CLOSE_AS:
        errors["close_as"] = "Say whether the request was completed in full or in part."
    if not form.get("summary"):
        errors["summary"] = "Say what was done (it is kept with the request)."
    if errors:
        return errors, None
    complete(client, actor, task_id, Outcome(form["close_as"], summary=form["summary"]), **kw)
    return "complete"

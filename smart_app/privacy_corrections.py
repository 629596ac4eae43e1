"""A practitioner's answer to a correction request on the client's Privacy tab
(``/privacy/corrections/<task>/accept|deny``), and the client's statement of disagreement with
a denied one, typed by staff at the desk (``/privacy/corrections/<task>/disagree``): each a
CSRF-protected POST of the Task version the tab showed, handed to ONE workflow of
``symfhir.privacy.correction_review``, then the requester e-mailed the outcome. The proposals
and the denied corrections are listed by ``privacy_corrections.html``, included in the tab."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, url_for

from smart_app import request_page
from smart_app.errors import AppError
from smart_app.fhir_access import current_access, enforce_patient_context
from symfhir.errors import (
    ConfigError,
    DeliveryError,
    FhirConflictError,
    NotAllowedError,
    PrivacyRequestError,
    RecordError,
)
from symfhir.privacy.correction import Change, awaits_review, proposal
from symfhir.privacy.correction_review import (
    DISAGREEMENT_OUTPUT,
    CorrectionResult,
    accept_correction,
    deny_correction,
    file_disagreement,
)
from symfhir.privacy.model import DENIED, PrivacyRequest

log = logging.getLogger(__name__)

bp = Blueprint("privacy_corrections", __name__, url_prefix="/privacy/corrections")
bp.before_request(enforce_patient_context)


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    # For privacy_corrections.html, included in the Privacy tab.
    return {
        "awaits_review": awaits_review,
        "proposal": proposal,
        "may_disagree": may_disagree,
    }


def may_disagree(request: PrivacyRequest) -> bool:
    """A denied correction with no statement of disagreement on file yet."""
    return (
        request.kind == "correction"
        and request.business_status == DENIED
        and not any(o.label == DISAGREEMENT_OUTPUT for o in request.outputs)
    )


ACTIONS = ("replace", "note", "entered-in-error")


def _refused(status: int, code: str, message: str) -> AppError:
    return AppError(status, code, "The correction was not answered", message)


def tell_requester(result: CorrectionResult) -> str:
    """E-mail the requester the outcome; "emailed", or why not (PHI-free)."""
    if result.notice is None:
        return "no-email"
    from symfhir.privacy.commands import send_email

    try:
        send_email(result.notice.to, result.notice.subject, result.notice.text)
    except (ConfigError, DeliveryError) as exc:
        log.warning("correction outcome not e-mailed: %s", type(exc).__name__)
        return "not-emailed"
    return "emailed"


def _not_allowed(exc: NotAllowedError, what: str) -> AppError:
    if exc.read_only or not exc.missing:
        return _refused(403, "read_only", "This session may not change the record.")
    granted = ", ".join(f"{t}.{i}" for t, i in exc.missing)
    return _refused(
        403, "not_granted", f"This session may not {what}: the EHR did not grant {granted}."
    )


@bp.post("/<task_id>/disagree")
def disagree(task_id: str) -> Any:
    access = current_access()
    page = request_page.RequestPage(access, "privacy", access.patient_id)
    request_page.load(page, task_id)  # another client's request: 403, audited
    statement = (request.form.get("statement") or "").strip()
    if not statement:
        raise _refused(400, "statement_required", "Type the client's statement.")
    if request.form.get("confirm") != "yes":
        raise _refused(
            400, "confirm_required", "Confirm that the statement is the client's own words."
        )
    try:
        result = file_disagreement(
            access.client,
            access.actor,
            task_id,
            statement,
            version=(request.form.get("version") or "").strip() or None,
            now=request_page.now(),
            audit=access.audit,
        )
    except NotAllowedError as exc:
        raise _not_allowed(exc, "file a statement") from None
    except FhirConflictError:
        raise _refused(
            409, "stale", "The request changed meanwhile: reload and try again."
        ) from None
    except RecordError as exc:
        raise _refused(400, "bad_value", f"The statement {exc.reason}.") from None
    except PrivacyRequestError as exc:
        raise _refused(400, "refused", f"{str(exc).capitalize()}.") from None
    told = tell_requester(result)
    url = url_for("privacy.index", correction=f"disagree-{told}", task=task_id)
    return redirect(url + "#correction-answered", 303)


@bp.post("/<task_id>/<decision>")
def decide(task_id: str, decision: str) -> Any:
    if decision not in ("accept", "deny"):
        raise AppError(404, "not_found", "Not found", "There is no such page.")
    access = current_access()
    page = request_page.RequestPage(access, "privacy", access.patient_id)
    item = request_page.load(page, task_id)  # another client's request: 403, audited
    form = {
        k: (request.form.get(k) or "").strip()
        for k in ("version", "value", "action", "reason", "target")
    }
    kw: dict[str, Any] = {
        "version": form["version"] or None,
        "now": request_page.now(),
        "audit": access.audit,
    }
    try:
        if decision == "accept":
            value = form["value"] or proposal(item.request)
            action = form["action"] if form["action"] in ACTIONS else None
            change = Change(value, action, form["target"] or None)
            result = accept_correction(access.client, access.actor, task_id, change=change, **kw)
        else:
            if not form["reason"]:
                raise _refused(400, "reason_required", "Give the reason for the denial.")
            result = deny_correction(
                access.client, access.actor, task_id, reason=form["reason"], **kw
            )
    except NotAllowedError:
        raise _refused(403, "read_only", "This session may not change the record.") from None
    except FhirConflictError:
        raise _refused(
            409, "stale", "The request or the record changed meanwhile: reload and try again."
        ) from None
    except RecordError as exc:
        raise _refused(400, "bad_value", f"The corrected {exc.field} {exc.reason}.") from None
    except PrivacyRequestError as exc:
        raise _refused(400, "refused", f"{str(exc).capitalize()}.") from None
    told = tell_requester(result)
    url = url_for("privacy.index", correction=f"{decision}-{told}", task=task_id)
    return redirect(url + "#correction-answered", 303)

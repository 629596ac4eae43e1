"""The Consents page (``/consents``): every consent kind with its status and history, capture
of a consent (drawn or typed signature) and withdrawal. The workflows are
``symfhir.workspace.consents.recording``; this module parses the form, calls one and renders."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from smart_app.app_store import app_store
from smart_app.errors import AppError
from smart_app.fhir_access import current_access, enforce_patient_context
from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirValidationError, NotAllowedError
from symfhir.sharing.scopes import load_sharing
from symfhir.store import Store
from symfhir.workspace.consents.capture import KIND_SHARING
from symfhir.workspace.consents.guardians import NEW, NEW_RELATIONSHIPS
from symfhir.workspace.consents.recording import (
    ConsentRecord,
    capture_consent,
    read_consents,
    withdraw_consent,
)

log = logging.getLogger(__name__)

bp = Blueprint("consents", __name__, url_prefix="/consents")
bp.before_request(enforce_patient_context)

SAVED_MESSAGES = {
    "given": "Consent recorded as given.",
    "declined": "Consent recorded as declined.",
    "withdrawn": "Consent withdrawn.",
}
KEPT_AS_DOCUMENT = (
    "This EHR cannot store consents as such: it was kept as a document (DocumentReference)."
)
#: Where a capture opened from another tab goes back once the consent is recorded: the
#: ``return`` parameter names one of these, never a URL (no open redirect). The Sharing tab
#: shows the new consent (its ``saved`` notice says which decision was recorded).
RETURNS = {"sharing": ("sharing.index", "sharing-consent")}
READ_ONLY = AppError(
    403,
    "read_only",
    "This session is read-only",
    "The EHR granted symfhir permission to read this record but not to change it, "
    "so consents cannot be recorded or withdrawn here.",
)


def _render(
    record: ConsentRecord,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    withdraw_error: str = "",
    saved: str = "",
) -> tuple[str, int]:
    page = render_template(
        "consents.html",
        overview=record.overview,
        minor=record.minor,
        age_known=record.age_known,
        failed=record.failed,
        truncated=record.truncated,
        default_version=record.default_version,
        guardians=record.guardians,
        guardians_read=record.guardians_read,
        may_add_guardian=record.may_add_guardian,
        new_choice=NEW,
        new_relationships=NEW_RELATIONSHIPS,
        writable=current_access().writable,
        errors=errors or {},
        form=form or {},
        withdraw_error=withdraw_error,
        saved=_saved_message(saved, request.args.get("kind", "")),
        saved_kind=request.args.get("kind", "") if saved else "",
        physician=record.physician,
        share_scopes=list(load_sharing().scopes.values()),
        sharing_label=load_consent_kinds().kinds[KIND_SHARING].label,
        # /consents?capture=physician_sharing opens the form on that kind (from Sharing).
        preselect=request.args.get("capture", ""),
        links_stopped=request.args.get("stopped", ""),
        return_to=_return_to(),
    )
    return page, status


def _return_to() -> str:
    """The allowed ``return`` of this request (query or form), '' for none or any other."""
    value = request.values.get("return", "")
    return value if value in RETURNS else ""


def _saved_message(saved: str, kind: str) -> str:
    message = SAVED_MESSAGES.get(saved, "")
    spec = load_consent_kinds().kinds.get(kind)
    if message and request.args.get("kept") == "document":
        message += " " + KEPT_AS_DOCUMENT
    return f"{spec.label}: {message[0].lower()}{message[1:]}" if message and spec else message


def _invalid(what: str) -> AppError:
    return AppError(
        500,
        "invalid_consent",
        f"The consent could not be {what}",
        "symfhir built a Consent the FHIR rules do not accept. Nothing was written.",
    )


@bp.get("")
@bp.get("/")
def index() -> Any:
    access = current_access()
    record = read_consents(access.client, access.actor, access.patient_id, audit=access.audit)
    return _render(record, saved=request.args.get("saved", ""))


@bp.post("/capture")
def capture() -> Any:
    access = current_access()
    form = {k: v for k, v in request.form.items() if k not in ("csrf_token", "return")}
    try:
        result = capture_consent(
            access.client, access.actor, access.patient_id, form, audit=access.audit
        )
    except NotAllowedError:
        raise READ_ONLY from None
    except FhirValidationError as exc:
        log.warning("consent capture: invalid FHIR (%d problems)", len(exc.problems))
        raise _invalid("recorded") from None
    if result.outcome == "invalid":
        # A drawn signature is not sent back to the page: it is drawn again.
        form.pop("signature_data", None)
        return _render(result.record, status=400, errors=result.errors, form=form)
    back = _return_to()
    if back and not result.fallback:
        # Kept as a document, the consent is explained on the Consents page: stay there.
        endpoint, anchor = RETURNS[back]
        return redirect(url_for(endpoint, saved=f"consent-{result.decision}") + f"#{anchor}", 303)
    return redirect(
        url_for(
            "consents.index",
            saved=result.decision,
            kind=result.kind,
            **({"kept": "document"} if result.fallback else {}),
        )
        + "#consent-saved",
        303,
    )


@bp.post("/withdraw")
def withdraw() -> Any:
    access = current_access()
    kind = (request.form.get("kind") or "").strip()
    shown = (request.form.get("consent_id") or "", request.form.get("version") or "")
    try:
        result = withdraw_consent(
            access.client,
            access.actor,
            access.patient_id,
            kind,
            shown,
            audit=access.audit,
            store=links_store() if kind == KIND_SHARING else None,
        )
    except NotAllowedError:
        raise READ_ONLY from None
    except FhirValidationError as exc:
        log.warning("consent withdrawal: invalid FHIR (%d problems)", len(exc.problems))
        raise _invalid("withdrawn") from None
    if result.outcome == "refused":
        return _render(result.record, status=400, withdraw_error=result.problem)
    if result.outcome == "changed":
        return _render(result.record, status=409, withdraw_error=result.problem)
    stopped = {"stopped": str(result.links_stopped)} if result.links_stopped else {}
    return redirect(
        url_for("consents.index", saved="withdrawn", kind=kind, **stopped) + "#consent-saved", 303
    )


def links_store() -> Store | None:
    """The store the shared links live in; None where sharing is not set up (no links to
    stop, and the link service re-checks the consent at every access anyway)."""
    try:
        return app_store()
    except AppError:
        return None

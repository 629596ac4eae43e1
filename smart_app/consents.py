"""The Consents page (``/consents``): every consent kind with its status and history, capture
of a consent (drawn or typed signature) and withdrawal. Thin: the logic is in
``symfhir.workspace.consents``; each submit is one FHIR transaction and one AuditEvent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from smart_app.errors import AppError
from smart_app.fhir_access import PatientAccess, current_access, enforce_patient_context
from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirConflictError, FhirValidationError
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources
from symfhir.mapping.context import MappingContext
from symfhir.smart.scopes import allows
from symfhir.workspace.consents.capture import capture_bundle, capture_entries, parse_capture
from symfhir.workspace.consents.guardians import NEW, NEW_RELATIONSHIPS, guardians_on_file
from symfhir.workspace.consents.status import basis_of, consent_overview, is_minor, patient_age
from symfhir.workspace.consents.withdrawal import (
    CHANGED_MEANWHILE,
    find_withdrawable,
    withdrawal_bundle,
)

log = logging.getLogger(__name__)

bp = Blueprint("consents", __name__, url_prefix="/consents")
bp.before_request(enforce_patient_context)

PAGE_SIZE = 200
RELATED_PAGE_SIZE = 50
LABELS = ["Patient", "Consent", "RelatedPerson"]
SAVED_MESSAGES = {
    "given": "Consent recorded as given.",
    "declined": "Consent recorded as declined.",
    "withdrawn": "Consent withdrawn.",
}


def consents_batch(patient_id: str, related: bool = True) -> dict[str, Any]:
    """One batch: the Patient (for the birth date), the patient's Consents, newest first, and
    (``related``) the patient's RelatedPersons, the parents and guardians who may sign."""
    pid = check_id(patient_id)
    urls = [
        f"Patient/{pid}",
        f"Consent?patient=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
    ]
    if related:
        urls.append(f"RelatedPerson?patient=Patient/{pid}&_count={RELATED_PAGE_SIZE}")
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


def _context() -> MappingContext:
    return MappingContext.load(datetime.now(UTC))


def _read(access: PatientAccess, ctx: MappingContext) -> dict[str, Any]:
    """The page's data from one batch: overview, age, guardians on file, failed, truncated.

    The RelatedPersons are searched only when the launch may search them (without that scope
    the page offers none on file; a new guardian still needs RelatedPerson create)."""
    related = allows(access.scopes, "RelatedPerson", "s")
    batch = consents_batch(access.patient_id, related)
    found = batch_resources(access.client.batch(batch), LABELS)
    patient = next(
        (
            r
            for r in found.resources
            if r.get("resourceType") == "Patient" and r.get("id") == access.patient_id
        ),
        None,
    )
    target = f"Patient/{access.patient_id}"
    consents = [
        r
        for r in found.resources
        if r.get("resourceType") == "Consent"
        and str((r.get("patient") or {}).get("reference", "")).endswith(target)
    ]
    kinds = load_consent_kinds()
    age = patient_age(patient, ctx.today)
    return {
        "overview": consent_overview(consents, kinds),
        "consents": {str(c.get("id")): c for c in consents},
        "age": age,
        "minor": is_minor(age),
        "age_known": patient is not None and age is not None,
        "guardians": guardians_on_file(found.resources, access.patient_id, ctx),
        "guardians_read": related and "RelatedPerson" not in found.failed,
        "may_add_guardian": allows(access.scopes, "RelatedPerson", "c"),
        "failed": found.failed,
        "truncated": found.truncated,
        "default_version": ctx.spa.privacy_policy_version,
    }


def _render(
    data: dict[str, Any],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    withdraw_error: str = "",
    saved: str = "",
) -> tuple[str, int]:
    access = current_access()
    page = render_template(
        "consents.html",
        overview=data["overview"],
        minor=data["minor"],
        age_known=data["age_known"],
        failed=data["failed"],
        truncated=data["truncated"],
        default_version=data["default_version"],
        guardians=data["guardians"],
        guardians_read=data["guardians_read"],
        may_add_guardian=data["may_add_guardian"],
        new_choice=NEW,
        new_relationships=NEW_RELATIONSHIPS,
        writable=access.writable,
        errors=errors or {},
        form=form or {},
        withdraw_error=withdraw_error,
        saved=_saved_message(saved, request.args.get("kind", "")),
        saved_kind=request.args.get("kind", "") if saved else "",
    )
    return page, status


def _saved_message(saved: str, kind: str) -> str:
    message = SAVED_MESSAGES.get(saved, "")
    spec = load_consent_kinds().kinds.get(kind)
    return f"{spec.label}: {message[0].lower()}{message[1:]}" if message and spec else message


def _require_writable(access: PatientAccess) -> None:
    if not access.writable:
        raise AppError(
            403,
            "read_only",
            "This session is read-only",
            "The EHR granted symfhir permission to read this record but not to change it, "
            "so consents cannot be recorded or withdrawn here.",
        )


@bp.get("")
@bp.get("/")
def index() -> Any:
    access = current_access()
    ctx = _context()
    data = _read(access, ctx)
    read = "Patient, Consent" + (
        ", RelatedPerson" if allows(access.scopes, "RelatedPerson", "s") else ""
    )
    access.audit("read", description=f"consents view read {read}")
    return _render(data, saved=request.args.get("saved", ""))


@bp.post("/capture")
def capture() -> Any:
    access = current_access()
    _require_writable(access)
    ctx = _context()
    data = _read(access, ctx)
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    kinds = load_consent_kinds()
    parsed, errors = parse_capture(
        request.form,
        kinds,
        ctx,
        data["age"],
        data["guardians"],
        may_add_guardian=data["may_add_guardian"],
    )
    if parsed is None:
        # A drawn signature is not sent back to the page: it is drawn again.
        form.pop("signature_data", None)
        return _render(data, status=400, errors=errors, form=form)
    try:
        basis = basis_of(data["overview"], parsed.kind)
        entries = capture_entries(parsed, access.patient_id, access.fhir_user, kinds, ctx, basis)
    except FhirValidationError as exc:
        log.warning("consent capture: invalid FHIR (%d problems)", len(exc.problems))
        raise AppError(
            500,
            "invalid_consent",
            "The consent could not be recorded",
            "symfhir built a Consent the FHIR rules do not accept. Nothing was written.",
        ) from None
    access.client.transaction(capture_bundle(entries))
    guardian = parsed.guardian
    what = " and a RelatedPerson" if guardian is not None and not guardian.on_file else ""
    access.audit("create", description=f"consents page recorded a {parsed.kind} Consent{what}")
    return redirect(
        url_for("consents.index", saved=parsed.decision, kind=parsed.kind) + "#consent-saved",
        303,
    )


@bp.post("/withdraw")
def withdraw() -> Any:
    access = current_access()
    _require_writable(access)
    ctx = _context()
    data = _read(access, ctx)
    kind = (request.form.get("kind") or "").strip()
    current, problem = find_withdrawable(data["overview"], kind)
    if current is None:
        return _render(data, status=400, withdraw_error=problem)
    shown = (request.form.get("consent_id") or "", request.form.get("version") or "")
    if shown != ("", "") and shown != (current.id, current.version):
        return _render(data, status=409, withdraw_error=CHANGED_MEANWHILE)
    try:
        bundle = withdrawal_bundle(
            data["consents"][current.id], current.version, access.patient_id, access.fhir_user, ctx
        )
    except FhirValidationError as exc:
        log.warning("consent withdrawal: invalid FHIR (%d problems)", len(exc.problems))
        raise AppError(
            500,
            "invalid_consent",
            "The consent could not be withdrawn",
            "symfhir built a Consent the FHIR rules do not accept. Nothing was written.",
        ) from None
    try:
        access.client.transaction(bundle)
    except FhirConflictError:
        log.info("consent withdrawal: version conflict")
        return _render(_read(access, ctx), status=409, withdraw_error=CHANGED_MEANWHILE)
    access.audit("update", description=f"consents page withdrew a {kind} Consent")
    return redirect(url_for("consents.index", saved="withdrawn", kind=kind) + "#consent-saved", 303)

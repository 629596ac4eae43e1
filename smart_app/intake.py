"""The intake page (``/intake``): the intake Questionnaire as a form, pre-filled from the
client's latest response; a submit saves it. The workflows are
``symfhir.workspace.intake.saving``; this module parses the form, calls one and renders."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from smart_app.errors import AppError
from smart_app.fhir_access import current_access, enforce_patient_context
from symfhir.errors import FhirValidationError, NotAllowedError
from symfhir.workspace.intake.saving import IntakeForm, read_intake, save_intake

bp = Blueprint("intake", __name__, url_prefix="/intake")
bp.before_request(enforce_patient_context)

WORDS = {"c": "create", "u": "update"}


def _page(form: IntakeForm, *, saved: bool = False, failed: bool = False) -> str:
    return render_template(
        "intake.html",
        title=form.title,
        fields=form.fields,
        errors=form.errors,
        writable=current_access().writable,
        saved=saved,
        prefilled=form.prefilled,
        failed=failed,
    )


@bp.get("")
def form() -> Any:
    access = current_access()
    found = read_intake(access.client, access.actor, access.patient_id, audit=access.audit)
    return _page(found, saved=request.args.get("saved") == "1")


@bp.post("")
def submit() -> Any:
    access = current_access()
    posted = {name: request.form.getlist(name) for name in request.form}
    try:
        result = save_intake(
            access.client, access.actor, access.patient_id, posted, audit=access.audit
        )
    except NotAllowedError as exc:
        if exc.read_only:
            raise AppError(
                403,
                "read_only",
                "This record is read-only",
                "The EHR granted symfhir permission to read this record but not to change it.",
            ) from None
        missing = ", ".join(f"{t} ({WORDS.get(i, i)})" for t, i in exc.missing)
        raise AppError(
            403,
            "scope_missing",
            "The EHR did not allow saving the intake",
            f"symfhir may not write {missing} for this client. Nothing was saved.",
        ) from None
    except FhirValidationError:
        raise AppError(
            500,
            "intake_invalid",
            "The intake could not be saved",
            "symfhir built a record the FHIR server would not accept. Nothing was saved.",
        ) from None
    if result.outcome == "invalid":
        return _page(result.form), 400
    if result.outcome == "failed":
        return _page(result.form, failed=True), 502
    return redirect(url_for("intake.form", saved="1"), 303)

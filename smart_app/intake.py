"""The intake page (``/intake``): the intake Questionnaire as a form, pre-filled from the
patient's latest QuestionnaireResponse; a submit writes, in one transaction, the response, its
extracted Observations, the history resources extracted from it (allergies, medications,
conditions, prior treatments: created, or updated with If-Match when the form changed them or
no longer lists them) and a Provenance. The form logic is in ``symfhir.workspace.intake``; this
module only reads, writes, audits and renders."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from smart_app.errors import AppError
from smart_app.fhir_access import PatientAccess, current_access, enforce_patient_context
from symfhir.errors import FhirAuthError, FhirServerError
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources
from symfhir.mapping.context import MappingContext, load_questionnaire
from symfhir.mapping.refs import identifier
from symfhir.smart.scopes import allows
from symfhir.validation import FastValidator
from symfhir.workspace.intake.fields import build_form
from symfhir.workspace.intake.history import Extracted, extract_history
from symfhir.workspace.intake.questionnaire import Errors, Values
from symfhir.workspace.intake.reconcile import history_reads
from symfhir.workspace.intake.response import questionnaire_response
from symfhir.workspace.intake.submission import HistoryState, submission
from symfhir.workspace.intake.values import values_from_form, values_from_response
from symfhir.workspace.photos import client_key

log = logging.getLogger(__name__)

bp = Blueprint("intake", __name__, url_prefix="/intake")
bp.before_request(enforce_patient_context)

_validator = FastValidator()


def latest_response_search(patient_id: str, questionnaire_url: str) -> dict[str, str]:
    """The search for a patient's newest response to a Questionnaire."""
    return {
        "subject": f"Patient/{check_id(patient_id)}",
        "questionnaire": questionnaire_url,
        # authored has whole seconds: two saves in one second go to the one written last.
        "_sort": "-authored,-_lastUpdated",
        "_count": "1",
    }


def latest_response(access: PatientAccess, questionnaire: dict[str, Any]) -> dict[str, Any] | None:
    """The patient's most recent QuestionnaireResponse to ``questionnaire`` (first page only)."""
    params = latest_response_search(access.patient_id, questionnaire["url"])
    for bundle in access.client.search_bundles("QuestionnaireResponse", params):
        for item in bundle.get("entry") or []:
            resource = item.get("resource") if isinstance(item, dict) else None
            mode = (item.get("search") or {}).get("mode", "match")
            if isinstance(resource, dict) and mode == "match":
                return resource
        break  # one page: the newest is on it
    return None


def _page(
    access: PatientAccess,
    questionnaire: dict[str, Any],
    values: Values,
    errors: Errors,
    *,
    saved: bool = False,
    prefilled: bool = False,
    failed: bool = False,
) -> str:
    return render_template(
        "intake.html",
        title=questionnaire.get("title") or "Intake",
        fields=build_form(questionnaire, values, errors),
        errors=errors,
        writable=access.writable,
        saved=saved,
        prefilled=prefilled,
        failed=failed,
    )


@bp.get("")
def form() -> Any:
    access = current_access()
    questionnaire = load_questionnaire()
    latest = latest_response(access, questionnaire)
    access.audit("search", description="intake form read QuestionnaireResponse")
    values = values_from_response(questionnaire, latest)
    saved = request.args.get("saved") == "1"
    return _page(access, questionnaire, values, {}, saved=saved, prefilled=latest is not None)


@bp.post("")
def submit() -> Any:
    access = current_access()
    if not access.writable:
        raise AppError(
            403,
            "read_only",
            "This record is read-only",
            "The EHR granted symfhir permission to read this record but not to change it.",
        )
    questionnaire = load_questionnaire()
    posted = {name: request.form.getlist(name) for name in request.form}
    ctx = MappingContext.load(datetime.now(UTC))
    response, errors = questionnaire_response(
        questionnaire,
        posted,
        patient_id=access.patient_id,
        author=access.fhir_user,
        authored=ctx.now.astimezone(ctx.spa.zone).isoformat(timespec="seconds"),
        today=ctx.today,
    )
    values = values_from_form(questionnaire, posted)
    facts: list[Extracted] = []
    if not errors:
        facts, errors = extract_history(questionnaire, response, ctx, values)
    if errors:
        return _page(access, questionnaire, values, errors), 400
    try:
        state = _history_state(access, questionnaire, facts, ctx)
    except FhirAuthError:
        raise
    except FhirServerError as exc:
        log.warning("intake not saved, history not read: %s", exc.log_text)
        state = None
    if state is None:
        access.audit("search", success=False, description="intake not saved: history not read")
        return _page(access, questionnaire, values, {}, failed=True), 502
    plan = submission(questionnaire, response, access.patient_id, ctx, facts, state)
    missing = [
        f"{t} ({'update' if method == 'u' else 'create'})"
        for method in ("c", "u")
        for t in plan.types(method)
        if not allows(access.scopes, t, method)
    ]
    if missing:
        raise AppError(
            403,
            "scope_missing",
            "The EHR did not allow saving the intake",
            "symfhir may not write " + ", ".join(missing) + " for this client. Nothing was saved.",
        )
    for resource in plan.resources():
        if _validator.validate_fhir_json(resource):
            # A bug of ours, not of the answers: say so without writing anything.
            raise AppError(
                500,
                "intake_invalid",
                "The intake could not be saved",
                "symfhir built a record the FHIR server would not accept. Nothing was saved.",
            )
    try:
        access.client.transaction(plan.bundle())
    except FhirAuthError:
        raise  # the error page says the EHR refused
    except FhirServerError as exc:
        # One transaction: nothing was written (a version conflict included). Keep what was
        # entered so it can be sent again.
        log.warning("intake not saved: %s", exc.log_text)  # log_text is PHI-free
        access.audit("create", success=False, description="intake not saved: server error")
        return _page(access, questionnaire, values, {}, failed=True), 502
    access.audit("create", description="intake saved " + ", ".join(plan.types("c")))
    if plan.updates:
        access.audit("update", description="intake updated " + ", ".join(plan.types("u")))
    return redirect(url_for("intake.form", saved="1"), 303)


def _history_state(
    access: PatientAccess,
    questionnaire: dict[str, Any],
    facts: list[Extracted],
    ctx: MappingContext,
) -> HistoryState | None:
    """What the history extraction is compared with: the previous intake's facts and the
    server's history resources symfhir identified, keyed by the Patient's spa client id.
    None when a read failed (then nothing is written: a removal must not be missed)."""
    previous = latest_response(access, questionnaire)
    earlier, _ = extract_history(questionnaire, previous, ctx)
    types = {f.resource_type for f in [*facts, *earlier]}
    if not types:
        return HistoryState(access.patient_id)
    labels = ["Patient", *sorted(types)]
    found = batch_resources(
        access.client.batch(history_reads(access.patient_id, types, ctx)), labels
    )
    access.audit("search", description="intake read Patient, " + ", ".join(sorted(types)))
    if found.failed or found.truncated:
        return None
    patient = next(
        (
            r
            for r in found.resources
            if r.get("resourceType") == "Patient" and r.get("id") == access.patient_id
        ),
        None,
    )
    if patient is None:
        return None
    system = identifier(ctx, "client-id", "")["system"]
    key = client_key(patient, system, access.patient_id)
    return HistoryState(key, earlier, found.resources)

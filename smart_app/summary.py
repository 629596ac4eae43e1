"""The client summary page (``/``): ``symfhir.workspace.summary.read_summary`` for the launched
patient, rendered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from smart_app.fhir_access import current_access, enforce_patient_context
from symfhir.workspace.summary import read_summary

bp = Blueprint("summary", __name__)
bp.before_request(enforce_patient_context)


@bp.get("/")
@bp.get("/patient/<patient_id>")
def index(patient_id: str | None = None) -> Any:
    access = current_access()  # patient_id was checked by enforce_patient_context
    found = read_summary(access.client, access.actor, access.patient_id, audit=access.audit)
    return render_template(
        "summary.html",
        summary=found.summary,
        failed=found.failed,
        truncated=found.truncated,
        show_banner=access.context.get("need_patient_banner", True),
        writable=access.writable,
        patient_id=access.patient_id,
    )

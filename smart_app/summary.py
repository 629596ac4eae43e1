"""The client summary page (``/``): one FHIR batch for the launched patient's record, one
AuditEvent for the view, and the template.

A batch rather than ``Patient?_id=…&_revinclude=…``: a Patient search needs
``patient/Patient.s``, which the app does not ask for (reading needs only ``.r``); in a
batch each entry is checked against its own type's scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template

from smart_app.fhir_access import current_access, enforce_patient_context
from smart_app.summary_data import batch_resources, build_summary
from symfhir.consent_kinds import load_consent_kinds
from symfhir.fhir.paths import check_id
from symfhir.spa import load_spa

bp = Blueprint("summary", __name__)
bp.before_request(enforce_patient_context)

# (type, the search parameter naming the patient, sort): one batch entry each.
SEARCHES = (
    ("AllergyIntolerance", "patient", None),
    ("MedicationStatement", "subject", None),
    ("Condition", "subject", None),
    ("Observation", "subject", "-date"),
    ("Procedure", "subject", "-date"),
    ("Consent", "patient", "-date"),
)
PAGE_SIZE = 200  # one page per search; a fuller record shows the "more records" notice
LABELS = ["Patient", *(t for t, _, _ in SEARCHES)]
READ_TYPES = ", ".join(LABELS)


def summary_batch(patient_id: str) -> dict[str, Any]:
    """The batch Bundle reading the patient and what refers to them (ids need no escaping:
    ``check_id`` allows only [A-Za-z0-9.-])."""
    pid = check_id(patient_id)
    entries = [{"request": {"method": "GET", "url": f"Patient/{pid}"}}]
    for resource_type, parameter, sort in SEARCHES:
        url = f"{resource_type}?{parameter}=Patient/{pid}&_count={PAGE_SIZE}"
        if sort:
            url += f"&_sort={sort}"
        entries.append({"request": {"method": "GET", "url": url}})
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


@bp.get("/")
@bp.get("/patient/<patient_id>")
def index(patient_id: str | None = None) -> Any:
    access = current_access()  # patient_id was checked by enforce_patient_context
    answer = access.client.batch(summary_batch(access.patient_id))
    found = batch_resources(answer, LABELS)
    access.audit("read", description=f"summary view read {READ_TYPES}")
    today = datetime.now(UTC).astimezone(load_spa().zone).date()  # the spa's calendar day
    summary = build_summary(found.resources, access.patient_id, load_consent_kinds(), today=today)
    return render_template(
        "summary.html",
        summary=summary,
        failed=found.failed,
        truncated=found.truncated,
        show_banner=access.context.get("need_patient_banner", True),
        writable=access.writable,
        patient_id=access.patient_id,
    )

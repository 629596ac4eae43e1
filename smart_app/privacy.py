"""The client's Privacy tab (``/privacy``): the launched client's privacy requests by due date,
"New privacy request" taken at the desk with the requester's identity verified in person
(who: the signed-in practitioner; how; when), each request's page and actions
(``smart_app.request_page``), a portability request's transfer to another provider
(``smart_app.request_transfer``), and a completed access package handed over at the desk
(``symfhir.privacy.handover``). Views parse the form, call one workflow and render."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from flask import Blueprint, redirect, render_template, request, send_file, url_for

from smart_app import request_page, request_transfer
from smart_app.errors import AppError
from smart_app.fhir_access import current_access, enforce_patient_context
from smart_app.request_page import VERIFIED_WITH, RequestPage
from symfhir.errors import ExportError, NotAllowedError, PrivacyRequestError, RecordError
from symfhir.privacy.handover import hand_over_package
from symfhir.privacy.model import KINDS, Requester, Verification
from symfhir.privacy.requests import NewRequest, list_requests, submit_request
from symfhir.spa import load_spa
from symfhir.terminology import load_terminology

log = logging.getLogger(__name__)

bp = Blueprint("privacy", __name__, url_prefix="/privacy")
bp.before_request(enforce_patient_context)

FORM_FIELDS = (
    "kind", "name", "birth_date", "email", "phone", "agent", "details", "verified_with",
    "verified_at", "confirm",
)  # fmt: skip
READ_ONLY = AppError(
    403,
    "read_only",
    "This session is read-only",
    "The EHR granted symfhir permission to read this record but not to change it, "
    "so privacy requests cannot be recorded here.",
)


def _now() -> datetime:
    return datetime.now(load_spa().zone)


def _kind_labels() -> dict[str, str]:
    terms = load_terminology()
    return {kind: terms.coding("privacy_request", kind)["display"] for kind in KINDS}


def _render(
    *, status: int = 200, errors: dict[str, str] | None = None, form: dict[str, str] | None = None
) -> tuple[str, int]:
    access = current_access()
    now = _now()
    page = list_requests(
        access.client,
        access.actor,
        patient_id=access.patient_id,
        include_closed=True,
        page_size=100,
        now=now,
        audit=access.audit,
    )
    html = render_template(
        "privacy.html",
        items=page.items,
        total=page.total,
        kinds=_kind_labels(),
        verified_with=VERIFIED_WITH,
        writable=access.writable,
        errors=errors or {},
        form=form or {"verified_at": now.strftime("%Y-%m-%dT%H:%M")},
        saved=request.args.get("saved", ""),
    )
    return html, status


@bp.get("")
@bp.get("/")
def index() -> Any:
    return _render()


def _parse(form: dict[str, str], now: datetime) -> tuple[NewRequest | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if form.get("kind") not in KINDS:
        errors["kind"] = "Choose the kind of request."
    birth = None
    if form.get("birth_date"):
        try:
            birth = date.fromisoformat(form["birth_date"])
        except ValueError:
            errors["birth_date"] = "Enter the date of birth as YYYY-MM-DD."
    if form.get("verified_with") not in VERIFIED_WITH:
        errors["verified_with"] = "Say how the requester's identity was checked."
    when = None
    try:
        when = datetime.fromisoformat(form.get("verified_at", "")).replace(tzinfo=now.tzinfo)
    except ValueError:
        errors["verified_at"] = "Enter when the identity was checked."
    if form.get("confirm") != "yes":
        errors["confirm"] = "Confirm that you checked the requester's identity in person."
    if errors or when is None:
        return None, errors
    access = current_access()
    requester = Requester(
        form.get("name", ""),
        birth,
        form.get("email") or None,
        form.get("phone") or None,
        form.get("agent") or None,
    )
    verification = Verification("in-person", access.fhir_user, when)
    new = NewRequest(
        kind=form["kind"],
        requester=requester,
        details=form.get("details", ""),
        inputs={"verified-with": VERIFIED_WITH[form["verified_with"]]},
        patient_id=access.patient_id,
        verifications=(verification,),
    )
    return new, {}


@bp.post("/new")
def new() -> Any:
    access = current_access()
    form = {k: (request.form.get(k) or "").strip() for k in FORM_FIELDS}
    now = _now()
    parsed, errors = _parse(form, now)
    if parsed is None:
        return _render(status=400, errors=errors, form=form)
    try:
        submitted = submit_request(access.client, access.actor, parsed, now=now, audit=access.audit)
    except NotAllowedError:
        raise READ_ONLY from None
    except RecordError as exc:
        return _render(status=400, errors={exc.field: f"This {exc.reason}."}, form=form)
    except PrivacyRequestError as exc:
        return _render(status=400, errors={"verified_at": str(exc).capitalize() + "."}, form=form)
    url = url_for("privacy.index", saved=submitted.request.task_id)
    return redirect(url + "#request-saved", 303)


def _page() -> RequestPage:
    access = current_access()
    return RequestPage(access, bp.name, access.patient_id)


@bp.get("/requests/<task_id>", endpoint="request_page")
def request_page_view(task_id: str) -> Any:
    return request_page.render(_page(), task_id)


@bp.post("/requests/<task_id>/<action>")
def request_action(task_id: str, action: str) -> Any:
    return request_page.act(_page(), task_id, action)


@bp.post("/requests/<task_id>/transfer")
def transfer(task_id: str) -> Any:
    return request_transfer.transfer(_page(), task_id)


@bp.post("/requests/<task_id>/package")
def package(task_id: str) -> Any:
    """Stream the request's access package to the desk (a disclosure to the requester,
    recorded before the first byte); never cached."""
    page = _page()
    request_page.load(page, task_id)  # another client's request: 403, audited
    access = page.access
    try:
        found = hand_over_package(
            access.client,
            access.actor,
            task_id,
            patient_id=access.patient_id,
            now=_now(),
            audit=access.audit,
        )
    except NotAllowedError:
        return request_page.render(
            page,
            task_id,
            status=403,
            problem="This session may not read privacy requests, so the package cannot be "
            "handed over here.",
        )
    except (PrivacyRequestError, ExportError) as exc:
        return request_page.render(page, task_id, status=404, problem=str(exc).capitalize() + ".")
    response = send_file(
        found.path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=found.name,
        conditional=False,
        etag=False,
        max_age=0,
    )
    response.headers["Cache-Control"] = "no-store"
    return response

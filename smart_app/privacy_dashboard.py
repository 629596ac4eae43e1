"""The privacy officer's dashboard (``/privacy-dashboard``): every open privacy request, sorted
by due date, overdue in red, paged, each linking to its page and actions
(``smart_app.request_page``: verify, match, process, extend, close; a portability request's
transfer to another provider, ``smart_app.request_transfer``). Opened by a user-level
launch without a patient (``/privacy-dashboard/launch``, scopes SYMFHIR_OFFICER_SCOPES). The
list is ``symfhir.privacy.requests.list_requests``; views parse, call one workflow, render."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, g, render_template, request, session

from smart_app import request_transfer
from smart_app.audit import write_audit
from smart_app.errors import session_expired
from smart_app.fhir_access import CONTEXT, PatientAccess
from smart_app.launch.views import begin_launch
from smart_app.request_page import RequestPage, act, render
from symfhir.audit import DisclosureTo, unmatched_trail_event
from symfhir.privacy.model import KINDS
from symfhir.privacy.requests import list_requests
from symfhir.smart.scopes import allows
from symfhir.spa import load_spa
from symfhir.terminology import load_terminology

bp = Blueprint("privacy_dashboard", __name__, url_prefix="/privacy-dashboard")

PAGE_SIZE = 50


class OfficerAccess(PatientAccess):
    """The signed-in officer's access after a user-level launch: no patient in context; each
    AuditEvent names the requests (and clients) the page touched, not a launched patient."""

    def audit(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        requested: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        event = unmatched_trail_event(
            subtype,
            self.fhir_user,
            success=success,
            description=description,
            resources=resources,
            disclosure=disclosure,
            now=datetime.now(UTC),
        )
        user_client = self.client if allows(self.scopes, "AuditEvent", "c") else None
        write_audit(event, user_client, self._backend_channel)


def officer_access() -> OfficerAccess:
    """The request's OfficerAccess; AppError 401 without a user-level launch."""
    access = g.get("patient_access")
    if not isinstance(access, OfficerAccess):
        context = session.get(CONTEXT)
        if not isinstance(context, dict) or not context.get("user_level"):
            raise session_expired()
        access = OfficerAccess(
            context, current_app.config["SYMFHIR_CLIENT_ID"], current_app.extensions["symfhir_key"]
        )
        g.patient_access = access  # closed with the request (fhir_access.close_access)
    return access


@bp.get("/launch")
def launch() -> Any:
    return begin_launch(current_app.config["SYMFHIR_OFFICER_SCOPES"], user_level=bp.name + ".index")


@bp.get("")
@bp.get("/")
def index() -> Any:
    access = officer_access()
    page_number = request.args.get("page", "1")
    page_number = int(page_number) if page_number.isdigit() and int(page_number) > 0 else 1
    zone = load_spa().zone
    page = list_requests(
        access.client,
        access.actor,
        now=datetime.now(zone),
        audit=access.audit,
        page=page_number,
        page_size=PAGE_SIZE,
    )
    terms = load_terminology()
    kinds = {kind: terms.coding("privacy_request", kind)["display"] for kind in KINDS}
    return render_template(
        "privacy_dashboard.html",
        page=page,
        kinds=kinds,
        overdue=sum(1 for item in page.items if item.overdue),
    )


@bp.get("/requests/<task_id>", endpoint="request_page")
def request_page_view(task_id: str) -> Any:
    return render(RequestPage(officer_access(), bp.name, None), task_id)


@bp.post("/requests/<task_id>/<action>")
def request_action(task_id: str, action: str) -> Any:
    return act(RequestPage(officer_access(), bp.name, None), task_id, action)


@bp.post("/requests/<task_id>/transfer")
def transfer(task_id: str) -> Any:
    return request_transfer.transfer(RequestPage(officer_access(), bp.name, None), task_id)

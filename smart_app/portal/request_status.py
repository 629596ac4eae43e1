"""The status page of a privacy request and its access package's download, each behind an
unguessable link (``symfhir.privacy.links``). A link tampered with, expired, revoked or used
up is a plain 404 page that says nothing else.

- ``GET /status/<token>``: progress in plain words (status, due date, an extension's reason)
  and, when done, the result: a fresh short-lived download link for an access package, a
  deletion's PHI-free summary, a denial's reason.
- ``GET/POST /request/status-link``: "send my status link again": the request's reference and
  one contact; a new link goes to that contact only when it was verified on that request, and
  the page answers the same whatever was typed (``symfhir.privacy.status_resend``).
- ``GET /download/<token>``: the ZIP the access handler wrote, streamed as an attachment
  (``send_file``; the file's name comes from the link's sealed target, never the request).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request, send_file

from smart_app.errors import AppError, render_error
from smart_app.portal.fhir_client import fhir_client
from smart_app.portal.requests import KIND_LABELS, portal_services, rate_limited_page
from symfhir.errors import FhirNotFoundError, PrivacyRequestError, RateLimited
from symfhir.export.access_request import package_dir
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.portal_requests import package_download, portal_actor, request_status

bp = Blueprint("request_status", __name__)

#: Task.businessStatus in the requester's words.
STATUS_WORDS = {
    "received": "Received: waiting for you to confirm your identity",
    "identity-verified": "Identity confirmed: waiting to be worked on",
    "in-progress": "Being worked on",
    "completed": "Done",
    "partially-completed": "Partly done",
    "denied": "Declined",
}


def _not_found() -> AppError:
    return AppError(404, "not_found", "Not found", "There is nothing at this address.")


@bp.app_errorhandler(404)
def not_found(_error: Exception) -> tuple[str, int]:
    # Any unknown address of the portal looks exactly like a refused link.
    return render_error(_not_found())


@bp.get("/status/<token>")
def status(token: str) -> Any:
    client = fhir_client()
    try:
        view = request_status(
            client,
            portal_actor(),
            token,
            services=portal_services(),
            now=datetime.now(UTC),
            audit=RequestAuditTrail(client, None),
        )
    except (FhirNotFoundError, PrivacyRequestError):
        view = None  # the Task is gone or is not a request: the same as a bad link
    if view is None:
        raise _not_found()
    return render_template(
        "request_status.html",
        view=view,
        kind=KIND_LABELS.get(view.kind, view.kind),
        status=STATUS_WORDS.get(view.business_status, view.business_status),
        is_deletion=view.kind in ("deletion", "ccpa-delete"),
    )


@bp.get("/request/status-link")
def status_link_form() -> str:
    return render_template("status_link.html", asked=False)


@bp.post("/request/status-link")
def status_link_again() -> Any:
    from symfhir.privacy.status_resend import resend_status_link

    client = fhir_client()
    try:
        resend_status_link(
            client,
            portal_actor(),
            request.form.get("reference", "")[:100],
            request.form.get("contact", "")[:320],
            services=portal_services(),
            now=datetime.now(UTC),
            audit=RequestAuditTrail(client, None),
        )
    except RateLimited as exc:
        return rate_limited_page(exc, "Too many tries")
    # The same page whatever was typed and whatever happened: no enumeration.
    return render_template("status_link.html", asked=True)


@bp.get("/download/<token>")
def download(token: str) -> Any:
    client = fhir_client()
    path = package_download(
        client,
        portal_actor(),
        token,
        package_dir(),
        services=portal_services(),
        now=datetime.now(UTC),
        audit=RequestAuditTrail(client, None),
    )
    if path is None:
        raise _not_found()
    answer = send_file(
        path.resolve(),
        mimetype="application/zip",
        as_attachment=True,
        download_name="access-package.zip",
        max_age=0,
        conditional=False,
        etag=False,
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer

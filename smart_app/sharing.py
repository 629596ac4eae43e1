"""The client's Sharing tab (``/sharing``): the physician-sharing consent (or the way to capture
it), SMART Health Links for the client's physician (create, list with every access, revoke),
a push to the physician's FHIR server, and the patient summary as HTML or PDF.

What leaves is computed by ``symfhir.sharing`` from the consent, never from this page: the
views parse the form, call one workflow and render. A new link's key is shown once, in the
page that answers its creation (its viewer URL, ``shlink:/`` and QR code), and kept nowhere.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from smart_app.app_store import app_store
from smart_app.errors import AppError
from smart_app.fhir_access import PatientAccess, current_access, enforce_patient_context
from symfhir.errors import (
    ConsentMissing,
    FhirValidationError,
    NotAllowedError,
    PushError,
    SharingError,
)
from symfhir.sharing.link_settings import LinkServiceSettings, load_link_settings
from symfhir.sharing.push import PushTarget
from symfhir.sharing.scopes import load_sharing
from symfhir.sharing.summary_render import summary_html, summary_pdf
from symfhir.sharing.workflow import (
    LinkSettings,
    create_share,
    push_share,
    revoke_share,
    sharing_overview,
    summary_document,
)
from symfhir.spa import load_spa
from symfhir.urls import secure_url

log = logging.getLogger(__name__)

bp = Blueprint("sharing", __name__, url_prefix="/sharing")
bp.before_request(enforce_patient_context)

#: The scope every share includes (the patient summary document).
SUMMARY = "summary"
#: The most accesses a link may be limited to (a bigger number is no limit in practice).
MAX_ACCESSES_MAX = 1000
PUSH_MODES = {
    "document": "The patient summary document",
    "transaction": "Every shared resource (a transaction, with Provenance)",
}
#: The access log's outcomes (``symfhir.sharing.links``), in words.
OUTCOMES = {
    "ok": "opened",
    "wrong-passcode": "wrong passcode",
    "no-passcode": "no passcode given",
    "inactive": "refused (link no longer active)",
}
#: Back from the Consents page after a capture opened here (``consents.RETURNS``).
CONSENT_SAVED = {
    "consent-given": "The client's consent was recorded: sharing follows it below.",
    "consent-declined": "The client declined: nothing can be shared with their physician.",
}
LINK_FIELDS = ("label", "passcode", "expires_days", "max_accesses", "start", "end")
INVALID_DOCUMENT = AppError(
    500,
    "invalid_summary",
    "The patient summary could not be built",
    "symfhir built a summary document the FHIR rules do not accept, so nothing was shared. "
    "Please report it.",
)
READ_ONLY = AppError(
    403,
    "read_only",
    "This session is read-only",
    "The EHR granted symfhir permission to read this record but not to change it, "
    "so nothing can be shared from here.",
)


@dataclass(frozen=True)
class LinkRequest:
    """A valid "Create a link" form."""

    scopes: tuple[str, ...]
    start: date | None
    end: date | None
    label: str
    passcode: str | None
    expires_at: datetime
    max_accesses: int | None
    long_term: bool = False


def _now() -> datetime:
    return datetime.now(load_spa().zone)


def link_settings() -> LinkSettings:
    """Where the app's links are opened (SYMFHIR_LINKS_BASE_URL): the Sharing tab's links and
    a privacy request's transfer link."""
    base = current_app.config["SYMFHIR_LINKS_BASE_URL"]
    return LinkSettings(links_base=base, viewer_base=f"{base}/view")


def _limits() -> LinkServiceSettings:
    """Passcode length, expiry and label limits: mappings/links.yaml, as the link service
    applies them."""
    return load_link_settings()


def _scope_labels() -> dict[str, str]:
    return {code: scope.label for code, scope in load_sharing().scopes.items()}


def _render(
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    push_errors: dict[str, str] | None = None,
    push_form: dict[str, str] | None = None,
    report: Any = None,
) -> tuple[str, int]:
    access = current_access()
    now = _now()
    overview = sharing_overview(
        access.client, access.actor, access.patient_id, store=app_store(), now=now
    )
    page = render_template(
        "sharing.html",
        consent=overview.consent,
        missing=overview.missing,
        links=overview.links,
        labels=_scope_labels(),
        outcomes=OUTCOMES,
        writable=access.writable,
        errors=errors or {},
        form=form or {"expires_days": str(_limits().default_expiry.days), "scope": [SUMMARY]},
        push_errors=push_errors or {},
        push_form=push_form or {"mode": "document"},
        push_modes=PUSH_MODES,
        report=report,
        limits=_limits(),
        saved=request.args.get("saved", ""),
        consent_saved=CONSENT_SAVED,
        now=now,
    )
    return page, status


@bp.get("")
@bp.get("/")
def index() -> Any:
    return _render()


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "Enter the date as YYYY-MM-DD."
        return None


def _bounded(value: str, field: str, top: int, errors: dict[str, str]) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= top:
        errors[field] = f"Enter a whole number from 1 to {top}."
        return None
    return int(value)


def parse_link_form(
    form: dict[str, Any], now: datetime
) -> tuple[LinkRequest | None, dict[str, str]]:
    """The form as a LinkRequest, or the errors by field. Scopes are only named here: the
    workflow checks them against the consent (deny by default)."""
    errors: dict[str, str] = {}
    scopes = tuple(dict.fromkeys([SUMMARY, *form["scope"]]))
    known = set(_scope_labels())
    if any(scope not in known for scope in scopes):
        errors["scope"] = "Choose among the scopes listed."
    start = _day(form["start"], "start", errors)
    end = _day(form["end"], "end", errors)
    if start and end and end < start:
        errors["end"] = "The end of the date range is before its start."
    limits = _limits()
    label = form["label"]
    if len(label) > limits.label_max:
        errors["label"] = f"At most {limits.label_max} characters (the physician sees it)."
    passcode = form["passcode"] or None
    low, high = limits.passcode_min, limits.passcode_max
    if passcode is not None and not low <= len(passcode) <= high:
        errors["passcode"] = f"A passcode has {low} to {high} characters."
    days = _bounded(form["expires_days"], "expires_days", limits.max_expiry.days, errors)
    if days is None and "expires_days" not in errors:
        errors["expires_days"] = "Say after how many days the link stops working."
    max_accesses = _bounded(form["max_accesses"], "max_accesses", MAX_ACCESSES_MAX, errors)
    if errors or days is None:
        return None, errors
    parsed = LinkRequest(
        scopes=scopes,
        start=start,
        end=end,
        label=label or f"Shared by {load_spa().name}"[: limits.label_max],
        passcode=passcode,
        expires_at=now + timedelta(days=days),
        max_accesses=max_accesses,
        long_term=form.get("long_term") == "yes",
    )
    return parsed, {}


def _field_of(exc: SharingError, fields: tuple[str, ...]) -> tuple[str, str]:
    """A SharingError's message ("field: reason") as (form field, sentence)."""
    field, _, reason = str(exc).partition(": ")
    sentence = (reason or str(exc)).rstrip(".")
    sentence = sentence[:1].upper() + sentence[1:] + "."
    field = field.strip().replace("-", "_")
    return (field if field in fields else "share"), sentence


def _refused(exc: ConsentMissing, labels: dict[str, str]) -> str:
    named = [labels.get(m, m) for m in exc.missing]
    reason = exc.reason.rstrip(".")
    reason = reason[:1].upper() + reason[1:]
    return f"{reason}: {', '.join(named)}." if named else f"{reason}."


@bp.post("/links")
def create_link() -> Any:
    access = current_access()
    if not access.writable:
        raise READ_ONLY
    raw = {k: (request.form.get(k) or "").strip() for k in LINK_FIELDS}
    raw["passcode"] = request.form.get("passcode") or ""  # kept as typed
    form: dict[str, Any] = {
        **raw,
        "scope": request.form.getlist("scope"),
        "long_term": request.form.get("long_term", ""),
    }
    now = _now()
    parsed, errors = parse_link_form(form, now)
    shown = {**form, "passcode": ""}  # a passcode is never sent back to the page
    if parsed is None:
        return _render(status=400, errors=errors, form=shown)
    try:
        created = create_share(
            access.client,
            access.actor,
            access.patient_id,
            store=app_store(),
            scopes=parsed.scopes,
            start=parsed.start,
            end=parsed.end,
            label=parsed.label,
            passcode=parsed.passcode,
            expires_at=parsed.expires_at,
            max_accesses=parsed.max_accesses,
            long_term=parsed.long_term,
            links=link_settings(),
            now=now,
            audit=access.audit,
        )
    except NotAllowedError:
        raise READ_ONLY from None
    except FhirValidationError as exc:
        log.warning("share: invalid summary document (%d problems)", len(exc.problems))
        raise INVALID_DOCUMENT from None
    except ConsentMissing as exc:
        refused = _refused(exc, _scope_labels())
        return _render(status=403, errors={"share": refused}, form=shown)
    except SharingError as exc:
        field, sentence = _field_of(exc, (*LINK_FIELDS, "scope"))
        return _render(status=400, errors={field: sentence}, form=shown)
    link = created.link
    html = render_template(
        "sharing_created.html",
        link=link,
        created=created,
        label=parsed.label,
        passcode=bool(parsed.passcode),
        labels=_scope_labels(),
        qr_png=base64.b64encode(link.qr_png).decode("ascii"),
        qr_svg=base64.b64encode(link.qr_svg.encode("utf-8")).decode("ascii"),
    )
    return html, 201


@bp.post("/links/<link_id>/revoke")
def revoke(link_id: str) -> Any:
    access = current_access()
    if not access.writable:
        raise READ_ONLY
    try:
        revoke_share(
            app_store(), access.actor, access.patient_id, link_id, now=_now(), audit=access.audit
        )
    except NotAllowedError:
        raise READ_ONLY from None
    except SharingError:
        # Another client's link, or none: the same answer (the link's owner is not revealed).
        access.audit(
            "update",
            success=False,
            description="refused: revoke of a link that is not this client's",
        )
        raise AppError(
            404,
            "link_not_found",
            "No such link",
            "This client has no such link. It may belong to another client.",
        ) from None
    return redirect(url_for("sharing.index", saved="revoked") + "#links", 303)


PUSH_FIELDS = ("base_url", "token", "mode")


@bp.post("/push")
def push() -> Any:
    access = current_access()
    if not access.writable:
        raise READ_ONLY
    form = {k: (request.form.get(k) or "").strip() for k in PUSH_FIELDS}
    scopes = tuple(dict.fromkeys([SUMMARY, *request.form.getlist("scope")]))
    shown = {"base_url": form["base_url"], "mode": form["mode"]}  # never the token
    errors: dict[str, str] = {}
    if not secure_url(form["base_url"]):
        errors["base_url"] = "Enter the FHIR server's https:// base URL."
    if not form["token"]:
        errors["token"] = "Enter the access token the physician's server gave."  # noqa: S105
    if form["mode"] not in PUSH_MODES:
        errors["mode"] = "Choose what to send."
    if any(scope not in _scope_labels() for scope in scopes):
        errors["push_scope"] = "Choose among the scopes listed."
    if errors:
        return _render(status=400, push_errors=errors, push_form=shown)
    try:
        report = push_share(
            access.client,
            access.actor,
            access.patient_id,
            target=PushTarget(base_url=form["base_url"].rstrip("/"), bearer_token=form["token"]),
            scopes=scopes,
            mode=form["mode"],
            now=_now(),
            audit=access.audit,
        )
    except NotAllowedError:
        raise READ_ONLY from None
    except FhirValidationError as exc:
        log.warning("push: invalid summary document (%d problems)", len(exc.problems))
        raise INVALID_DOCUMENT from None
    except ConsentMissing as exc:
        refused = _refused(exc, _scope_labels())
        return _render(status=403, push_errors={"push": refused}, push_form=shown)
    except PushError as exc:
        return _render(status=502, push_errors={"push": _field_of(exc, ())[1]}, push_form=shown)
    except SharingError as exc:
        field, sentence = _field_of(exc, PUSH_FIELDS)
        return _render(status=400, push_errors={field: sentence}, push_form=shown)
    return _render(report=report, push_form=shown)


def _summary_document(access: PatientAccess) -> dict[str, Any]:
    try:
        return summary_document(
            access.client, access.actor, access.patient_id, now=_now(), audit=access.audit
        )
    except FhirValidationError as exc:
        log.warning("summary: invalid document (%d problems)", len(exc.problems))
        raise INVALID_DOCUMENT from None


@bp.get("/summary.html")
def summary_page() -> Any:
    document = _summary_document(current_access())
    response = Response(summary_html(document), mimetype="text/html")
    response.headers["Content-Disposition"] = 'attachment; filename="patient-summary.html"'
    return response


@bp.get("/summary.pdf")
def summary_file() -> Any:
    document = _summary_document(current_access())
    response = Response(summary_pdf(document), mimetype="application/pdf")
    response.headers["Content-Disposition"] = 'attachment; filename="patient-summary.pdf"'
    return response

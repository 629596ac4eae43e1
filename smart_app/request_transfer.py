"""A privacy request's "Transfer to another provider" (policy §6, the right to have one's data
transferred): on the page of a verified, matched, open portability request, the desk or the
officer sends the client's full record to the new provider, EITHER pushed to its FHIR server
(https base URL, a bearer token used for this sending only and never shown, kept or logged)
OR behind a new long-term SMART Health Link (flag L; optional passcode, expiry in days).

The view parses the form, calls ``symfhir.sharing.transfer.transfer_request`` (which closes
the request with the push's report or the link's name as its output) and renders the request
page with the push report, or the link's QR code, viewer URL and shlink: shown this once, the
link's key is kept nowhere.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import request

from smart_app.app_store import app_store
from smart_app.request_page import RequestPage, load, now, render
from smart_app.sharing import INVALID_DOCUMENT, PUSH_MODES, link_settings
from symfhir.errors import (
    ExportError,
    FhirConflictError,
    FhirValidationError,
    NotAllowedError,
    PrivacyRequestError,
    PushError,
    SharingError,
)
from symfhir.privacy.model import IDENTITY_VERIFIED, IN_PROGRESS, PrivacyRequest
from symfhir.sharing.link_settings import load_link_settings
from symfhir.sharing.push import PushTarget
from symfhir.sharing.transfer import KIND, Transfer, provider_of, transfer_request
from symfhir.urls import secure_url

log = logging.getLogger(__name__)

HOW = {
    "push": "Send to the provider's FHIR server",
    "link": "Make a long-term link to hand over",
}
#: The form's fields (the token and the passcode are never sent back to the page).
FIELDS = ("provider", "how", "base_url", "token", "mode", "passcode", "expires_days")
#: A provider's name as the desk types it (the Task keeps it in its output).
PROVIDER_MAX = 200
#: A SharingError's field (``transfer_request``) → the form field it is shown on.
ERROR_FIELDS = {
    "recipient": "provider",
    "mode": "mode",
    "passcode": "passcode",
    "expires_at": "expires_days",
    "label": "provider",  # the label is made of the provider's name
    "target": "how",
}
READ_ONLY = "This session is read-only: the EHR did not grant symfhir permission to change records."
NOT_TRANSFERABLE = (
    "Only an open portability request, verified and matched to a client, is transferred "
    "to another provider."
)


@dataclass(frozen=True)
class TransferForm:
    """A valid form: where to (a push target and mode) or a link's options."""

    provider: str
    target: PushTarget | None
    mode: str
    passcode: str | None
    expires_at: datetime | None


def can_transfer(request_: PrivacyRequest) -> bool:
    """A portability request that is open, verified and matched (``require_ready``)."""
    return (
        request_.kind == KIND
        and request_.is_open
        and bool(request_.patient_id)
        and request_.business_status in (IDENTITY_VERIFIED, IN_PROGRESS)
    )


def defaults(request_: PrivacyRequest) -> dict[str, str]:
    """The form as first shown: the provider the client named, a push of every record."""
    return {
        "provider": provider_of(request_),
        "how": "push",
        "mode": "transaction",
        "expires_days": str(load_link_settings().max_expiry.days),
    }


def parse(form: dict[str, str], moment: datetime) -> tuple[TransferForm | None, dict[str, str]]:
    """The form as a TransferForm, or the errors by field (keys ``transfer_<field>``)."""
    errors: dict[str, str] = {}
    provider = form["provider"]
    if not provider:
        errors["provider"] = "Name the provider the record goes to."
    elif len(provider) > PROVIDER_MAX or any(ord(c) < 32 for c in provider):
        errors["provider"] = f"At most {PROVIDER_MAX} characters, on one line."
    how = form["how"]
    target = None
    passcode = None
    expires_at = None
    if how == "push":
        if not secure_url(form["base_url"]):
            errors["base_url"] = "Enter the provider's FHIR server https:// base URL."
        if not form["token"]:
            errors["token"] = "Enter the access token the provider's server gave."  # noqa: S105
        if form["mode"] not in PUSH_MODES:
            errors["mode"] = "Choose what to send."
        if not errors:
            target = PushTarget(base_url=form["base_url"].rstrip("/"), bearer_token=form["token"])
    elif how == "link":
        limits = load_link_settings()
        passcode = form["passcode"] or None
        low, high = limits.passcode_min, limits.passcode_max
        if passcode is not None and not low <= len(passcode) <= high:
            errors["passcode"] = f"A passcode has {low} to {high} characters."
        top = limits.max_expiry.days
        days = form["expires_days"]
        if not days.isdigit() or not 1 <= int(days) <= top:
            errors["expires_days"] = f"Enter a whole number of days from 1 to {top}."
        else:
            expires_at = moment + timedelta(days=int(days))
    else:
        errors["how"] = "Choose a sending to the provider's server or a link."
    if errors:
        return None, {f"transfer_{k}": v for k, v in errors.items()}
    return TransferForm(provider, target, form["mode"], passcode, expires_at), {}


def transfer(page: RequestPage, task_id: str) -> Any:
    """POST: transfer the request's record as the form says, and show the outcome once (201
    with the link, 200 with the push report); the page with the reason otherwise (400 bad
    input or a request that cannot be transferred, 403 not allowed, 409 changed meanwhile,
    502 the provider's server refused)."""
    item = load(page, task_id)  # another client's request is refused (403, audited) first
    access = page.access
    raw = {k: (request.form.get(k) or "").strip() for k in FIELDS}
    raw["token"] = request.form.get("token") or ""  # kept as typed, used once
    raw["passcode"] = request.form.get("passcode") or ""
    shown = {k: v for k, v in raw.items() if k not in ("token", "passcode")}

    def again(status: int, errors: dict[str, str] | None = None, problem: str = "") -> Any:
        return render(
            page, task_id, status=status, errors=errors, problem=problem, transfer_form=shown
        )

    if not (access.writable and access.actor.may("Task", "u")):
        return again(403, problem=READ_ONLY)
    if not can_transfer(item.request):
        return again(400, problem=NOT_TRANSFERABLE)
    moment = now()
    parsed, errors = parse(raw, moment)
    if parsed is None:
        return again(400, errors)
    by_link = parsed.target is None
    try:
        done = transfer_request(
            access.client,
            access.actor,
            task_id,
            target=parsed.target,
            mode=parsed.mode if parsed.target else "transaction",
            recipient=parsed.provider,
            store=app_store() if by_link else None,
            links=link_settings() if by_link else None,
            passcode=parsed.passcode,
            expires_at=parsed.expires_at,
            now=moment,
            audit=access.audit,
        )
    except FhirConflictError:
        return render(page, task_id, status=409, stale=True, transfer_form=shown)
    except NotAllowedError as exc:
        text = (
            READ_ONLY
            if exc.read_only
            else "This session may not do this: the EHR did not grant "
            + ", ".join(f"{t}.{i}" for t, i in exc.missing)
            + "."
        )
        return again(403, problem=text)
    except FhirValidationError as exc:
        log.warning("transfer: invalid summary document (%d problems)", len(exc.problems))
        raise INVALID_DOCUMENT from None
    except PushError as exc:
        # The request stays in progress: the same form may be sent again.
        return again(502, {"transfer": _sentence(_reason(exc))})
    except SharingError as exc:
        field, _, reason = str(exc).partition(": ")
        name = ERROR_FIELDS.get(field.strip(), "")
        key = f"transfer_{name}" if name else "transfer"
        return again(400, {key: _sentence(reason or str(exc))})
    except (PrivacyRequestError, ExportError) as exc:
        return again(400, problem=_sentence(str(exc)))
    return render(page, task_id, status=201 if by_link else 200, transfer=_shown(done))


def _shown(done: Transfer) -> dict[str, Any]:
    """What the page shows of a transfer: the push report, or the link with its QR codes."""
    if done.link is None:
        return {"report": done.report}
    link = done.link
    return {
        "link": link,
        "qr_png": base64.b64encode(link.qr_png).decode("ascii"),
        "qr_svg": base64.b64encode(link.qr_svg.encode("utf-8")).decode("ascii"),
    }


def _reason(exc: Exception) -> str:
    return str(exc).partition(": ")[2] or str(exc)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."

"""The portal's privacy-request form and its identity verification. Views parse, call
``symfhir.privacy.portal_requests``, and render.

- ``GET/POST /request``: the form (kind, name, date of birth, e-mail, phone, what it is about,
  an authorized agent's name and e-mail for a CCPA request); each field's reason is shown
  beside it. Submitting writes the Task and sends a code to every contact given.
- ``GET/POST /request/verify``: a code per contact; ``POST /request/resend``: a new code.
  The signed session cookie carries only the CSRF token and the Task id being verified.

The portal writes through SMART Backend Services with the least system scopes
(``symfhir.privacy.portal_requests.PORTAL_SCOPE``: system/Task.crus system/AuditEvent.c).
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, date, datetime
from typing import Any

from cryptography.fernet import Fernet
from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState

from smart_app.errors import AppError
from smart_app.portal.fhir_client import fhir_client
from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import (
    ConfigError,
    DeliveryError,
    PrivacyRequestError,
    RateLimited,
    RecordError,
)
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.model import KINDS, Requester
from symfhir.privacy.portal_corrections import (
    CorrectionFields,
    check_correction,
    correction_choices,
)
from symfhir.privacy.portal_requests import (
    AGENT_EMAIL,
    PortalServices,
    contacts_of,
    enter_code,
    open_request,
    portal_actor,
    resend_code,
    verified_contacts,
)
from symfhir.privacy.requester import check_details, check_requester
from symfhir.privacy.requests import get_request
from symfhir.spa import load_spa

log = logging.getLogger(__name__)
bp = Blueprint("requests", __name__)

#: Each kind in plain words (the form's choices, the status page's title).
KIND_LABELS = {
    "access": "See a copy of my information",
    "portability": "Get my information in a portable format",
    "correction": "Correct my information",
    "deletion": "Delete my information",
    "restriction": "Limit how my information is used (withdraw a consent)",
    "opt-out": "Stop marketing messages",
    "ccpa-know": "California: know what personal information you hold about me",
    "ccpa-delete": "California: delete my personal information",
    "ccpa-opt-out-of-sale": "California: do not sell or share my personal information",
}
FIELDS = (
    "kind",
    "name",
    "birth_date",
    "email",
    "phone",
    "details",
    "correction_field",
    "proposed",
    "reason",
    "agent_name",
    "agent_email",
)
PENDING = "portal_request"


def portal_services() -> PortalServices:
    """The app's store and senders: SYMFHIR_PORTAL_SERVICES (tests), else made once from the
    environment (SYMFHIR_STORE_*, SYMFHIR_SMTP_*, SYMFHIR_SMS_*)."""
    app = current_app
    given = app.config.get("SYMFHIR_PORTAL_SERVICES")
    if given is not None:
        return given
    made = app.extensions.get("symfhir_portal_services")
    if made is None:
        from symfhir.notify.email import EmailSender
        from symfhir.notify.sms import SmsSender
        from symfhir.store import Store

        def optional(factory: Any) -> Any:
            try:
                return factory()
            except ConfigError as exc:
                log.warning("portal: %s", exc)
                return None

        env = dict(os.environ)
        if not env.get("SYMFHIR_STORE_KEYS"):
            env["SYMFHIR_STORE_KEYS"] = app.config["SYMFHIR_PORTAL_STORE_KEY"]
        made = PortalServices(
            store=Store.from_env(env),
            email=optional(EmailSender.from_config),
            sms=optional(SmsSender.from_config),
            base_url=app.config["SYMFHIR_PORTAL_BASE_URL"],
            spa_name=load_spa().name,
        )
        app.extensions["symfhir_portal_services"] = made
    return made


@bp.record_once
def _store_key(state: BlueprintSetupState) -> None:
    # Made when the app is built, so that gunicorn's workers (forked after --preload) share
    # it: a code one worker issued must be checked by another.
    if not os.environ.get("SYMFHIR_STORE_KEYS"):
        if state.app.config.get("SYMFHIR_PORTAL_SERVICES") is None:
            log.warning(
                "SYMFHIR_STORE_KEYS not set: the portal's store uses a key made at start; "
                "codes and links stop working on a restart (set it in production)"
            )
        state.app.config["SYMFHIR_PORTAL_STORE_KEY"] = Fernet.generate_key().decode()


def rate_limited_page(
    exc: RateLimited, heading: str = "Too many codes asked for"
) -> tuple[str, int, dict[str, str]]:
    minutes = max(1, -(-exc.retry_after // 60))
    page = render_template("rate_limited.html", minutes=minutes, heading=heading)
    return page, 429, {"Retry-After": str(exc.retry_after)}


def _not_sent() -> AppError:
    return AppError(
        503,
        "code_not_sent",
        "We could not send your code",
        "Sending the code failed just now. Please ask for a new code in a few minutes.",
    )


def _refused() -> AppError:
    return AppError(
        400,
        "code_refused",
        "This cannot be done",
        "Choose one of the addresses shown, or start a new request from the form.",
    )


def _checked_form(form: Any, today: date) -> tuple[dict[str, str], dict[str, Any]]:
    """Each field's reason (field -> words) and the values that passed."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    spa = load_spa()
    kind = form.get("kind", "")
    if kind not in KINDS:
        errors["kind"] = "Choose what you are asking for."
    values["kind"] = kind
    try:
        values["name"] = check_requester(
            Requester(form.get("name", "")), today=today, phone_region=spa.phone_region
        ).name
    except RecordError as exc:
        errors["name"] = f"Your name {exc.reason}."
    raw_birth = form.get("birth_date", "").strip()
    try:
        birth = date.fromisoformat(raw_birth)
        if not date(1900, 1, 1) <= birth <= today:
            raise ValueError
        values["birth_date"] = birth
    except ValueError:
        errors["birth_date"] = (
            "Give your date of birth (YYYY-MM-DD)."
            if not raw_birth
            else "Give a real past date of birth (YYYY-MM-DD)."
        )
    for field, check in (
        ("email", lambda v: normalize_email(v)),
        ("phone", lambda v: normalize_phone(v, spa.phone_region)),
        ("agent_email", lambda v: normalize_email(v)),
    ):
        raw = form.get(field, "").strip()
        values[field] = None
        if raw:
            try:
                values[field] = check(raw)
            except RecordError:
                errors[field] = (
                    "This is not a valid e-mail address."
                    if "email" in field
                    else "This is not a valid phone number."
                )
    if not form.get("email", "").strip() and not form.get("phone", "").strip():
        errors.setdefault("email", "Give an e-mail address or a phone number for your code.")
    try:
        values["details"] = check_details(form.get("details", ""))
    except RecordError as exc:
        errors["details"] = f"This {exc.reason}."
    agent = form.get("agent_name", "").strip()
    try:
        values["agent_name"] = check_requester(
            Requester("agent", agent=agent), today=today, phone_region=spa.phone_region
        ).agent
    except RecordError as exc:
        errors["agent_name"] = f"The agent's name {exc.reason}."
    if agent or form.get("agent_email", "").strip():
        if not kind.startswith("ccpa-"):
            errors["agent_name"] = "An authorized agent may ask only a California (CCPA) request."
        elif not agent:
            errors["agent_name"] = "Give the agent's name."
        elif not form.get("agent_email", "").strip():
            errors["agent_email"] = "Give the agent's own e-mail address for their code."
    values["inputs"] = {}
    if kind == "correction":
        # Only a correction reads these: another kind ignores them (hidden, yet posted).
        wrong, values["inputs"] = check_correction(
            CorrectionFields(
                form.get("correction_field", ""), form.get("proposed", ""), form.get("reason", "")
            ),
            form.get("details", ""),
            phone_region=spa.phone_region,
        )
        for field, words in wrong.items():
            errors.setdefault(field, words)
    return errors, values


def _form_page(errors: dict[str, str], shown: dict[str, str]) -> str:
    return render_template(
        "request_form.html",
        kinds=KIND_LABELS,
        corrections=correction_choices(),
        errors=errors,
        form=shown,
    )


@bp.get("/request")
def form() -> str:
    return _form_page({}, {})


@bp.post("/request")
def submit() -> Any:
    now = datetime.now(UTC)
    errors, values = _checked_form(request.form, now.astimezone(load_spa().zone).date())
    if errors:
        shown = {f: request.form.get(f, "") for f in FIELDS}
        return _form_page(errors, shown), 400
    from symfhir.privacy.requests import NewRequest

    new = NewRequest(
        kind=values["kind"],
        requester=Requester(
            name=values["name"],
            birth_date=values["birth_date"],
            email=values["email"],
            phone=values["phone"],
            agent=values["agent_name"],
        ),
        details=values["details"],
        inputs={
            **values["inputs"],
            **({AGENT_EMAIL: values["agent_email"]} if values["agent_email"] else {}),
        },
        reference=uuid.uuid4().hex,
    )
    client = fhir_client()
    try:
        opened = open_request(
            client,
            portal_actor(),
            new,
            services=portal_services(),
            now=now,
            audit=RequestAuditTrail(client, None),
        )
    except RateLimited as exc:
        return rate_limited_page(exc)
    except (DeliveryError, PrivacyRequestError) as exc:
        # A channel not configured, or the mail server refusing: words without the address.
        log.warning("portal: a code was not sent: %s", type(exc).__name__)
        raise _not_sent() from None
    session[PENDING] = opened.task_id
    return redirect(url_for("requests.verify"), code=303)


def _pending() -> str:
    task_id = session.get(PENDING)
    if not task_id:
        raise AppError(
            404,
            "no_request",
            "No request is waiting for a code",
            "Start a new request from the form, or open the link we e-mailed you.",
        )
    return str(task_id)


def _verify_page(task_id: str, message: str | None = None, status: int = 200) -> Any:
    client = fhir_client()
    services = portal_services()
    now = datetime.now(UTC)
    tracked = get_request(
        client, portal_actor(), task_id, now=now, audit=RequestAuditTrail(client, None)
    )
    verified = verified_contacts(services, tracked)
    page = render_template(
        "request_verify.html",
        contacts=contacts_of(tracked.request),
        verified=verified,
        message=message,
    )
    return page, status


@bp.get("/request/verify")
def verify() -> Any:
    return _verify_page(_pending())


@bp.post("/request/verify")
def check() -> Any:
    task_id = _pending()
    client = fhir_client()
    try:
        result = enter_code(
            client,
            portal_actor(),
            task_id,
            request.form.get("contact", ""),
            request.form.get("code", "")[:32],
            services=portal_services(),
            now=datetime.now(UTC),
            audit=RequestAuditTrail(client, None),
        )
    except PrivacyRequestError:
        raise _refused() from None
    except DeliveryError as exc:
        log.warning("portal: the status link was not sent: %s", exc.reason)
        raise _not_sent() from None
    if result.done:
        session.pop(PENDING, None)
        return render_template("request_verified.html", reference=result.reference)
    if result.right:
        return _verify_page(task_id, "Thank you: that code is right. Now the next one.")
    if result.tries_left:
        words = "try" if result.tries_left == 1 else "tries"
        message = f"That code is not right. {result.tries_left} {words} left for this code."
    else:
        message = "That code can no longer be used. Ask for a new code below."
    return _verify_page(task_id, message, 400)


@bp.post("/request/resend")
def resend() -> Any:
    task_id = _pending()
    client = fhir_client()
    try:
        contact = resend_code(
            client,
            portal_actor(),
            task_id,
            request.form.get("contact", ""),
            services=portal_services(),
            now=datetime.now(UTC),
            audit=RequestAuditTrail(client, None),
        )
    except PrivacyRequestError:
        raise _refused() from None
    except RateLimited as exc:
        return rate_limited_page(exc)
    except DeliveryError as exc:
        log.warning("portal: a code was not sent: %s", exc.reason)
        raise _not_sent() from None
    return _verify_page(task_id, f"We sent a new code to {contact.masked}.")

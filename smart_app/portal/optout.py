"""Opt-outs on the public portal: the one-click unsubscribe link of marketing e-mails and the
inbound SMS webhook. Views parse, call ``symfhir.marketing``, and render.

- ``GET /unsubscribe/<token>``: a confirmation page with a button (a CSRF-protected form).
- ``POST /unsubscribe/<token>``: the button's form (CSRF token required), or RFC 8058
  one-click (body ``List-Unsubscribe=One-Click``, as mail clients post it, with no token and
  no cookie: the signed link is the authority).
- ``POST /sms/inbound``: the SMS provider's webhook, signature checked before anything is
  read; answers TwiML (one confirmation message, or none).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, render_template, request

from smart_app.errors import AppError
from smart_app.portal.fhir_client import fhir_client
from smart_app.security import csrf_exempt, require_csrf
from symfhir.errors import UnsubscribeLinkError
from symfhir.marketing.self_service import SelfServiceAuditTrail, self_service_actor
from symfhir.marketing.sms_inbound import receive_sms
from symfhir.marketing.sms_optout import SIGNATURE_HEADER, TWIML_TYPE, signature_valid, twiml_reply
from symfhir.marketing.unsubscribe import ONE_CLICK, UnsubscribeClaim, read_token
from symfhir.marketing.withdraw import opt_out

log = logging.getLogger(__name__)
bp = Blueprint("optout", __name__)

CHANNEL_WORDS = {"email": "e-mails", "sms": "text messages", "phone": "phone calls"}


def _claim(token: str, now: datetime) -> UnsubscribeClaim:
    key = str(current_app.config["SYMFHIR_MARKETING_KEY"]).encode()
    try:
        return read_token(key, token, now=now)
    except UnsubscribeLinkError as exc:
        log.info("unsubscribe link refused")  # never the token: it names the client
        raise AppError(
            400, "unsubscribe_link_refused", "This link cannot be used", str(exc)
        ) from None


@bp.get("/unsubscribe/<token>")
def confirm(token: str) -> str:
    claim = _claim(token, datetime.now(UTC))
    return render_template("unsubscribe.html", what=CHANNEL_WORDS[claim.channel], done=False)


@bp.post("/unsubscribe/<token>")
@csrf_exempt
def unsubscribe(token: str) -> tuple[str, int]:
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK.split("=", 1)[1]
    if not one_click:
        require_csrf()
    now = datetime.now(UTC)
    claim = _claim(token, now)
    client = fhir_client()
    # The client is the one asking: the Provenance and the AuditEvent name them.
    done = opt_out(
        client,
        self_service_actor(claim.patient_id),
        claim.patient_id,
        claim.channel,
        via="email-link",
        now=now,
        audit=SelfServiceAuditTrail(client),
    )
    if done.status == "changed":
        raise AppError(
            409,
            "unsubscribe_retry",
            "Please try again",
            "Your preferences were being changed at the same moment. Please press the button "
            "again.",
        )
    # The same page whether this withdrew the consent or it was already withdrawn: a repeat
    # click is fine, and the page says nothing about the client's other choices.
    return render_template("unsubscribe.html", what=CHANNEL_WORDS[claim.channel], done=True), 200


@bp.post("/sms/inbound")
@csrf_exempt
def sms_inbound() -> Response:
    token = current_app.config["SYMFHIR_SMS_AUTH_TOKEN"] or ""
    # The URL the provider signed: the portal's public address (a proxy in front may have
    # changed scheme and host), this path and query.
    url = current_app.config["SYMFHIR_PORTAL_BASE_URL"] + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    params = list(request.form.items(multi=True))
    if not signature_valid(token, url, params, request.headers.get(SIGNATURE_HEADER)):
        log.warning("SMS webhook: signature refused")
        return Response("signature refused", status=403, mimetype="text/plain")
    client = fhir_client()
    result = receive_sms(
        client,
        self_service_actor(None),
        request.form,
        now=datetime.now(UTC),
        audit=SelfServiceAuditTrail(client),
    )
    log.info("SMS webhook: %s", result.outcome)
    return Response(twiml_reply(result.reply), status=200, mimetype=TWIML_TYPE)

"""The portal's "send my status link again": a requester who lost the status link (or whose
sending failed) types the request's reference and one of their contacts; a new link goes to
that contact only if it is one the request gives AND it was verified by a code on that request,
and only once every contact of the request is verified.

No enumeration: the caller answers the same whatever was typed (a reference that does not
exist, a contact that is not the request's or not verified, a request still awaiting its codes,
a sending that failed). The result says what happened for tests and the audit trail only; a
page must not show it. Rate-limited per typed reference and per typed contact, counted before
anything is looked up, so the limit itself tells nothing either.

Earlier status links of the request are revoked: a lost link stops working once a new one is
sent.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from symfhir.audit import AuditTrail
from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import DeliveryError, PrivacyRequestError, RateLimited, RecordError
from symfhir.fhir import FhirClient
from symfhir.privacy.links import revoke_links
from symfhir.privacy.portal_requests import (
    Contact,
    PortalServices,
    contacts_of,
    send_status_link,
    verified_contacts,
)
from symfhir.privacy.portal_settings import RateLimit, load_code_settings
from symfhir.privacy.task import from_task, identifier_system
from symfhir.privacy.tasks import Settings, TrackedRequest, may_read, tracked
from symfhir.store.tables import RateEvent
from symfhir.workspace.actor import Actor

log = logging.getLogger(__name__)
_LOCK = "status-resend"
_BUCKET_REFERENCE = "resend-reference"
_BUCKET_CONTACT = "resend-contact"
_REFERENCE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Resent:
    """Whether a link went out (never shown to the one who typed)."""

    sent: bool


def _normal(contact: str, phone_region: str) -> str | None:
    text = contact.strip()
    try:
        if "@" in text:
            return normalize_email(text)
        return normalize_phone(text, phone_region)
    except RecordError:
        return None


def _count(services: PortalServices, keys: dict[str, str], limit: RateLimit, now: datetime) -> None:
    """Count one try against each (bucket -> key); RateLimited past the limit (nothing counted
    then)."""
    lookups = {bucket: services.store.lookup(bucket, key) for bucket, key in keys.items()}
    with services.store.exclusive(_LOCK) as session:
        for bucket, lookup in lookups.items():
            since = now - limit.window
            count, oldest = session.execute(
                select(func.count(), func.min(RateEvent.at)).where(
                    RateEvent.bucket == bucket, RateEvent.key_lookup == lookup, RateEvent.at > since
                )
            ).one()
            if count >= limit.codes:
                wait = (oldest + limit.window - now).total_seconds()
                raise RateLimited(bucket, max(1, math.ceil(wait)))
        for bucket, lookup in lookups.items():
            session.add(RateEvent(bucket=bucket, key_lookup=lookup, at=now))


def resend_status_link(
    client: FhirClient,
    actor: Actor,
    reference: str,
    contact: str,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> Resent:
    """Send a new status link of the request ``reference`` to ``contact`` when it is a
    contact of that request verified by its code and every contact is verified. Raises
    RateLimited (per typed reference and per typed contact, whatever they name),
    FhirServerError; nothing else: every other refusal is ``Resent(False)``."""
    settings = settings or Settings.load()
    limit = load_code_settings().per_address
    typed_reference = reference.strip()
    normal = _normal(contact, settings.spa.phone_region)
    _count(
        services,
        {
            _BUCKET_REFERENCE: typed_reference.casefold(),
            _BUCKET_CONTACT: normal or contact.strip().casefold(),
        },
        limit,
        now,
    )
    if normal is None or not _REFERENCE.match(typed_reference):
        return Resent(False)
    may_read(actor, [("Task", "s")])
    system = identifier_system(settings.spa.identifier_base)
    found = list(client.search("Task", [("identifier", f"{system}|{typed_reference}")]))
    if len(found) != 1:
        return Resent(False)
    try:
        record = from_task(found[0], settings.spa.identifier_base)
    except ValueError:
        return Resent(False)
    request = tracked(record, now, settings)
    to = next((c for c in contacts_of(request.request) if c.address == normal), None)
    verified = verified_contacts(services, request)
    if to is None or verified != {c.key for c in contacts_of(request.request)}:
        return Resent(False)
    return Resent(_send(services, request, to, now=now, audit=audit))


def _send(
    services: PortalServices,
    request: TrackedRequest,
    to: Contact,
    *,
    now: datetime,
    audit: AuditTrail,
) -> bool:
    target = f"Task/{request.task_id}"
    revoked = revoke_links(services.store, "status", target, now=now)
    try:
        send_status_link(services, request, to, now=now)
    except (DeliveryError, PrivacyRequestError) as exc:
        # The page answers the same: the requester may try again later; no address logged.
        log.warning("portal: a status link was not re-sent: %s", type(exc).__name__)
        audit("update", success=False, description="status link not re-sent", resources=(target,))
        return False
    audit(
        "update",
        description=f"status link re-sent to {to.key} ({revoked} earlier revoked)",
        resources=(target,),
    )
    return True

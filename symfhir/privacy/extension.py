"""Extending a request's deadline and telling the requester (``extend_and_notify``): the one
extension (``symfhir.privacy.requests.extend``), then the reason and the new date e-mailed to
the requester (``symfhir.privacy.notices.extension_notice``), as HIPAA 164.524(b)(2) asks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from symfhir.audit import AuditTrail
from symfhir.errors import ConfigError, DeliveryError, RecordError
from symfhir.fhir import FhirClient
from symfhir.privacy.notices import extension_notice
from symfhir.privacy.requests import extend
from symfhir.privacy.tasks import Settings, TrackedRequest
from symfhir.workspace.actor import Actor

log = logging.getLogger(__name__)

#: Sends one e-mail (to, subject, text), e.g. ``EmailSender.from_config().send``.
Send = Callable[[str, str, str], object]


@dataclass(frozen=True)
class Extended:
    """The extended request, and whether the requester was e-mailed; ``not_sent`` says why
    not (no e-mail on the request, or the mail server refused), PHI-free."""

    request: TrackedRequest
    emailed: bool
    not_sent: str = ""


def extend_and_notify(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    reason: str,
    *,
    send: Send,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> Extended:
    """Extend the request once with ``reason`` and e-mail the requester the reason and the
    new due date with ``send``. The extension stands even when the e-mail fails (the result
    says so: tell the requester another way). Raises what ``extend`` raises."""
    settings = settings or Settings.load()
    item = extend(
        client, actor, task_id, reason, now=now, audit=audit, version=version, settings=settings
    )
    notice = extension_notice(item.request, settings.spa)
    if notice is None:
        return Extended(item, False, "the request gives no e-mail address")
    try:
        send(notice.to, notice.subject, notice.text)
    except (ConfigError, DeliveryError, RecordError) as exc:
        # The message names the server or setting, never the recipient.
        log.warning("extension notice not sent: %s", type(exc).__name__)
        return Extended(item, False, "the e-mail could not be sent")
    audit(
        "update",
        description="privacy request: extension notice e-mailed to the requester",
        resources=(f"Task/{task_id}",),
    )
    return Extended(item, True)

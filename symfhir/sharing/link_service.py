"""The public SMART Health Link service's workflows (``smart_app.links`` only parses, calls
one of these and renders): serve a link's manifest (``serve_manifest``) or a single-file
link's file (``serve_single``). Each re-checks the consent the link rests on first (withdrawn:
every link of the client stops, this one answers as inactive) and writes the disclosure's
AuditEvent before anything is served.

On the FHIR server the service is its own SMART Backend Services client (``symfhir-links`` in
the demo), with ``LINKS_SCOPE`` and nothing else: the links and their encrypted files are in
the app's store, not on the FHIR server."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from symfhir.audit import disclosure_event
from symfhir.errors import DisclosureNotRecorded, SymfhirError
from symfhir.fhir import FhirClient
from symfhir.sharing.gate import consent_active
from symfhir.sharing.link_access import open_manifest, open_single
from symfhir.sharing.link_records import LinkContext, ManifestAccess, StillAllowed
from symfhir.sharing.link_settings import LinkServiceSettings
from symfhir.sharing.shl import EncryptedFile
from symfhir.store import Store

log = logging.getLogger(__name__)

#: SMART v2 system scopes, least privilege (search is ``s``: the re-check searches Consents).
LINKS_SCOPE = "system/AuditEvent.c system/Consent.rs"
#: The AuditEvent's source: who disclosed.
SOURCE = "symfhir link service"


def serve_manifest(
    store: Store,
    client: FhirClient,
    manifest_id: str,
    *,
    recipient: str,
    passcode: str | None,
    embedded_length_max: int | None,
    files_base: str,
    now: datetime,
    settings: LinkServiceSettings,
    consent_check: StillAllowed | None = None,
) -> dict[str, Any]:
    """The manifest of the link for ``recipient`` (``symfhir.sharing.links.open_manifest``),
    its disclosure recorded. ``consent_check`` replaces the re-check on the FHIR server
    (tests). Raises LinkInactive, PasscodeRejected, DisclosureNotRecorded, StoreError."""
    access = open_manifest(
        store,
        manifest_id,
        recipient=recipient,
        passcode=passcode,
        embedded_length_max=embedded_length_max,
        files_base=files_base,
        now=now,
        still_allowed=consent_check or _consent_check(client, now),
        settings=settings,
    )
    record_disclosure(client, access, now)
    return access.manifest


def serve_single(
    store: Store,
    client: FhirClient,
    manifest_id: str,
    *,
    recipient: str,
    now: datetime,
    settings: LinkServiceSettings,
    consent_check: StillAllowed | None = None,
) -> EncryptedFile:
    """The one file of a single-file (U) link (``open_single``), its disclosure recorded.
    Raises LinkInactive (a passcode link too: it is never a direct one), DisclosureNotRecorded,
    StoreError."""
    parts, access = open_single(
        store,
        manifest_id,
        recipient=recipient,
        now=now,
        still_allowed=consent_check or _consent_check(client, now),
        settings=settings,
    )
    record_disclosure(client, access, now)
    return parts


def _consent_check(client: FhirClient, now: datetime) -> StillAllowed:
    def still_allowed(context: LinkContext) -> bool:
        # A link resting on the client's verified transfer request (a Task) needs no consent.
        if context.consent_id is None:
            return True
        return consent_active(client, context.consent_id, now=now, patient_id=context.patient_id)

    return still_allowed


def record_disclosure(client: FhirClient, access: ManifestAccess, now: datetime) -> None:
    """Write the opening's disclosure AuditEvent (who received what, when, why). Raises
    DisclosureNotRecorded (logged without PHI) when it cannot be written."""
    recipient = access.recipient
    event = disclosure_event(
        access.patient_id,
        recipient=recipient.name,
        recipient_reference=recipient.reference,
        # A physician's share is for their care of the client; a transfer link answers the
        # client's own portability request.
        purpose="TREAT" if access.context.consent_id is not None else "PATRQT",
        disclosed=access.types,
        fhir_user=None,
        source=SOURCE,
        now=now,
    )
    event["outcomeDesc"] = (
        f"SMART Health Link {access.context.link_id} opened; recipient given: "
        f"{access.recipient_text}"
    )
    try:
        client.create(event)
    except (SymfhirError, ValueError) as exc:
        log.warning("disclosure AuditEvent not written: %s", getattr(exc, "log_text", type(exc)))
        raise DisclosureNotRecorded("the disclosure could not be recorded") from None

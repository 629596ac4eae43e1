"""The client privacy portal's request flow, framework-free.

- ``open_request``: a one-time code issued for every contact the request gives (the client's
  e-mail and phone, an authorized agent's e-mail), the request written as a Task, each code
  sent. A rate limit refuses before anything is written.
- ``resend_code``: a new code for one contact (rate-limited; the older code dies).
- ``enter_code``: a code checked. Nothing is recorded on the Task until EVERY contact is
  verified (an agent's request needs the client's own contacts too); then each of the client's
  contacts is recorded (``record_verification``, email-code / sms-code), the request becomes
  identity-verified, and the status link is sent to the requester.
- ``request_status``: what the status page behind that link shows; ``package_download``: the
  access package a short-lived download link names.

The portal acts as itself (``portal_actor``), allowed only ``PORTAL_SCOPE``, the least SMART
Backend Services system scopes the flow needs. Nothing here looks for the client: a request
for someone the spa does not know is written and answered exactly like any other (no account
enumeration); matching happens later (the officer, or ``match_patient``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from symfhir.audit import AuditTrail
from symfhir.errors import PrivacyRequestError, RecordError
from symfhir.export.access_request import OUTPUT_LABEL as PACKAGE_LABEL
from symfhir.export.access_request import record_handover
from symfhir.fhir import FhirClient
from symfhir.notify.email import EmailSender
from symfhir.notify.sms import SmsSender
from symfhir.privacy.handover import PACKAGE_NAME, package_name
from symfhir.privacy.links import create_link, resolve_link
from symfhir.privacy.model import FINAL_STATUSES, PrivacyRequest, Verification
from symfhir.privacy.portal_settings import load_code_settings
from symfhir.privacy.requests import NewRequest, get_request, record_verification, submit_request
from symfhir.privacy.tasks import TrackedRequest
from symfhir.privacy.verification import check_code, is_verified, issue_code, tries_left
from symfhir.store import Store
from symfhir.workspace.actor import Actor

#: The least SMART v2 system scopes of the request flow: write the Task (a conditional create
#: on its business identifier), read it back, record verifications, write AuditEvents.
PORTAL_SCOPE = "system/Task.crus system/AuditEvent.c"
_PERMITS = frozenset(
    (scope.split("/")[1].split(".")[0], letter)
    for scope in PORTAL_SCOPE.split()
    for letter in scope.split(".")[1]
)
#: The Task input holding an authorized agent's own e-mail (CCPA).
AGENT_EMAIL = "agent-email"
DELETION_LABEL = "deletion-report"
#: A denied correction's output: the requester's rights (correction_review.RIGHTS_OUTPUT; not
#: imported, so that the portal's flow does not load the review's write path).
RIGHTS_OUTPUT = "disagreement-rights"


def portal_actor() -> Actor:
    """The portal itself, allowed only what ``PORTAL_SCOPE`` grants."""
    return Actor(
        None,
        display="privacy portal",
        permits=lambda resource_type, interaction: (resource_type, interaction) in _PERMITS,
    )


@dataclass(frozen=True)
class Contact:
    """One address a code goes to: ``key`` (``email``, ``phone``, ``agent-email``, as forms
    name it), ``channel`` (``email``/``sms``), the address, and the Task's verification method
    when it is the client's own (None for the agent's)."""

    key: str
    channel: str
    address: str
    method: str | None

    @property
    def masked(self) -> str:
        """The address with most of it hidden, for pages."""
        if self.channel == "email":
            local, _, domain = self.address.partition("@")
            return f"{local[:1]}•••@{domain}"
        return f"•••{self.address[-4:]}"


@dataclass(frozen=True)
class PortalServices:
    """What the flow needs besides the FHIR server: the portal's store (codes, rates, links),
    the e-mail and SMS senders (None when not configured), the portal's public URL, and the
    spa's name for messages."""

    store: Store
    email: EmailSender | None
    sms: SmsSender | None
    base_url: str
    spa_name: str


@dataclass(frozen=True)
class Opened:
    task_id: str
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class CodeResult:
    """A code entered: ``right``; the tries its contact has left; whether every contact is now
    verified (``done``; the status link was then sent)."""

    contact: Contact
    right: bool
    tries_left: int
    verified: frozenset[str]
    done: bool
    #: The request's reference (shown once done: it and a verified contact re-send the link).
    reference: str = ""


@dataclass(frozen=True)
class StatusView:
    """What the status page shows: plain words only, no record content."""

    task_id: str
    kind: str
    business_status: str
    received: datetime
    due: str
    extended_reason: str | None
    summary: str | None
    denial_reason: str | None
    #: A fresh short-lived download link token for a completed access package, else None.
    download_token: str | None
    is_open: bool
    reference: str = ""
    #: A denied correction's rights (a statement of disagreement, a complaint), else None.
    rights: str | None = None


def contacts_of(request: PrivacyRequest) -> tuple[Contact, ...]:
    """Every address on the request a code must go to."""
    found = []
    if request.requester.email:
        found.append(Contact("email", "email", request.requester.email, "email-code"))
    if request.requester.phone:
        found.append(Contact("phone", "sms", request.requester.phone, "sms-code"))
    if request.inputs.get(AGENT_EMAIL):
        found.append(Contact(AGENT_EMAIL, "email", request.inputs[AGENT_EMAIL], None))
    return tuple(found)


def _requester_key(request: PrivacyRequest | NewRequest) -> str:
    # The per-requester limit: the person as they describe themselves, whatever addresses
    # they give (a new address per try does not dodge it).
    who = request.requester
    return f"{' '.join(who.name.casefold().split())}|{who.birth_date}"


def _send_code(services: PortalServices, contact: Contact, code: str) -> None:
    minutes = int(load_code_settings().lifetime.total_seconds() // 60)
    text = (
        f"Your {services.spa_name} privacy request code is {code}. It expires in {minutes} "
        "minutes. If you did not ask for it, ignore this message."
    )
    deliver(services, contact, "Your privacy request code", text)


def deliver(services: PortalServices, contact: Contact, subject: str, text: str) -> None:
    if contact.channel == "email":
        if services.email is None:
            raise PrivacyRequestError("e-mail is not configured for the portal")
        services.email.send(contact.address, subject, text)
    else:
        if services.sms is None:
            raise PrivacyRequestError("text messages are not configured for the portal")
        services.sms.send(contact.address, text)


def open_request(
    client: FhirClient,
    actor: Actor,
    new: NewRequest,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> Opened:
    """Write the request and send a code to every contact it gives. ``new.reference`` is
    required (codes are keyed by it before the Task exists). Raises RecordError for a bad field,
    RateLimited before anything is written, PrivacyRequestError for a request with no contact
    of the client's own or a channel not configured, DeliveryError when a code could not be
    sent (the request stays received; ask for a new code), FhirServerError."""
    if not new.reference:
        raise PrivacyRequestError("a portal request carries its reference")
    if not (new.requester.email or new.requester.phone):
        raise RecordError("privacy request", "email", "give an e-mail address or a phone number")
    probe = PrivacyRequest(None, new.kind, new.requester, now, now.date(), inputs=dict(new.inputs))
    for contact in contacts_of(probe):
        if (services.email if contact.channel == "email" else services.sms) is None:
            raise PrivacyRequestError(f"the portal cannot send to {contact.key} now")
    # Codes first: a rate limit refuses before the Task is written.
    codes = [
        (
            contact,
            issue_code(
                services.store,
                new.reference,
                contact.channel,
                contact.address,
                now=now,
                requester=_requester_key(new),
            ),
        )
        for contact in contacts_of(probe)
    ]
    submitted = submit_request(client, actor, new, now=now, audit=audit)
    for contact, code in codes:
        _send_code(services, contact, code)
    return Opened(submitted.request.task_id, contacts_of(submitted.request.request))


def _contact(request: PrivacyRequest, key: str) -> Contact:
    for contact in contacts_of(request):
        if contact.key == key:
            return contact
    raise PrivacyRequestError("the request gives no such contact")


def verified_contacts(services: PortalServices, tracked: TrackedRequest) -> frozenset[str]:
    """The keys of the request's contacts whose code was entered right."""
    return frozenset(
        c.key
        for c in contacts_of(tracked.request)
        if is_verified(services.store, tracked.reference, c.address)
    )


def resend_code(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    key: str,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> Contact:
    """A new code for one contact of an open request (the older one dies). Raises RateLimited,
    PrivacyRequestError (closed request, no such contact), DeliveryError."""
    tracked = get_request(client, actor, task_id, now=now, audit=audit)
    if not tracked.request.is_open:
        raise PrivacyRequestError("the request is closed")
    contact = _contact(tracked.request, key)
    code = issue_code(
        services.store,
        tracked.reference,
        contact.channel,
        contact.address,
        now=now,
        requester=_requester_key(tracked.request),
    )
    _send_code(services, contact, code)
    return contact


def enter_code(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    key: str,
    code: str,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> CodeResult:
    """Check ``code`` for the contact ``key``. Once every contact is verified, record the
    client's on the Task and send the status link. Raises PrivacyRequestError (no such
    contact), DeliveryError (the link could not be sent), FhirServerError."""
    tracked = get_request(client, actor, task_id, now=now, audit=audit)
    contact = _contact(tracked.request, key)
    right = check_code(services.store, tracked.reference, contact.address, code, now=now)
    left = tries_left(services.store, tracked.reference, contact.address, now=now)
    audit(
        "update",
        success=right,
        description=f"portal code for {contact.key}: {'right' if right else 'wrong'}",
        resources=(f"Task/{task_id}",),
    )
    verified = verified_contacts(services, tracked)
    done = verified == {c.key for c in contacts_of(tracked.request)}
    if right and done:
        _record_all(client, actor, tracked, services=services, now=now, audit=audit)
    return CodeResult(contact, right, left, verified, done, tracked.reference)


def _record_all(
    client: FhirClient,
    actor: Actor,
    tracked: TrackedRequest,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> None:
    recorded = {v.method for v in tracked.request.verifications}
    for contact in contacts_of(tracked.request):
        if contact.method and contact.method not in recorded:
            tracked = record_verification(
                client,
                actor,
                tracked.task_id,
                Verification(contact.method, None, now),
                now=now,
                audit=audit,
                version=tracked.version,
            )
    send_status_link(services, tracked, _link_contact(tracked.request), now=now)


def send_status_link(
    services: PortalServices, tracked: TrackedRequest, to: Contact, *, now: datetime
) -> None:
    """A new status link for the request, sent to ``to``. The message names the request's
    reference: with it and a verified contact the link can be sent again
    (``symfhir.privacy.status_resend``). Raises DeliveryError, PrivacyRequestError (channel
    not configured)."""
    token = create_link(services.store, "status", f"Task/{tracked.task_id}", now=now)
    url = f"{services.base_url}/status/{token}"
    text = (
        f"Thank you: your identity is verified and we are working on your privacy request.\n\n"
        f"See its progress and, when it is done, its result here:\n{url}\n\n"
        f"Keep this link private: anyone with it can see your request's result.\n\n"
        f"Your request's reference: {tracked.reference}\n\n"
        f"{services.spa_name}"
    )
    if to.channel == "sms":
        text = (
            f"{services.spa_name}: your privacy request's status: {url} "
            f"(reference {tracked.reference})"
        )
    deliver(services, to, "Your privacy request: status link", text)


def _link_contact(request: PrivacyRequest) -> Contact:
    # The one who asked hears back: the agent when there is one, else the client, by e-mail
    # when given.
    contacts = {c.key: c for c in contacts_of(request)}
    return contacts.get(AGENT_EMAIL) or contacts.get("email") or contacts["phone"]


def request_status(
    client: FhirClient,
    actor: Actor,
    token: str,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> StatusView | None:
    """The status of the request a status link names; None for a link that is unknown,
    altered, expired or revoked. Raises FhirServerError."""
    target = resolve_link(services.store, token, now=now, kind="status")
    if target is None or not target.startswith("Task/"):
        return None
    tracked = get_request(client, actor, target.removeprefix("Task/"), now=now, audit=audit)
    request = tracked.request
    outputs = {o.label: o for o in request.outputs}
    download = None
    package = outputs.get(PACKAGE_LABEL)
    if request.business_status in FINAL_STATUSES and package and package.attachment:
        name = str(package.attachment.get("url") or "")
        if PACKAGE_NAME.fullmatch(name):
            download = create_link(services.store, "download", f"{target}|{name}", now=now)
    summary = outputs.get("summary")
    denial = outputs.get("denial-reason")
    return StatusView(
        task_id=tracked.task_id,
        kind=request.kind,
        business_status=request.business_status,
        received=request.received,
        due=request.due.isoformat(),
        extended_reason=request.extended_reason,
        summary=summary.text if summary else None,
        denial_reason=denial.text if denial else None,
        download_token=download,
        is_open=request.is_open,
        reference=tracked.reference,
        rights=rights.text if (rights := outputs.get(RIGHTS_OUTPUT)) else None,
    )


def package_download(
    client: FhirClient,
    actor: Actor,
    token: str,
    folder: Path,
    *,
    services: PortalServices,
    now: datetime,
    audit: AuditTrail,
) -> Path | None:
    """The access package a download link names (one use counted), inside ``folder``, its
    hand-over recorded first as a disclosure to the requester in the client's accounting
    (``record_handover``, as the desk's is). None for a link unknown, altered, expired, used
    up, or naming a file that is not the package the request's Task names now, or is gone.
    The name comes from the link's sealed target, never from the request. Raises
    FhirServerError."""
    target = resolve_link(services.store, token, now=now, kind="download")
    if target is None:
        return None
    task, _, name = target.partition("|")
    if not task.startswith("Task/") or not PACKAGE_NAME.fullmatch(name):
        return None
    tracked = get_request(client, actor, task.removeprefix("Task/"), now=now, audit=audit)
    if package_name(tracked) != name or not (folder / name).is_file():
        return None
    record_handover(audit, tracked.request, via="portal download")
    return folder / name

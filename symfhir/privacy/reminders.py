"""The privacy officer's reminder (``build_reminder``): the open requests overdue and due
soon, as a PHI-free e-mail (Task id, kind, status, due date: no names, no contacts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from symfhir.audit import AuditTrail
from symfhir.fhir import FhirClient
from symfhir.privacy.requests import MAX_PAGE_SIZE, list_requests
from symfhir.privacy.tasks import Settings, TrackedRequest
from symfhir.workspace.actor import Actor


@dataclass(frozen=True)
class Reminder:
    """Who to tell, the overdue and due-soon requests (by due date), and the message."""

    to: str
    overdue: tuple[TrackedRequest, ...]
    due_soon: tuple[TrackedRequest, ...]
    subject: str
    text: str

    @property
    def empty(self) -> bool:
        return not self.overdue and not self.due_soon


def request_line(item: TrackedRequest) -> str:
    """One request in a list meant for e-mail or a terminal: no PHI."""
    request = item.request
    if item.overdue:
        when = f"{-item.days_left} days overdue"
    elif item.days_left == 0:
        when = "due today"
    else:
        when = f"due in {item.days_left} days"
    return (
        f"Task/{item.task_id}  {request.kind:<21} {request.business_status:<19} "
        f"due {request.due.isoformat()}  ({when})"
    )


def _all(client: FhirClient, actor: Actor, flag: str, **kwargs: object) -> list[TrackedRequest]:
    found: list[TrackedRequest] = []
    page = 1
    while True:
        listed = list_requests(
            client, actor, page=page, page_size=MAX_PAGE_SIZE, **{flag: True}, **kwargs
        )
        found.extend(listed.items)
        if page >= listed.pages:
            return found
        page += 1


def build_reminder(
    client: FhirClient,
    actor: Actor,
    *,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
    to: str | None = None,
) -> Reminder:
    """The reminder for the privacy officer (``to`` overrides the address of
    mappings/privacy.yaml). Raises NotAllowedError, FhirServerError."""
    settings = settings or Settings.load()
    common = {"now": now, "audit": audit, "settings": settings}
    overdue = tuple(_all(client, actor, "overdue", **common))
    due_soon = tuple(_all(client, actor, "due_soon", **common))
    lines = [
        f"Privacy requests of {settings.spa.name} on {now.astimezone(settings.spa.zone):%Y-%m-%d}.",
        f"Every request is answered within {settings.policy.response_days} days of receipt.",
        "",
        f"Overdue ({len(overdue)}):",
        *(f"  {request_line(r)}" for r in overdue),
        *(["  none"] if not overdue else []),
        "",
        f"Due within {settings.policy.due_soon_days} days ({len(due_soon)}):",
        *(f"  {request_line(r)}" for r in due_soon),
        *(["  none"] if not due_soon else []),
        "",
        "Open them with `symfhir privacy show TASK` or on the privacy dashboard.",
    ]
    subject = f"Privacy requests: {len(overdue)} overdue, {len(due_soon)} due soon"
    return Reminder(
        to or settings.policy.privacy_officer_email, overdue, due_soon, subject, "\n".join(lines)
    )

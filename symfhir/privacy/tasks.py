"""Reading and writing privacy-request Tasks for the workflows: one Task read with its version,
a versioned update (If-Match, so two officers never overwrite each other), the deadline view
of a request, and the checks of who may do what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from symfhir.errors import NotAllowedError, PrivacyRequestError
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.privacy.deadlines import days_left, is_due_soon, is_overdue
from symfhir.privacy.model import PrivacyRequest
from symfhir.privacy.policy import PrivacyPolicy, load_policy
from symfhir.privacy.task import Note, TaskRecord, check_task, from_task
from symfhir.spa import Spa, load_spa
from symfhir.workspace.actor import Actor


@dataclass(frozen=True)
class Settings:
    """The spa (its clock and identifier namespace) and the privacy settings a workflow uses."""

    spa: Spa
    policy: PrivacyPolicy

    @classmethod
    def load(cls) -> Settings:
        return cls(load_spa(), load_policy())


@dataclass(frozen=True)
class TrackedRequest:
    """A request as an officer sees it: the request, its business identifier, the Task's
    version (pass it back to a step so a concurrent change is refused), its notes, and where
    it stands against its due date at ``now``."""

    request: PrivacyRequest
    reference: str
    version: str | None
    notes: tuple[Note, ...]
    days_left: int
    overdue: bool
    due_soon: bool

    @property
    def task_id(self) -> str:
        return str(self.request.task_id)


def tracked(record: TaskRecord, now: datetime, settings: Settings) -> TrackedRequest:
    request = record.request
    zone = settings.spa.zone
    return TrackedRequest(
        request=request,
        reference=record.reference,
        version=record.version,
        notes=record.notes,
        days_left=days_left(request, now, zone),
        overdue=is_overdue(request, now, zone),
        due_soon=is_due_soon(request, now, settings.policy, zone),
    )


def may_read(actor: Actor, interactions: Iterable[tuple[str, str]]) -> None:
    """Raise NotAllowedError for read interactions the server did not grant (a read-only
    session may still read)."""
    missing = tuple(n for n in interactions if not actor.may(*n))
    if missing:
        raise NotAllowedError(missing)


def read_task(
    client: FhirClient, task_id: str, settings: Settings
) -> tuple[dict[str, Any], TaskRecord]:
    """The Task as read and the request it carries. Raises FhirNotFoundError, or
    PrivacyRequestError when the Task is not a privacy request."""
    task = client.read("Task", check_id(task_id, "task id"))
    try:
        return task, from_task(task, settings.spa.identifier_base)
    except ValueError:
        raise PrivacyRequestError(f"Task/{task_id} is not a privacy request") from None


def save_task(
    client: FhirClient, task: dict[str, Any], version: str | None, settings: Settings
) -> TaskRecord:
    """PUT the changed Task only if ``version`` is still current (FhirConflictError "version
    conflict" otherwise: someone changed it meanwhile; read it again)."""
    check_task(task)
    written = client.update(task, if_match=version)
    saved = written.resource or client.read("Task", written.id)
    return from_task(saved, settings.spa.identifier_base)


def require_open(request: PrivacyRequest) -> None:
    if not request.is_open:
        raise PrivacyRequestError(
            f"Task/{request.task_id} is closed ({request.business_status}): nothing more to do"
        )


def who(actor: Actor) -> str | None:
    """How a note names the acting user: their FHIR reference, else their name."""
    return actor.fhir_user or actor.display

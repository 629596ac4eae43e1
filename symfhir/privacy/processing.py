"""Answering a privacy request (``process_request``): the handler of its kind, named in
``mappings/privacy.yaml``, is imported when needed and run; its Outcome closes the Task.

A handler is ``handle(client, actor, request, *, now, audit) -> Outcome``; one that also takes
``store`` (the restriction handler: a withdrawn physician-sharing consent stops the client's
shared links, which live in the app's own store) gets the store when one is at hand. Deny by
default: a
kind with no handler listed, or whose module does not exist yet, is refused with
PrivacyRequestError ("no handler for correction yet"), never skipped. Nothing runs before the
requester's identity is verified and the request is matched to a client.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from symfhir.audit import AuditTrail
from symfhir.errors import FhirConflictError, PrivacyRequestError
from symfhir.fhir import FhirClient
from symfhir.privacy.model import FINAL_STATUSES, Outcome, PrivacyRequest
from symfhir.privacy.requests import complete, get_request, record_progress, require_ready, start
from symfhir.privacy.tasks import Settings, TrackedRequest
from symfhir.workspace.actor import Actor

if TYPE_CHECKING:
    from symfhir.store import Store


class Handler(Protocol):
    def __call__(
        self,
        client: FhirClient,
        actor: Actor,
        request: PrivacyRequest,
        *,
        now: datetime,
        audit: AuditTrail,
    ) -> Outcome: ...


@dataclass(frozen=True)
class Processed:
    """The request after its handler ran and the handler's Outcome."""

    request: TrackedRequest
    outcome: Outcome


def handler_for(kind: str, handlers: dict[str, str]) -> Callable[..., Outcome]:
    """The handler of ``kind`` (imported now). Raises PrivacyRequestError when none is listed
    or its module or function does not exist yet."""
    target = handlers.get(kind)
    if not target:
        raise PrivacyRequestError(f"no handler for {kind} yet")
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the handler's own module missing means "not written yet"; a module it imports
        # being missing is a broken install and must surface as it is.
        if exc.name and module_name.startswith(exc.name):
            raise PrivacyRequestError(f"no handler for {kind} yet") from None
        raise
    handle = getattr(module, function, None)
    if not callable(handle):
        raise PrivacyRequestError(f"no handler for {kind} yet")
    return handle


def process_request(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
) -> Processed:
    """Run the handler of the request's kind and close the Task with its Outcome: the request
    goes in-progress, the handler acts, its status, outputs and summary land on the Task.

    A handler that raises leaves the request in progress (run it again once the cause is
    fixed); an in-progress Outcome (e.g. a correction waiting on a practitioner) keeps its
    outputs on the Task and leaves it open. ``version`` (the Task version the officer saw)
    refuses a request changed since. Raises PrivacyRequestError (not verified, not matched,
    closed, no handler), NotAllowedError, FhirServerError (FhirConflictError when someone
    changed the request meanwhile, or since ``version``), and what the handler raises.
    """
    settings = settings or Settings.load()
    current = get_request(client, actor, task_id, now=now, audit=audit, settings=settings)
    if version is not None and current.version != version:
        # The officer acted on a view of the request that is no longer current.
        raise FhirConflictError(f"process Task/{task_id}", "version conflict", status=412)
    require_ready(current.request)
    handle = handler_for(current.request.kind, settings.policy.handlers)
    started = start(
        client, actor, task_id, now=now, audit=audit, version=current.version, settings=settings
    )
    extra: dict[str, Any] = {}
    if store is not None and "store" in inspect.signature(handle).parameters:
        extra["store"] = store
    outcome = handle(client, actor, started.request, now=now, audit=audit, **extra)
    if not isinstance(outcome, Outcome):
        raise PrivacyRequestError(f"the {current.request.kind} handler returned no Outcome")
    if outcome.business_status in FINAL_STATUSES:
        closed = complete(client, actor, task_id, outcome, now=now, audit=audit, settings=settings)
        return Processed(closed, outcome)
    kept = record_progress(client, actor, task_id, outcome, now=now, audit=audit, settings=settings)
    return Processed(kept, outcome)

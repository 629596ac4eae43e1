"""Transfer to another provider (policy §6, the right to have one's data transferred): the
client's full record, photos included, pushed to the new provider's FHIR server or behind a
long-term SMART Health Link (flag L).

Two ways in:

- from a privacy request (``transfer_request``): a verified, matched portability request
  whose Task is the basis of the plan (``gate.transfer_plan``: the client asked for it
  themselves, so no physician-sharing consent is needed); the push or the link is recorded on
  the Task as its output and closes it. The privacy processing's handler for portability
  (``handle``, named in ``mappings/privacy.yaml``) builds the access package as before, and
  refuses a request that names a provider to transfer to: that needs the provider's
  credentials or a link handed over in person, which ``symfhir share transfer`` or the chart
  give.
- from the chart (``chart_transfer_push``, ``chart_transfer_link``): behind the client's
  physician-sharing consent like any share (deny by default), with the ``full`` scope.

A link's key is never written to the Task (the Task is readable by the portal and the
desk): the output names the link, its flags and expiry; the link itself goes back to the
caller, who hands it over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from symfhir.audit import AuditTrail
from symfhir.errors import PrivacyRequestError, SharingError
from symfhir.export import access_request
from symfhir.fhir import FhirClient
from symfhir.privacy.model import COMPLETED, Outcome, PrivacyRequest, TaskOutput
from symfhir.privacy.requests import complete, get_request, require_ready, start
from symfhir.privacy.tasks import Settings, TrackedRequest
from symfhir.sharing.gate import Recipient, transfer_plan
from symfhir.sharing.links import NewLink
from symfhir.sharing.push import MODES, PushReport, PushTarget, push_plan
from symfhir.sharing.workflow import (
    CreatedShare,
    LinkSettings,
    check_link_options,
    create_share,
    link_plan,
    push_share,
)
from symfhir.store import Store
from symfhir.workspace.actor import Actor

KIND = "portability"
#: The request's inputs naming the new provider (as the client gave it) and, optionally, its
#: FHIR endpoint.
PROVIDER_INPUT = "transfer-to"
ENDPOINT_INPUT = "transfer-endpoint"
PUSH_OUTPUT = "transfer-push"
LINK_OUTPUT = "transfer-link"
#: The scopes of a transfer from the chart: the whole record (photos only when asked).
FULL = "full"
PHOTOS = "photos"


@dataclass(frozen=True)
class Transfer:
    """A transfer made from a privacy request: the request now closed, and either the push's
    report or the new link (to hand over: it is nowhere else)."""

    request: TrackedRequest
    report: PushReport | None = None
    link: NewLink | None = None


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Outcome:
    """The privacy processing's portability handler: the access package (a portable export)
    unless the request names a provider to transfer to. Raises PrivacyRequestError for a
    transfer (run ``symfhir share transfer`` with the provider's endpoint and credentials, or
    make a link), and what the access package raises."""
    if provider_of(request) or request.inputs.get(ENDPOINT_INPUT, "").strip():
        raise PrivacyRequestError(
            "a transfer to another provider is made with `symfhir share transfer` "
            "(the provider's credentials or a link to hand over are needed)"
        )
    return access_request.handle(client, actor, request, now=now, audit=audit)


def provider_of(request: PrivacyRequest) -> str:
    """The new provider's name as the request gives it ('' when it names none)."""
    return request.inputs.get(PROVIDER_INPUT, "").strip()


def transfer_request(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    target: PushTarget | None = None,
    mode: str = "transaction",
    recipient: str | None = None,
    store: Store | None = None,
    links: LinkSettings | None = None,
    label: str | None = None,
    passcode: str | None = None,
    expires_at: datetime | None = None,
    now: datetime,
    audit: AuditTrail,
    settings: Settings | None = None,
) -> Transfer:
    """Answer a verified portability request by transferring the client's full record:
    pushed to ``target`` (as ``mode``), or, without a target, behind a new long-term link in
    ``store`` (``links``, optional ``passcode`` and ``expires_at``). ``recipient`` names the
    new provider when the request does not (input ``transfer-to``). The request goes in
    progress, then closes as completed with a ``transfer-push`` or ``transfer-link`` output.

    Raises PrivacyRequestError for a request of another kind, not verified, not matched or
    closed; SharingError for bad link options or no provider named (nothing read); PushError
    when the push fails (the request stays in progress: run it again), NotAllowedError,
    FhirServerError.
    """
    settings = settings or Settings.load()
    current = get_request(client, actor, task_id, now=now, audit=audit, settings=settings)
    request = current.request
    if request.kind != KIND:
        raise PrivacyRequestError(f"a transfer answers a portability request, not {request.kind}")
    require_ready(request)
    name = (recipient or provider_of(request)).strip()
    if not name:
        raise SharingError("recipient: name the provider the record is transferred to")
    if target is not None and mode not in MODES:
        raise SharingError(f"mode: one of {', '.join(MODES)}")
    if target is None:
        if store is None or links is None:
            raise SharingError("target: a push target, or a store for the link, is needed")
        label = check_link_options(
            label or f"Records for {name}"[:80], passcode, expires_at, None, False, now
        )
    assert request.patient_id is not None  # require_ready: the request is matched
    plan = transfer_plan(request.patient_id, Recipient(None, name), task_id)
    started = start(
        client, actor, task_id, now=now, audit=audit, version=current.version, settings=settings
    )
    if target is not None:
        report = push_plan(
            client, actor, plan, target=target, mode=mode, purpose="PATRQT", now=now, audit=audit
        )
        text = "; ".join(report.lines())
        outcome = Outcome(
            COMPLETED,
            (TaskOutput(PUSH_OUTPUT, text=text),),
            summary=f"Record transferred to {name}: {report.resources} records, "
            f"{report.photos} photos",
        )
        closed = complete(client, actor, task_id, outcome, now=now, audit=audit, settings=settings)
        return Transfer(closed, report=report)
    assert store is not None and links is not None
    made = link_plan(
        client,
        actor,
        plan,
        store=store,
        label=label,
        passcode=passcode,
        expires_at=expires_at,
        max_accesses=None,
        single_file=False,
        long_term=True,
        links=links,
        now=now,
        audit=audit,
    )
    link = made.link
    expiry = link.expires_at.isoformat(timespec="minutes") if link.expires_at else "no expiry"
    outcome = Outcome(
        COMPLETED,
        (
            TaskOutput(
                LINK_OUTPUT,
                text=f"SMART Health Link {link.link_id} for {name} (flags {link.flags}), "
                f"expires {expiry}; handed over by the desk",
            ),
        ),
        summary=f"A link to the record for {name} is ready: {made.resources} records, "
        f"{made.photos} photos",
    )
    del started  # start() moved the Task on; complete() reads it afresh
    closed = complete(client, actor, task_id, outcome, now=now, audit=audit, settings=settings)
    return Transfer(closed, link=link)


def chart_transfer_push(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    target: PushTarget,
    photos: bool = False,
    mode: str = "transaction",
    now: datetime,
    audit: AuditTrail,
) -> PushReport:
    """From the chart: push the full record (and the photos, when ``photos``) to the new
    provider behind the client's physician-sharing consent (it must cover ``full``, and
    photos their own consent). Raises what ``push_share`` raises."""
    return push_share(
        client,
        actor,
        patient_id,
        target=target,
        scopes=_full(photos),
        mode=mode,
        now=now,
        audit=audit,
    )


def chart_transfer_link(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    store: Store,
    links: LinkSettings,
    label: str | None,
    photos: bool = False,
    passcode: str | None = None,
    expires_at: datetime | None = None,
    now: datetime,
    audit: AuditTrail,
) -> CreatedShare:
    """From the chart: a long-term link (flag L) to the full record behind the client's
    physician-sharing consent. Raises what ``create_share`` raises."""
    return create_share(
        client,
        actor,
        patient_id,
        store=store,
        scopes=_full(photos),
        label=label,
        passcode=passcode,
        expires_at=expires_at,
        long_term=True,
        links=links,
        now=now,
        audit=audit,
    )


def _full(photos: bool) -> Iterable[str]:
    return (FULL, PHOTOS) if photos else (FULL,)

"""``symfhir privacy new|list|show|verify|match|process|extend|close|remind|purge``: privacy
requests for staff and scripts. Each parses, calls one workflow of ``symfhir.privacy`` and
prints (``purge``, the store's daily clean-up: ``symfhir.privacy.purge_commands``).

Output is PHI-minimal: Task id, kind, status and due date; names and contacts only in
``show``. Exit codes: 0 done, 1 ``match`` found no single client (pick one with --patient),
2 refused or failed (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from symfhir.command_options import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_server_options,
    add_user_option,
    open_client,
)
from symfhir.errors import SymfhirError
from symfhir.privacy.model import KINDS

if TYPE_CHECKING:
    from symfhir.privacy.tasks import TrackedRequest
    from symfhir.workspace.actor import Actor


def register(sub: Any) -> None:
    """Add ``symfhir privacy`` and its subcommands to the ``symfhir`` parser."""
    privacy = sub.add_parser(
        "privacy",
        help="privacy requests (access, deletion, opt-out …): each one a FHIR Task",
        epilog="Exit codes: 0 done, 1 match found no single client, 2 refused or failed.",
    )
    steps = privacy.add_subparsers(dest="privacy_command", required=True)

    new = _step(steps, "new", "record a new request (received now, due in 30 days)", _new)
    new.add_argument("--kind", required=True, choices=KINDS)
    new.add_argument("--name", required=True, help="the requester's name as given")
    new.add_argument("--birth-date", type=date.fromisoformat, help="YYYY-MM-DD")
    new.add_argument("--email")
    new.add_argument("--phone")
    new.add_argument("--agent", help="an authorized agent's name (CCPA)")
    new.add_argument("--details", default="", help="what the request is about")
    new.add_argument(
        "--input", action="append", default=[], metavar="NAME=VALUE", help="a kind's input"
    )
    new.add_argument("--reference", help="business identifier: the same one never makes two")
    new.add_argument("--patient", help="the client's Patient id, when already known")
    new.add_argument(
        "--verified-in-person",
        action="store_true",
        help="identity checked in person now, by --user",
    )

    listing = _step(steps, "list", "open requests by due date", _list, task=False)
    listing.add_argument("--due-soon", action="store_true")
    listing.add_argument("--overdue", action="store_true")
    listing.add_argument("--patient", help="only this client's requests")
    listing.add_argument("--all", action="store_true", help="closed requests too")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=50)

    _step(steps, "show", "one request in full (names included)", _show)

    verify = _step(steps, "verify", "record an identity verification", _verify)
    verify.add_argument("--method", required=True, choices=("in-person", "email-code", "sms-code"))
    verify.add_argument("--when", help="ISO 8601 with offset; default now")

    match = _step(steps, "match", "match the request to its client", _match)
    match.add_argument("--patient", help="the client a person chose (recorded with who chose)")

    _step(steps, "process", "run the handler of the request's kind", _process)

    extend = _step(steps, "extend", "the one extension, with a reason", _extend)
    extend.add_argument("--reason", required=True, help="e-mailed to the requester")
    extend.add_argument("--no-email", action="store_true", help="do not e-mail the requester")

    close = _step(steps, "close", "deny with a reason, or complete by hand", _close)
    how = close.add_mutually_exclusive_group(required=True)
    how.add_argument("--deny", metavar="REASON")
    how.add_argument("--complete", metavar="SUMMARY")
    close.add_argument("--partial", action="store_true", help="with --complete: partially")

    remind = _step(steps, "remind", "e-mail the officer the overdue and due-soon lists", _remind)
    remind.add_argument("--to", help="default: privacy_officer_email of mappings/privacy.yaml")
    remind.add_argument("--no-email", action="store_true", help="print the lists only")

    # The store's clean-up talks to no FHIR server: its own parser and options.
    from symfhir.privacy.purge_commands import add_parser as add_purge

    add_purge(steps)


def _step(
    steps: Any, name: str, text: str, handler: Any, *, task: bool = True
) -> argparse.ArgumentParser:
    parser = steps.add_parser(name, help=text, description=text)
    if task and name not in ("new", "remind"):
        parser.add_argument("task", help="the request's Task id")
    add_server_options(parser)
    add_user_option(parser)
    parser.add_argument("--as-of", help="clock for the run (ISO 8601 with offset); default now")
    if name not in ("new", "list", "show", "process", "remind", "match"):
        parser.add_argument("--version", help="the Task version you saw: refuse if it changed")
    parser.set_defaults(run=lambda args: _run(args, handler))
    return parser


def _moment(text: str | None, what: str) -> datetime:
    if not text:
        return datetime.now().astimezone()
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise SymfhirError(f"{what} needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    return value


def _actor(args: argparse.Namespace) -> Actor:
    from symfhir.fhir.reading import reference_id
    from symfhir.workspace.actor import Actor

    user = args.user
    if user and reference_id(user, user.split("/", 1)[0]) is None:
        raise SymfhirError("--user must be a FHIR reference such as Practitioner/12")
    return Actor(user or None)


def _run(args: argparse.Namespace, handler: Any) -> int:
    from symfhir.privacy.audit import RequestAuditTrail

    now = _moment(args.as_of, "--as-of")
    actor = _actor(args)
    with open_client(args) as client:
        audit = RequestAuditTrail(client, actor.fhir_user)
        return int(handler(args, client, actor, now=now, audit=audit))


def _line(item: TrackedRequest) -> str:
    from symfhir.privacy.reminders import request_line

    return request_line(item)


def _new(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.model import Requester, Verification
    from symfhir.privacy.requests import NewRequest, submit_request

    inputs = {}
    for pair in args.input:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SymfhirError("--input takes NAME=VALUE")
        inputs[name.strip()] = value
    verifications: tuple[Verification, ...] = ()
    if args.verified_in_person:
        if not actor.fhir_user:
            raise SymfhirError("--verified-in-person needs --user (who verified)")
        verifications = (Verification("in-person", actor.fhir_user, kw["now"]),)
    requester = Requester(
        args.name, args.birth_date, args.email or None, args.phone or None, args.agent
    )
    new = NewRequest(
        args.kind, requester, args.details, inputs, args.reference, args.patient, verifications
    )
    submitted = submit_request(client, actor, new, **kw)
    print(f"{'created' if submitted.created else 'already recorded'}: {_line(submitted.request)}")
    return EXIT_OK


def _list(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.requests import list_requests

    page = list_requests(
        client,
        actor,
        due_soon=args.due_soon,
        overdue=args.overdue,
        patient_id=args.patient,
        include_closed=args.all,
        page=args.page,
        page_size=args.page_size,
        **kw,
    )
    for item in page.items:
        print(_line(item))
    print(f"{page.total} requests; page {page.page} of {page.pages}", file=sys.stderr)
    return EXIT_OK


def _show(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.requests import get_request

    item = get_request(client, actor, args.task, **kw)
    request, requester = item.request, item.request.requester
    rows = [
        ("task", f"Task/{item.task_id} (version {item.version})"),
        ("reference", item.reference),
        ("kind", request.kind),
        ("status", request.business_status),
        ("received", request.received.isoformat()),
        ("due", f"{request.due.isoformat()} ({_line(item).rsplit('(', 1)[-1].rstrip(')')})"),
        ("client", f"Patient/{request.patient_id}" if request.patient_id else "not matched"),
        ("requester", requester.name),
        ("birth date", requester.birth_date.isoformat() if requester.birth_date else ""),
        ("e-mail", requester.email or ""),
        ("phone", requester.phone or ""),
        ("agent", requester.agent or ""),
        ("details", request.details),
        *((f"input {k}", v) for k, v in request.inputs.items()),
        *(
            (f"note {n.kind or 'other'}", f"{n.time or ''} {n.author or ''}: {n.text}")
            for n in item.notes
        ),
        *(
            (f"output {o.label}", o.text or o.reference or str((o.attachment or {}).get("url")))
            for o in request.outputs
        ),
    ]
    for label, value in rows:
        if value:
            print(f"{label:<16} {value}")
    return EXIT_OK


def _verify(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.model import Verification
    from symfhir.privacy.requests import record_verification

    when = _moment(args.when, "--when") if args.when else kw["now"]
    verification = Verification(args.method, actor.fhir_user, when)
    item = record_verification(client, actor, args.task, verification, version=args.version, **kw)
    print(_line(item))
    return EXIT_OK


def _match(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.matching import assign_patient, match_patient

    if args.patient:
        item = assign_patient(client, actor, args.task, args.patient, **kw)
        print(f"matched to Patient/{args.patient}: {_line(item)}")
        return EXIT_OK
    result = match_patient(client, actor, args.task, **kw)
    if result.matched:
        print(f"matched to Patient/{result.matched}: {_line(result.request)}")
        return EXIT_OK
    print(f"no single client matches Task/{args.task}; candidates:")
    for candidate in result.candidates:
        print(f"  Patient/{candidate.patient_id}  matches: {', '.join(candidate.matches)}")
    if not result.candidates:
        print("  none")
    print(f"choose with: symfhir privacy match {args.task} --patient ID", file=sys.stderr)
    return EXIT_PARTIAL


def _process(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.errors import ConfigError
    from symfhir.privacy.processing import process_request
    from symfhir.store import Store

    try:
        # Where the app's store is configured, a withdrawn physician-sharing consent (a
        # restriction request) also stops the client's shared links there.
        store: Store | None = Store.from_env()
    except ConfigError:
        store = None
    processed = process_request(client, actor, args.task, store=store, **kw)
    print(_line(processed.request))
    if processed.outcome.summary:
        print(processed.outcome.summary)
    return EXIT_OK


def _extend(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.notices import extension_notice
    from symfhir.privacy.requests import extend
    from symfhir.spa import load_spa

    item = extend(client, actor, args.task, args.reason, version=args.version, **kw)
    print(_line(item))
    notice = extension_notice(item.request, load_spa())
    if notice is None or args.no_email:
        print(
            "the requester was not e-mailed: tell them the reason and the new date", file=sys.stderr
        )
        return EXIT_OK
    send_email(notice.to, notice.subject, notice.text)
    print("the requester was e-mailed the reason and the new date", file=sys.stderr)
    return EXIT_OK


def _close(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.model import COMPLETED, PARTIALLY_COMPLETED, Outcome
    from symfhir.privacy.requests import complete, deny

    if args.deny is not None:
        item = deny(client, actor, args.task, args.deny, version=args.version, **kw)
    else:
        status = PARTIALLY_COMPLETED if args.partial else COMPLETED
        outcome = Outcome(status, (), args.complete.strip())
        item = complete(client, actor, args.task, outcome, version=args.version, **kw)
    print(_line(item))
    return EXIT_OK


def _remind(args: argparse.Namespace, client: Any, actor: Actor, **kw: Any) -> int:
    from symfhir.privacy.reminders import build_reminder

    reminder = build_reminder(client, actor, to=args.to, **kw)
    print(reminder.text)
    if args.no_email or reminder.empty:
        return EXIT_OK
    send_email(reminder.to, reminder.subject, reminder.text)
    print(f"reminder e-mailed to {reminder.to}", file=sys.stderr)
    return EXIT_OK


def send_email(to: str, subject: str, text: str) -> str:
    """Send one message (the officer's reminder, a requester's extension notice) with
    symfhir's SMTP sender, set up from the ``SYMFHIR_SMTP_*`` environment
    (``symfhir.notify.email``); its Message-ID. Raises ConfigError, DeliveryError."""
    from symfhir.notify.email import EmailSender

    return EmailSender.from_config().send(to, subject, text)
